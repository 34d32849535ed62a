/**
 * Exactly-once client writes: each region remembers the client requests it applied recently.
 *
 * A client write gets a {@link RequestTag} at the first store that receives it: 16 random bytes
 * and the time that store issued it. The tag travels with every attempt — forwarded requests
 * carry it in headers, Raft entries in the command header — so retries after a timeout, forwards
 * a partition held back, requests re-sent by the HTTP client, and proposals a paused leader made
 * twice all carry the same tag. Apply runs each tagged write at most once:
 * - a tag already in the table is a **duplicate**: skipped, and answered as done (it was);
 * - a tag issued more than {@link REQUEST_WINDOW_MS} before the newest tag the region applied is
 *   **expired**: refused (it is older than any attempt its first store still makes, so it can
 *   only be a stray copy; its tag may already have left the table);
 * - anything else is applied and its tag remembered.
 * Every replica decides alike: the table and its clock (the newest `issuedAt` applied) are a
 * function of the applied log, persisted with the data and carried by snapshots and splits, so a
 * restarted or newly added replica agrees with the others. Clocks of stores must agree to within
 * the window minus the request deadline (about 50 s) or their writes are refused as expired; the
 * refusal names the skew.
 *
 * **Persistence.** Each apply pass that remembers tags writes one record of them (with the
 * clock) in the data phase of the Ready loop's write, after the data it covers and before the
 * applied index. A crash between the two leaves tags whose writes are durable but not marked
 * applied: replaying those entries finds their tags and skips them, the same state as applying.
 * Records whose newest tag has expired are deleted after the applied index (the most recent
 * record is always kept: it carries the clock).
 *
 * @module
 */
import {
  decodeCbor,
  encodeCbor,
  expectArray,
  expectBytes,
  expectObject,
  expectUint,
  field,
} from "../proto/codec.ts";
import { MrkvError } from "../proto/errors.ts";
import { Keys, type WriteBatch } from "../storage/mod.ts";

/** How long a tag is remembered, by the region's clock (see the module comment). */
export const REQUEST_WINDOW_MS = 60_000;
/**
 * How far ahead of a store's clock a tag it receives may be. A tag from the future would move
 * the region's clock ahead and make other stores' fresh writes look expired.
 */
export const MAX_TAG_CLOCK_AHEAD_MS = 10_000;
/** Bytes of a tag's ID. */
export const REQUEST_ID_BYTES = 16;
/** Tags per stored record (a record stays well under a megabyte). */
const TAGS_PER_RECORD = 20_000;

/** The identity of one client write, the same on every attempt. */
export interface RequestTag {
  readonly id: Uint8Array;
  /** When the first store issued it (its wall clock, ms since the epoch). */
  readonly issuedAt: number;
}

/** A fresh tag for a write received now. */
export function newRequestTag(now = Date.now()): RequestTag {
  return { id: crypto.getRandomValues(new Uint8Array(REQUEST_ID_BYTES)), issuedAt: now };
}

/** What apply does with a tagged write. */
export type RequestVerdict = "fresh" | "duplicate" | "expired";

interface StoredRecord {
  /** Newest `issuedAt` among its tags (it may be deleted once that has expired). */
  newest: number;
  readonly ids: string[];
}

/** The recently applied requests of one region (see the module comment). */
export class AppliedRequests {
  /** Newest `issuedAt` the region applied. */
  #clock = 0;
  /** Tag ID (hex) → its `issuedAt` and the record holding it. */
  readonly #ids = new Map<string, { issuedAt: number; record: string }>();
  /**
   * Stored records by `index:part`, in the order they were written (roughly by age, which is
   * how they expire), with the key of the most recent one.
   */
  readonly #records = new Map<string, StoredRecord>();
  #latest: string | undefined;
  /** Tags remembered by the apply pass in progress, not yet in a record. */
  #pending: RequestTag[] = [];
  /** Log index of the first of them: the record's key (unique: an entry is added only once). */
  #pendingIndex = 0;
  /** A merge raised the clock: the pass writes a record even if it remembered no tag. */
  #clockRaised = false;
  /** Writes skipped as duplicates and refused as expired, for metrics and tests. */
  duplicates = 0;
  expired = 0;

  /** The clock: the newest `issuedAt` applied. */
  get clock(): number {
    return this.#clock;
  }

  /** How many tags are remembered. */
  get size(): number {
    return this.#ids.size;
  }

  /** What apply must do with a write tagged `tag` (see the module comment). */
  check(tag: RequestTag): RequestVerdict {
    if (this.#ids.has(tag.id.toHex())) {
      this.duplicates++;
      return "duplicate";
    }
    if (tag.issuedAt + REQUEST_WINDOW_MS < this.#clock) {
      this.expired++;
      return "expired";
    }
    return "fresh";
  }

  /** Remembers a write apply just ran at `index` (only after {@link check} said "fresh"). */
  add(tag: RequestTag, index: number): void {
    this.#ids.set(tag.id.toHex(), { issuedAt: tag.issuedAt, record: "" });
    if (this.#pending.length === 0) this.#pendingIndex = index;
    this.#pending.push(tag);
    if (tag.issuedAt > this.#clock) this.#clock = tag.issuedAt;
  }

  /**
   * Takes in every tag of `other` — the table of a region merged into this one, at log index
   * `index` — and its clock, if newer. Both persist with this pass's record. The clock matters
   * as much as the tags: a stray copy of a write the other region applied and has since
   * forgotten must still be refused as expired here.
   */
  absorb(other: AppliedRequests, index: number): void {
    if (this.#pending.length === 0) this.#pendingIndex = index;
    for (const t of other.tags()) {
      if (!this.#ids.has(t.id.toHex())) this.add(t, index);
    }
    if (other.#clock > this.#clock) this.#clock = other.#clock;
    this.#clockRaised = true;
  }

  /**
   * Ends an apply pass: the tags it remembered become one record (in the data phase, after the
   * data it wrote), and records that have expired are deleted (in the state phase, after the
   * applied index). A pass that remembered nothing writes nothing.
   */
  persistPass(wb: WriteBatch, regionId: number, phases: {
    readonly data: number;
    readonly state: number;
  }): void {
    if (this.#pending.length === 0 && !this.#clockRaised) return;
    const tags = this.#pending;
    this.#pending = [];
    this.#clockRaised = false;
    wb.atPhase(phases.data);
    this.#store(wb, regionId, this.#pendingIndex, tags);
    wb.atPhase(phases.state);
    this.#prune(wb, regionId);
  }

  /**
   * Writes the whole table as records at `index` of `regionId` (a snapshot or a split hands the
   * table to another peer); the caller clears that region's old records first.
   */
  writeAll(wb: WriteBatch, regionId: number, index: number): void {
    this.#store(wb, regionId, index, this.tags(), true);
  }

  /** Every remembered tag. */
  tags(): RequestTag[] {
    return [...this.#ids].map(([hex, t]) => ({
      id: Uint8Array.fromHex(hex),
      issuedAt: t.issuedAt,
    }));
  }

  /** A copy (a split gives the new region the table of the region it came from). */
  clone(): AppliedRequests {
    const out = new AppliedRequests();
    out.#restore(this.#clock, this.tags());
    return out;
  }

  /** The table as carried in a snapshot. */
  encode(): { clock: number; tags: [Uint8Array, number][] } {
    return { clock: this.#clock, tags: this.tags().map((t) => [t.id, t.issuedAt]) };
  }

  /** The table a snapshot carried (see {@link encode}); throws on malformed input. */
  static decode(v: unknown, name: string): AppliedRequests {
    const o = expectObject(v, name);
    const out = new AppliedRequests();
    out.#restore(
      expectUint(field(o, "clock"), `${name}.clock`),
      expectArray(field(o, "tags"), `${name}.tags`, decodeTag, Number.MAX_SAFE_INTEGER),
    );
    return out;
  }

  /** The table stored by a region: its records as {@link KvEngine.appliedRequests} lists them. */
  static load(records: readonly [number, number, Uint8Array][], what: string): AppliedRequests {
    const out = new AppliedRequests();
    for (const [index, part, bytes] of records) {
      const o = expectObject(decodeCbor(bytes, what), what);
      const clock = expectUint(field(o, "clock"), `${what}.clock`);
      const tags = expectArray(field(o, "tags"), `${what}.tags`, decodeTag, TAGS_PER_RECORD);
      const key = `${index}:${part}`;
      out.#remember(key, tags);
      if (clock >= out.#clock) {
        out.#clock = clock;
        out.#latest = key;
      }
    }
    return out;
  }

  #restore(clock: number, tags: readonly RequestTag[]): void {
    this.#clock = clock;
    for (const t of tags) this.#ids.set(t.id.toHex(), { issuedAt: t.issuedAt, record: "" });
    this.#pending = [];
  }

  #remember(key: string, tags: readonly RequestTag[]): void {
    const rec: StoredRecord = { newest: 0, ids: [] };
    for (const t of tags) {
      const hex = t.id.toHex();
      this.#ids.set(hex, { issuedAt: t.issuedAt, record: key });
      rec.ids.push(hex);
      rec.newest = Math.max(rec.newest, t.issuedAt);
    }
    this.#records.set(key, rec);
  }

  #store(
    wb: WriteBatch,
    regionId: number,
    index: number,
    tags: readonly RequestTag[],
    all = false,
  ): void {
    if (all) this.#records.clear();
    for (let part = 0; part === 0 || part * TAGS_PER_RECORD < tags.length; part++) {
      const slice = tags.slice(part * TAGS_PER_RECORD, (part + 1) * TAGS_PER_RECORD);
      const value = encodeCbor({
        clock: this.#clock,
        tags: slice.map((t) => [t.id, t.issuedAt]),
      });
      wb.put(Keys.appliedRequests(regionId, index, part), value);
      const key = `${index}:${part}`;
      this.#remember(key, slice);
      this.#latest = key;
    }
  }

  /**
   * Forgets expired tags and deletes the records holding them, oldest first, up to the first
   * record that has not expired (never the latest one: it carries the clock).
   */
  #prune(wb: WriteBatch, regionId: number): void {
    const horizon = this.#clock - REQUEST_WINDOW_MS;
    for (const [key, rec] of this.#records) {
      if (rec.newest >= horizon || key === this.#latest) break;
      for (const hex of rec.ids) {
        if (this.#ids.get(hex)?.record === key) this.#ids.delete(hex);
      }
      this.#records.delete(key);
      const [index, part] = key.split(":").map(Number) as [number, number];
      wb.delete(Keys.appliedRequests(regionId, index, part));
    }
  }
}

/** Decodes one `[id, issuedAt]` tag. */
export function decodeTag(v: unknown, name: string): RequestTag {
  const [id, issuedAt] = expectArray(v, name, (x) => x, 2);
  return {
    id: expectTagId(id, `${name}[0]`),
    issuedAt: expectUint(issuedAt, `${name}[1]`),
  };
}

/** Checks a tag ID: exactly {@link REQUEST_ID_BYTES} bytes. */
export function expectTagId(v: unknown, name: string): Uint8Array {
  const id = expectBytes(v, name, REQUEST_ID_BYTES);
  if (id.length !== REQUEST_ID_BYTES) {
    throw new MrkvError(
      "BadRequest",
      `${name} must be ${REQUEST_ID_BYTES} bytes, got ${id.length}`,
    );
  }
  return id;
}
