/**
 * The address book learns stores from the scheduler's list and from Raft batches, keeps an
 * address when the scheduler is gone, refuses malformed addresses, and survives a restart.
 */
import assert from "node:assert/strict";
import { CBOR_CONTENT_TYPE, encodeCbor } from "../proto/codec.ts";
import { PdClient } from "../proto/pd_client.ts";
import { KvEngine } from "../storage/mod.ts";
import { AddressBook, isStoreAddress } from "./address_book.ts";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

/** A scheduler that lists `stores` while `up` says so, and is unreachable otherwise. */
function fakeScheduler(stores: Map<number, string>, up: { value: boolean }): PdClient {
  return new PdClient("http://scheduler", {
    fetch: (url) => {
      if (!up.value) throw new TypeError("connection refused");
      const method = url.slice(url.lastIndexOf("/") + 1);
      const list = [...stores].map(([id, address]) => ({
        store: { id, address },
        stateName: "Up",
      }));
      const body = method === "get_all_stores"
        ? { stores: list }
        : list.find((s) => s.store.id === 9) ?? {};
      return new Response(encodeCbor(body), { headers: { "content-type": CBOR_CONTENT_TYPE } });
    },
  });
}

Deno.test("address book: learns, keeps what it knows without the scheduler, persists", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mrkv-book-" });
  try {
    const stores = new Map([[1, "10.0.0.1:20160"], [2, "10.0.0.2:20160"], [9, "10.0.0.9:1"]]);
    const up = { value: true };
    let engine = await KvEngine.open(dir);
    let book = await AddressBook.load(1, engine, fakeScheduler(stores, up), quiet);
    await book.refresh();
    assert.equal(book.get(2), "10.0.0.2:20160");
    assert.equal(book.get(1), undefined, "a store does not list itself");
    book.learn(3, "10.0.0.3:20160", "a Raft batch");
    book.learn(4, "not an address", "a Raft batch");
    book.learn(2, "10.0.0.22:20160", "a Raft batch");
    assert.equal(book.get(4), undefined);
    assert.equal(book.get(2), "10.0.0.22:20160", "the newest address wins");
    up.value = false;
    await book.refresh(); // fails quietly: nothing is forgotten
    assert.equal(await book.resolve(3), "10.0.0.3:20160");
    await assert.rejects(() => book.resolve(5));
    await book.stop();
    engine.close();

    engine = await KvEngine.open(dir);
    book = await AddressBook.load(1, engine, fakeScheduler(stores, up), quiet);
    assert.deepEqual(book.entries(), [
      [2, "10.0.0.22:20160"],
      [3, "10.0.0.3:20160"],
      [9, "10.0.0.9:1"],
    ]);
    await book.stop();
    engine.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("address book: only host:port addresses are accepted", () => {
  for (const ok of ["127.0.0.1:20160", "store-1.example:80", "[::1]:20160"]) {
    assert.ok(isStoreAddress(ok), ok);
  }
  for (const bad of ["", "host", "host:", "host:99999", "http://x:1", "a b:1", "x:1/path"]) {
    assert.ok(!isStoreAddress(bad), bad);
  }
});
