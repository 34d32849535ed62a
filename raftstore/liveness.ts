/**
 * Store liveness: one signal per pair of stores instead of one heartbeat per region.
 *
 * Sleeping regions send nothing, so a follower cannot learn from its region that its leader is
 * still there. It learns it from the leader's *store*: every Raft batch a store receives proves
 * its sender's process alive (and able to reach us), and a store that has sent nothing to
 * another for {@link StoreLiveness.pingMs} sends it an empty batch. Each batch carries the
 * sender's **incarnation**, a random number drawn when the process starts: a store that restarted
 * lost every leadership it held, so news of its new incarnation is no news of the leaders of its
 * previous one.
 *
 * A store is *down* once nothing has come from it for {@link StoreLiveness.downMs}, or a send to it
 * failed, and *up* again when a batch arrives. Every change — down, up, restarted — is reported
 * to {@link StoreLiveness.onChange}, once, so the regions it concerns wake up: a follower whose
 * leader's store went down campaigns, a leader whose followers there were left behind catches
 * them up when it comes back, and every region of a restarted store learns who leads.
 *
 * Times are `performance.now()`: a wall-clock jump must not make a follower believe its leader
 * silent (that could let it vote against a leader that still holds a lease).
 *
 * @module
 */

/** What changed about a store. */
export type LivenessChange = "down" | "up" | "restarted";

interface Known {
  incarnation: number | undefined;
  /** When the last batch from it arrived. */
  heardAt: number;
  down: boolean;
}

/** A random incarnation for this process (never 0). */
export function newIncarnation(): number {
  const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
  return ((hi! & 0x1fffff) * 2 ** 32 + lo!) || 1;
}

/** What one store knows of the others' liveness, and the pings it owes them. */
export class StoreLiveness {
  readonly #known = new Map<number, Known>();
  readonly #sentAt = new Map<number, number>();
  /** Called once per change of a store's state. */
  onChange: (storeId: number, change: LivenessChange) => void = () => {};
  /** Pings sent and changes seen, for metrics and tests. */
  pings = 0;
  changes = 0;

  constructor(
    /** This store's incarnation (sent with every batch). */
    readonly incarnation: number,
    /** Send a ping to a store nothing was sent to for this long. */
    readonly pingMs: number,
    /** A store silent this long is down. */
    readonly downMs: number,
    /** Sends an empty batch (a ping) to a store. */
    readonly ping: (storeId: number) => void,
    readonly now: () => number = () => performance.now(),
  ) {}

  /** A batch arrived from `storeId`. */
  heard(storeId: number, incarnation: number | undefined): void {
    const now = this.now();
    const k = this.#known.get(storeId);
    if (!k) {
      this.#known.set(storeId, { incarnation, heardAt: now, down: false });
      return;
    }
    const restarted = incarnation !== undefined && k.incarnation !== undefined &&
      incarnation !== k.incarnation;
    const wasDown = k.down;
    k.heardAt = now;
    k.down = false;
    if (incarnation !== undefined) k.incarnation = incarnation;
    if (restarted) this.#change(storeId, "restarted");
    else if (wasDown) this.#change(storeId, "up");
  }

  /** Something was sent to `storeId` (no ping is owed for a while). */
  sent(storeId: number): void {
    this.#sentAt.set(storeId, this.now());
  }

  /** A send to `storeId` failed: it is down until it is heard from again. */
  unreachable(storeId: number): void {
    const k = this.#known.get(storeId);
    if (!k) {
      this.#known.set(storeId, { incarnation: undefined, heardAt: -Infinity, down: true });
      this.#change(storeId, "down");
    } else if (!k.down) {
      k.down = true;
      this.#change(storeId, "down");
    }
  }

  /**
   * Pings every store in `stores` that nothing was sent to lately, and marks down the ones
   * silent for too long. Call it on every tick with the stores this one shares regions with.
   */
  tick(stores: Iterable<number>): void {
    const now = this.now();
    for (const id of stores) {
      if (now - (this.#sentAt.get(id) ?? -Infinity) >= this.pingMs) {
        this.#sentAt.set(id, now);
        this.pings++;
        this.ping(id);
      }
      const k = this.#known.get(id);
      if (k && !k.down && now - k.heardAt >= this.downMs) {
        k.down = true;
        this.#change(id, "down");
      }
    }
  }

  /** Whether `storeId` is known down. A store never heard from is not (yet). */
  isDown(storeId: number): boolean {
    return this.#known.get(storeId)?.down ?? false;
  }

  /** When `storeId` was last heard from, if ever. */
  heardAt(storeId: number): number | undefined {
    const t = this.#known.get(storeId)?.heardAt;
    return t === undefined || t === -Infinity ? undefined : t;
  }

  /** The incarnation `storeId` last spoke with, if known. */
  incarnationOf(storeId: number): number | undefined {
    return this.#known.get(storeId)?.incarnation;
  }

  #change(storeId: number, change: LivenessChange): void {
    this.changes++;
    this.onChange(storeId, change);
  }
}
