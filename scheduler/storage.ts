/**
 * The scheduler's Deno KV layout and persistence (one database under `--data-dir`):
 *
 * | key | value |
 * |---|---|
 * | `["meta","cluster_id"]` | number, chosen once |
 * | `["meta","alloc"]` | ID high-water mark (`id_allocator.ts`) |
 * | `["meta","bootstrapped"]` | true, written atomically with region 1 and the first store |
 * | `["meta","config"]` | CBOR: schedule config changed at run time |
 * | `["meta","schedulers"]` | CBOR: names of the running schedulers |
 * | `["store",id]` | CBOR `{id, address, features?, state}` |
 * | `["region",id]` | CBOR `{region, leader}`: last known region meta |
 *
 * Stores are written before the request is answered. Regions are written behind
 * ({@link RegionSaver}): a lost update costs nothing, since leaders report their regions again,
 * and batching keeps heartbeats cheap. Commits stay inside Deno KV's limits (1000 mutations,
 * 800 KB) here and nowhere else.
 *
 * @module
 */
import {
  decodeCbor,
  encodeCbor,
  expectObject,
  expectString,
  field,
  optional,
} from "../proto/codec.ts";
import { decodePeer, decodeRegion, decodeStore, type Peer, type Region } from "../proto/metapb.ts";
import type { StoreMetaState } from "./store_info.ts";

const MAX_MUTATIONS = 500;
const MAX_COMMIT_BYTES = 512 * 1024;

/** A persisted store. */
export interface SavedStore {
  readonly id: number;
  readonly address: string;
  readonly features?: readonly string[];
  readonly state: StoreMetaState;
}

/** A persisted region. */
export interface SavedRegion {
  readonly region: Region;
  readonly leader: Peer | null;
}

/** Everything loaded at start. */
export interface LoadedState {
  readonly clusterId: number;
  readonly bootstrapped: boolean;
  readonly stores: SavedStore[];
  readonly regions: SavedRegion[];
  readonly config: unknown;
  readonly schedulers: string[] | null;
}

/** Reads and writes the scheduler's state. */
export class ClusterStorage {
  constructor(readonly kv: Deno.Kv) {}

  /** Loads everything, choosing and persisting a cluster ID on first start. */
  async load(): Promise<LoadedState> {
    let clusterId = (await this.kv.get<number>(["meta", "cluster_id"])).value;
    if (clusterId === null) {
      const bytes = crypto.getRandomValues(new Uint32Array(2));
      clusterId = (bytes[0]! & 0x1fffff) * 2 ** 32 + bytes[1]! || 1;
      const res = await this.kv.atomic().check({ key: ["meta", "cluster_id"], versionstamp: null })
        .set(["meta", "cluster_id"], clusterId).commit();
      if (!res.ok) clusterId = (await this.kv.get<number>(["meta", "cluster_id"])).value!;
    }
    const bootstrapped = (await this.kv.get<boolean>(["meta", "bootstrapped"])).value === true;
    const stores: SavedStore[] = [];
    for await (const e of this.kv.list<Uint8Array>({ prefix: ["store"] })) {
      const o = expectObject(decodeCbor(e.value, "saved store"), "saved store");
      const state = expectString(field(o, "state"), "state");
      if (state !== "Up" && state !== "Offline" && state !== "Tombstone") continue;
      stores.push({ ...decodeStore(o, "saved store"), state });
    }
    const regions: SavedRegion[] = [];
    for await (const e of this.kv.list<Uint8Array>({ prefix: ["region"] })) {
      const o = expectObject(decodeCbor(e.value, "saved region"), "saved region");
      regions.push({
        region: decodeRegion(field(o, "region"), "region"),
        leader: optional(field(o, "leader"), "leader", decodePeer, null),
      });
    }
    const config = await this.#getCbor(["meta", "config"]);
    const schedulers = await this.#getCbor(["meta", "schedulers"]);
    return {
      clusterId,
      bootstrapped,
      stores,
      regions,
      config,
      schedulers: Array.isArray(schedulers)
        ? schedulers.filter((s) => typeof s === "string")
        : null,
    };
  }

  async #getCbor(key: Deno.KvKey): Promise<unknown> {
    const v = (await this.kv.get<Uint8Array>(key)).value;
    return v instanceof Uint8Array ? decodeCbor(v) : undefined;
  }

  /**
   * Marks the cluster bootstrapped together with its first store and region, atomically.
   * Returns false if it already was.
   */
  async bootstrap(store: SavedStore, region: Region): Promise<boolean> {
    const res = await this.kv.atomic()
      .check({ key: ["meta", "bootstrapped"], versionstamp: null })
      .set(["meta", "bootstrapped"], true)
      .set(["store", store.id], encodeCbor(store))
      .set(["region", region.id], encodeCbor({ region, leader: null }))
      .commit();
    return res.ok;
  }

  /** Persists a store (before the request that changed it is answered). */
  async saveStore(store: SavedStore): Promise<void> {
    await this.kv.set(["store", store.id], encodeCbor(store));
  }

  /** Persists the run-time schedule config. */
  async saveConfig(config: unknown): Promise<void> {
    await this.kv.set(["meta", "config"], encodeCbor(config));
  }

  /** Persists the names of the running schedulers. */
  async saveSchedulers(names: readonly string[]): Promise<void> {
    await this.kv.set(["meta", "schedulers"], encodeCbor(names));
  }

  /** Writes region changes in commits that fit Deno KV's limits. */
  async writeRegions(changes: ReadonlyMap<number, SavedRegion | null>): Promise<void> {
    let op = this.kv.atomic();
    let n = 0, bytes = 0;
    for (const [id, saved] of changes) {
      const value = saved && encodeCbor(saved);
      const size = (value?.length ?? 0) + 64;
      if (n > 0 && (n + 1 > MAX_MUTATIONS || bytes + size > MAX_COMMIT_BYTES)) {
        await commitOrThrow(op);
        op = this.kv.atomic();
        n = 0;
        bytes = 0;
      }
      if (value) op.set(["region", id], value);
      else op.delete(["region", id]);
      n++;
      bytes += size;
    }
    if (n > 0) await commitOrThrow(op);
  }
}

async function commitOrThrow(op: Deno.AtomicOperation): Promise<void> {
  const res = await op.commit();
  if (!res.ok) throw new Error("region write-behind commit failed");
}

/**
 * Write-behind for region meta: the latest change per region, flushed every `intervalMs` and
 * on {@link RegionSaver.close}. At most one flush runs at a time.
 */
export class RegionSaver {
  #pending = new Map<number, SavedRegion | null>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly storage: ClusterStorage,
    private readonly intervalMs = 100,
    private readonly onError: (e: unknown) => void = () => {},
  ) {}

  /** Queues a region to be saved. */
  save(saved: SavedRegion): void {
    this.#pending.set(saved.region.id, saved);
    this.#arm();
  }

  /** Queues a region to be deleted. */
  delete(id: number): void {
    this.#pending.set(id, null);
    this.#arm();
  }

  #arm(): void {
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush().catch(this.onError);
      }, this.intervalMs);
    }
  }

  /** Writes everything queued so far. */
  flush(): Promise<void> {
    const run = this.#flushing.then(async () => {
      if (this.#pending.size === 0) return;
      const batch = this.#pending;
      this.#pending = new Map();
      try {
        await this.storage.writeRegions(batch);
      } catch (e) {
        // Put back what was not superseded meanwhile, to retry on the next flush.
        for (const [id, v] of batch) if (!this.#pending.has(id)) this.#pending.set(id, v);
        this.#arm();
        throw e;
      }
    });
    this.#flushing = run.catch(() => {});
    return run;
  }

  /** Stops the timer and writes what is queued. */
  async close(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
