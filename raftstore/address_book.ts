/**
 * Where the other stores are: the addresses this store sends Raft messages and forwarded
 * requests to.
 *
 * Raft's availability must not depend on the scheduler. A majority that is cut off from the
 * scheduler (or that restarts while it is down) still has to find its members to elect a leader,
 * and followers never talk to each other while a leader lives, so an address cannot be looked up
 * only when it is first needed. The book therefore learns every store's address ahead of time and
 * from every direction:
 * - the scheduler's full store list, fetched at start and refreshed in the background;
 * - the sender's advertised address carried in every Raft batch received;
 * - a single store asked of the scheduler when a store is still unknown.
 * A failed send never forgets an address (the store may only be slow or briefly partitioned),
 * and the book is persisted, so a restarted store can reach its peers with the scheduler down.
 *
 * @module
 */
import { decodeCbor, encodeCbor, expectArray, expectId, expectString } from "../proto/codec.ts";
import { MrkvError } from "../proto/errors.ts";
import type { PdClient } from "../proto/pd_client.ts";
import { Keys, type KvEngine } from "../storage/mod.ts";
import type { StoreLogger } from "./store.ts";

/** How often the scheduler's store list is fetched again. */
export const ADDRESS_REFRESH_MS = 10_000;
/** How long learned addresses may wait before they are written (a burst is one write). */
const PERSIST_DELAY_MS = 200;
const MAX_ADDRESS_LENGTH = 255;

/** `host:port` or `[v6]:port`, nothing else (an address is used to build URLs). */
export function isStoreAddress(addr: string): boolean {
  return addr.length <= MAX_ADDRESS_LENGTH &&
    /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/.test(addr) &&
    Number(addr.slice(addr.lastIndexOf(":") + 1)) <= 65535;
}

/** Other stores' addresses, learned, kept and persisted (see the module comment). */
export class AddressBook {
  readonly #addresses = new Map<number, string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #persistTimer: ReturnType<typeof setTimeout> | undefined;
  #persisting: Promise<void> = Promise.resolve();
  #stopped = false;

  private constructor(
    readonly selfId: number,
    readonly engine: KvEngine,
    readonly scheduler: PdClient,
    readonly log: StoreLogger,
  ) {}

  /** The book persisted in `engine` (empty if none). */
  static async load(
    selfId: number,
    engine: KvEngine,
    scheduler: PdClient,
    log: StoreLogger,
  ): Promise<AddressBook> {
    const book = new AddressBook(selfId, engine, scheduler, log);
    const bytes = await engine.getRecord(Keys.storeAddresses());
    if (bytes) {
      try {
        const pairs = expectArray(decodeCbor(bytes, "store addresses"), "addresses", (v, n) => {
          const [id, addr] = expectArray(v, n, (x) => x, 2);
          return [expectId(id, `${n}[0]`), expectString(addr, `${n}[1]`, MAX_ADDRESS_LENGTH)];
        }, 1_000_000);
        for (const [id, addr] of pairs) {
          if (isStoreAddress(addr as string)) book.#addresses.set(id as number, addr as string);
        }
      } catch (e) {
        // Only a cache: the scheduler and incoming batches fill it again.
        log.warn(
          `store ${selfId}: ignoring unreadable saved store addresses: ${(e as Error).message}`,
        );
      }
    }
    return book;
  }

  /** The known address of `storeId`, if any. */
  get(storeId: number): string | undefined {
    return this.#addresses.get(storeId);
  }

  /** Every known address (for `/debug`). */
  entries(): [number, string][] {
    return [...this.#addresses.entries()].sort(([a], [b]) => a - b);
  }

  /** Records that `storeId` is at `address` (as `source` says); persisted soon if it changed. */
  learn(storeId: number, address: string, source: string): void {
    if (storeId === this.selfId || !isStoreAddress(address)) return;
    const before = this.#addresses.get(storeId);
    if (before === address) return;
    this.#addresses.set(storeId, address);
    if (before !== undefined) {
      this.log.info(`store ${storeId} moved from ${before} to ${address} (learned from ${source})`);
    }
    this.#schedulePersist();
  }

  /** The address of `storeId`: known, or else asked of the scheduler. */
  async resolve(storeId: number): Promise<string> {
    const known = this.#addresses.get(storeId);
    if (known) return known;
    const { store } = await this.scheduler.getStore(storeId);
    this.learn(store.id, store.address, "the scheduler");
    const addr = this.#addresses.get(storeId);
    if (!addr) {
      throw new MrkvError("StoreNotFound", `store ${storeId} has no usable address`);
    }
    return addr;
  }

  /**
   * Looks up, in the background, the stores of `storeIds` that are not known yet (a region's
   * members: Raft may need to reach any of them once its leader fails).
   */
  want(storeIds: Iterable<number>): void {
    for (const id of storeIds) {
      if (id === this.selfId || this.#addresses.has(id) || this.#looking.has(id)) continue;
      this.#looking.add(id);
      this.resolve(id).catch((e) => {
        this.log.warn(`store ${this.selfId}: cannot look up store ${id}: ${(e as Error).message}`);
      }).finally(() => this.#looking.delete(id));
    }
  }
  readonly #looking = new Set<number>();

  /** Fetches the scheduler's store list once; a failure is only logged (the book stays). */
  async refresh(): Promise<void> {
    try {
      const { stores } = await this.scheduler.getAllStores();
      for (const s of stores) {
        if (s.stateName !== "Tombstone") this.learn(s.store.id, s.store.address, "the scheduler");
      }
    } catch (e) {
      this.log.warn(
        `store ${this.selfId}: cannot refresh store addresses from the scheduler (keeping ` +
          `${this.#addresses.size} known): ${(e as Error).message}`,
      );
    }
  }

  /** Refreshes now and then every {@link ADDRESS_REFRESH_MS}. */
  start(intervalMs = ADDRESS_REFRESH_MS): void {
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), intervalMs);
  }

  /** Stops refreshing and writes what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    if (this.#persistTimer !== undefined) {
      clearTimeout(this.#persistTimer);
      this.#persistTimer = undefined;
      this.#persist();
    }
    this.#stopped = true;
    await this.#persisting;
  }

  #schedulePersist(): void {
    if (this.#stopped || this.#persistTimer !== undefined) return;
    this.#persistTimer = setTimeout(() => {
      this.#persistTimer = undefined;
      this.#persist();
    }, PERSIST_DELAY_MS);
  }

  #persist(): void {
    const bytes = encodeCbor(this.entries());
    this.#persisting = this.#persisting.then(async () => {
      try {
        await this.engine.write(this.engine.batch().put(Keys.storeAddresses(), bytes));
      } catch (e) {
        this.log.warn(`store ${this.selfId}: cannot save store addresses: ${(e as Error).message}`);
      }
    });
  }
}
