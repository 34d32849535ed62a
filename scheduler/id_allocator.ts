/**
 * The persistent ID allocator (PD's `id/id.go`). IDs come from one counter shared by stores,
 * regions and peers. The high-water mark is persisted *before* any ID under it is handed out,
 * in batches of {@link ID_BATCH}, so a restart resumes above every ID ever given and never
 * reuses one (it may skip some).
 *
 * Invariant: `next - 1 <= end`, and `end` is what Deno KV holds under {@link ALLOC_KEY}.
 *
 * @module
 */

/** Where the high-water mark lives. */
export const ALLOC_KEY: Deno.KvKey = ["meta", "alloc"];
/** How far the mark moves per persist. */
export const ID_BATCH = 1000;
/** IDs up to this are reserved: region 1 is the bootstrap region. */
export const RESERVED_IDS = 1;

/** Hands out unique positive IDs; restart-safe. */
export class IdAllocator {
  #next: number;
  #end: number;
  #lock: Promise<unknown> = Promise.resolve();

  private constructor(private readonly kv: Deno.Kv, end: number, private readonly batch: number) {
    this.#next = end + 1;
    this.#end = end;
  }

  /** Loads the high-water mark (or starts above {@link RESERVED_IDS}). */
  static async open(kv: Deno.Kv, batch = ID_BATCH): Promise<IdAllocator> {
    const got = await kv.get<number>(ALLOC_KEY);
    return new IdAllocator(kv, got.value ?? RESERVED_IDS, batch);
  }

  /** The persisted high-water mark: no ID above it has been handed out. */
  get highWaterMark(): number {
    return this.#end;
  }

  /** IDs that can be handed out synchronously without touching disk. */
  get buffered(): number {
    return this.#end - this.#next + 1;
  }

  /** Returns the first of `count` consecutive fresh IDs. */
  alloc(count = 1): Promise<number> {
    return this.#locked(async () => {
      await this.#ensure(count);
      const first = this.#next;
      this.#next += count;
      return first;
    });
  }

  /** Makes sure at least `count` IDs are buffered for {@link allocSync}. */
  reserve(count: number): Promise<void> {
    return this.#locked(() => this.#ensure(count));
  }

  /** A fresh ID from the persisted buffer, or throws if it is empty (call `reserve` first). */
  allocSync(): number {
    if (this.#next > this.#end) throw new Error("no buffered IDs: reserve() was not awaited");
    return this.#next++;
  }

  async #ensure(count: number): Promise<void> {
    while (this.#next + count - 1 > this.#end) {
      const end = Math.max(this.#end + this.batch, this.#next + count - 1);
      const res = await this.kv.atomic().set(ALLOC_KEY, end).commit();
      if (!res.ok) throw new Error("could not persist the ID high-water mark");
      this.#end = end;
    }
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }
}
