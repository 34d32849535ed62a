/**
 * Bookkeeping for ReadIndex requests (Raft thesis §6.4): the leader records its commit index
 * when a read arrives, confirms it is still the leader with a round of heartbeats carrying the
 * request's context, and answers once a quorum acknowledged that round.
 *
 * @module
 */
import type { Message } from "./types.ts";

/** A read waiting for its heartbeat round. */
export interface ReadIndexStatus {
  /** The original MsgReadIndex (its `from` says who gets the answer). */
  readonly req: Message;
  /** The leader's commit index when the request arrived: the read index. */
  readonly index: number;
  /** Peers that acknowledged a heartbeat carrying this request's context. */
  readonly acks: Set<number>;
}

/** Hex key of a request context, so contexts can index a Map. */
function ctxKey(ctx: Uint8Array): string {
  let s = "";
  for (const b of ctx) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * Pending reads, in arrival order. Invariant: `queue` holds exactly the keys of `pending`, and
 * the read indexes along it never decrease, so acknowledging one request confirms all earlier
 * ones too (a heartbeat round that proves leadership now proves it for older requests).
 */
export class ReadOnly {
  readonly pending = new Map<string, ReadIndexStatus>();
  queue: string[] = [];

  /** Records a read at commit index `index`. A duplicate context is ignored. */
  addRequest(index: number, m: Message): void {
    const key = ctxKey(m.entries[0]!.data);
    if (this.pending.has(key)) return;
    this.pending.set(key, { req: m, index, acks: new Set() });
    this.queue.push(key);
  }

  /** Records that `id` acknowledged the round for `ctx`; returns the acks so far. */
  recvAck(id: number, ctx: Uint8Array): Set<number> | undefined {
    const rs = this.pending.get(ctxKey(ctx));
    if (rs === undefined) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Removes and returns every request up to and including the one for `ctx`. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = ctxKey(ctx);
    const i = this.queue.indexOf(key);
    if (i < 0) return [];
    const done = this.queue.slice(0, i + 1).map((k) => this.pending.get(k)!);
    for (const k of this.queue.slice(0, i + 1)) this.pending.delete(k);
    this.queue = this.queue.slice(i + 1);
    return done;
  }

  /** Context of the newest pending request (sent with heartbeats), if any. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    const k = this.queue.at(-1);
    return k === undefined ? undefined : this.pending.get(k)!.req.entries[0]!.data;
  }
}
