/**
 * What the fault injector asks of the cluster over HTTP: the scheduler's admin API (regions,
 * operators) and a store's `/debug/regions` (who leads what, as that store sees it).
 *
 * @module
 */
import type { Http } from "./http.ts";

/** A peer as both servers' JSON shows it. */
export interface PeerView {
  readonly id: number;
  readonly store_id: number;
  readonly role: string;
}

/** A region as the scheduler's admin API shows it. */
export interface RegionView {
  readonly id: number;
  readonly start_key?: string;
  readonly start_key_hex?: string;
  readonly end_key?: string;
  readonly end_key_hex?: string;
  readonly peers: readonly PeerView[];
  readonly leader: PeerView | null;
}

/** One peer of a store as its `/debug/regions` shows it. */
export interface LocalPeerView {
  readonly region: { readonly id: number; readonly peers: readonly PeerView[] };
  /** Raft state: Leader, Follower, Candidate, PreCandidate. */
  readonly role: string;
  readonly term: number;
}

/** Operator states that are final. */
const ENDED = new Set(["Finished", "Cancelled", "TimedOut"]);

/** The scheduler's admin API. */
export class Admin {
  constructor(readonly http: Http, readonly schedulerUrl: string) {}

  async regions(): Promise<RegionView[]> {
    const body = await this.http.json<{ regions: RegionView[] }>(
      "GET",
      `${this.schedulerUrl}/pd/api/v1/regions`,
      { timeoutMs: 2_000 },
    );
    return body.regions;
  }

  async regionByKey(key: string): Promise<RegionView> {
    return await this.http.json<RegionView>(
      "GET",
      `${this.schedulerUrl}/pd/api/v1/region/key/${encodeURIComponent(key)}`,
      { timeoutMs: 2_000 },
    );
  }

  /** Adds an admin operator (`{"name": ..., "region_id": ..., ...}`). */
  async addOperator(body: Record<string, unknown>): Promise<void> {
    await this.http.json("POST", `${this.schedulerUrl}/pd/api/v1/operators`, {
      json: body,
      timeoutMs: 2_000,
    });
  }

  /**
   * Waits until region `regionId`'s operator has ended; returns its final status, or
   * "Running" if it had not ended within `timeoutMs`.
   */
  async waitOperator(regionId: number, timeoutMs: number, signal?: AbortSignal): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let status = "Running";
    while (Date.now() < deadline && !signal?.aborted) {
      try {
        const op = await this.http.json<{ status: string }>(
          "GET",
          `${this.schedulerUrl}/pd/api/v1/operators/${regionId}`,
          { timeoutMs: 1_000 },
        );
        status = op.status;
        if (ENDED.has(status)) return status;
      } catch { /* the scheduler may be busy or briefly cut off: keep asking */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    return status;
  }
}

/** A store's own view of its peers. */
export async function storePeers(http: Http, storeUrl: string): Promise<LocalPeerView[]> {
  const body = await http.json<{ regions: LocalPeerView[] }>("GET", `${storeUrl}/debug/regions`, {
    timeoutMs: 1_000,
  });
  return body.regions;
}
