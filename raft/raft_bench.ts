/**
 * Throughput of a 3-peer in-memory group driven through RawNode's Ready loop (persist to
 * MemoryStorage, deliver messages, apply, advance), for 128-byte proposals:
 * - "1 proposal per Ready": each iteration proposes one entry and runs to quiescence;
 * - "100 proposals per Ready": each iteration proposes 100 entries (100 `propose` calls), then
 *   runs to quiescence — the batching the store's Ready loop does.
 * Committed entries/s = iterations/s × entries per iteration. Run: `deno bench raft/`.
 */
import { RawNode } from "./rawnode.ts";
import { MemoryStorage } from "./storage.ts";
import type { Message } from "./types.ts";

class BenchCluster {
  readonly nodes = new Map<number, RawNode>();
  readonly storages = new Map<number, MemoryStorage>();
  applied = 0;

  constructor() {
    for (const id of [1, 2, 3]) {
      const storage = new MemoryStorage([1, 2, 3]);
      this.storages.set(id, storage);
      this.nodes.set(id, new RawNode({ id, electionTick: 10, heartbeatTick: 2, storage }));
    }
    this.nodes.get(1)!.campaign();
    this.pump();
    if (this.nodes.get(1)!.raft.state !== "Leader") throw new Error("bench: no leader");
  }

  /** Runs Ready cycles and delivers messages until nothing is left. */
  pump(): void {
    for (;;) {
      const msgs: Message[] = [];
      for (const [id, rn] of this.nodes) {
        if (!rn.hasReady()) continue;
        const s = this.storages.get(id)!;
        const rd = rn.ready();
        if (rd.snapshot) s.applySnapshot(rd.snapshot);
        s.append(rd.entries);
        if (rd.hardState) s.setHardState(rd.hardState);
        for (const m of rd.messages) msgs.push(m);
        if (id === 1) this.applied += rd.committedEntries.length;
        rn.advance(rd);
        // Keep memory flat: compact what every peer has applied.
        const applied = rn.raft.raftLog.applied;
        if (applied - s.firstIndex() > 20_000) s.compact(applied - 1000);
      }
      if (msgs.length === 0) return;
      for (const m of msgs) this.nodes.get(m.to)!.step(m);
    }
  }
}

const payload = new Uint8Array(128).fill(7);

const single = new BenchCluster();
Deno.bench("3 peers, 128-byte proposals, 1 proposal per Ready (entries/s = iter/s)", () => {
  single.nodes.get(1)!.propose(payload);
  single.pump();
});

const batched = new BenchCluster();
Deno.bench(
  "3 peers, 128-byte proposals, 100 proposals per Ready (entries/s = 100 × iter/s)",
  () => {
    const lead = batched.nodes.get(1)!;
    for (let i = 0; i < 100; i++) lead.propose(payload);
    batched.pump();
  },
);

const batchedProp = new BenchCluster();
const batch = Array.from({ length: 100 }, () => payload);
Deno.bench(
  "3 peers, 128-byte proposals, 100 per Ready in one proposeBatch (entries/s = 100 × iter/s)",
  () => {
    batchedProp.nodes.get(1)!.proposeBatch(batch);
    batchedProp.pump();
  },
);
