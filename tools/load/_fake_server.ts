/**
 * Test helper: a fake mrkv store or etcd member on 127.0.0.1 that counts requests.
 *
 * @module
 */
import type { TargetKind } from "./targets.ts";

/**
 * A tiny in-process stand-in for an mrkv store or an etcd member on 127.0.0.1, port 0. Several
 * fakes can share one `data` map to act as one cluster with several endpoints. `failEvery`
 * makes every n-th request fail the way that server fails (503 NotLeader / gRPC Unavailable).
 */
export class FakeServer {
  readonly counts = { put: 0, get: 0, other: 0 };
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  #seen = 0;

  constructor(
    readonly kind: TargetKind,
    readonly data: Map<string, Uint8Array>,
    readonly failEvery = 0,
  ) {
    this.server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.addr.port}`;
  }

  async #handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    this.#seen++;
    const fail = this.failEvery > 0 && this.#seen % this.failEvery === 0;
    return this.kind === "mrkv"
      ? await this.#mrkv(req, path, fail)
      : await this.#etcd(req, path, fail);
  }

  async #mrkv(req: Request, path: string, fail: boolean): Promise<Response> {
    const m = /^\/kv\/(.+)$/.exec(path);
    if (!m) {
      this.counts.other++;
      return Response.json({ error: { code: "NotFound", message: path } }, { status: 404 });
    }
    const key = decodeURIComponent(m[1]!);
    if (req.method === "PUT") this.counts.put++;
    else if (req.method === "GET") this.counts.get++;
    else this.counts.other++;
    const body = new Uint8Array(await req.arrayBuffer());
    if (fail) {
      return Response.json({ error: { code: "NotLeader", message: "peer 3 is not the leader" } }, {
        status: 503,
        headers: { "retry-after": "1" },
      });
    }
    if (req.method === "PUT") {
      this.data.set(key, body);
      return new Response(null, { status: 204 });
    }
    const value = this.data.get(key);
    if (!value) {
      return Response.json({ error: { code: "KeyNotFound", message: key } }, { status: 404 });
    }
    return new Response(value as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": "application/octet-stream" },
    });
  }

  async #etcd(req: Request, path: string, fail: boolean): Promise<Response> {
    const body = await req.json() as { key?: string; value?: string };
    if (fail) {
      return Response.json({ error: "etcdserver: leader changed", code: 14, message: "x" }, {
        status: 503,
      });
    }
    const key = atob(body.key ?? "");
    const header = { cluster_id: "1", member_id: "2", revision: "3", raft_term: "4" };
    if (path === "/v3/kv/put") {
      this.counts.put++;
      this.data.set(key, Uint8Array.from(atob(body.value ?? ""), (c) => c.charCodeAt(0)));
      return Response.json({ header });
    }
    if (path === "/v3/kv/range") {
      this.counts.get++;
      const value = this.data.get(key);
      if (!value) return Response.json({ header }); // the gateway omits empty kvs and count
      const b64 = btoa(String.fromCharCode(...value));
      return Response.json({ header, kvs: [{ key: body.key, value: b64 }], count: "1" });
    }
    this.counts.other++;
    return Response.json({ error: "Not Found", code: 5, message: "Not Found" }, { status: 404 });
  }
}
