/**
 * How region peers' Raft messages travel between stores.
 *
 * A {@link RaftEnvelope} wraps one Raft message with what the receiving store needs to route
 * it without knowing the region yet: the region's ID, range and epoch and both peers (TiKV's
 * `RaftMessage`). The Ready loop hands every destination store one batch per flush;
 * implementations never block one store's traffic on another's and never throw to the caller:
 * Raft tolerates loss, so an undeliverable batch is dropped and retried by Raft itself.
 *
 * @module
 */
import { decodeMessage, encodeMessage, type Message } from "../raft/mod.ts";
import {
  decodeCbor,
  encodeCbor,
  expectArray,
  expectBytes,
  expectId,
  expectObject,
  expectString,
  field,
  optional,
} from "../proto/codec.ts";
import { MrkvError } from "../proto/errors.ts";
import {
  decodeEpoch,
  decodePeer,
  MAX_KEY_BYTES,
  type Peer,
  type RegionEpoch,
} from "../proto/metapb.ts";

/** One Raft message and its routing context. */
export interface RaftEnvelope {
  readonly regionId: number;
  readonly fromPeer: Peer;
  readonly toPeer: Peer;
  readonly epoch: RegionEpoch;
  readonly startKey: Uint8Array;
  readonly endKey: Uint8Array;
  /** Set when the sender knows `toPeer` was removed: the receiver destroys it. */
  readonly isTombstone?: boolean;
  /**
   * With `isTombstone`: the region was not removed but merged into this region (at this epoch
   * of it), which the receiver's local peer of that region must reach first.
   */
  readonly mergeTarget?: { readonly id: number; readonly epoch: RegionEpoch };
  readonly message: Message;
}

/** A batch of envelopes from one store to another: one HTTP request. */
export interface RaftBatch {
  readonly fromStoreId: number;
  /**
   * The sender's advertised address: receivers learn where their peers are from the traffic
   * itself, so Raft keeps working when the scheduler is out of reach (see address_book.ts).
   */
  readonly fromAddress?: string;
  /**
   * The sender process's incarnation (random per start): a batch proves its sender alive, and a
   * new incarnation says it restarted (see liveness.ts). A batch may carry no envelopes at all:
   * a liveness ping.
   */
  readonly incarnation?: number;
  readonly envelopes: readonly RaftEnvelope[];
}

/** Delivers batches of Raft messages to other stores. */
export interface Transport {
  /**
   * Queues `envelopes` for `toStoreId`. Never blocks and never throws. With no envelopes, sends
   * an empty batch (a liveness ping) unless something is queued for that store already.
   */
  send(toStoreId: number, envelopes: readonly RaftEnvelope[]): void;
  /** Stops sending; queued messages are dropped. */
  close(): void;
}

/** Receives the batches addressed to one store. */
export type RaftReceiver = (batch: RaftBatch) => void;

/** Encodes a batch for the wire (CBOR; Raft messages nested as their own CBOR bytes). */
export function encodeRaftBatch(batch: RaftBatch): Uint8Array<ArrayBuffer> {
  return encodeCbor({
    fromStoreId: batch.fromStoreId,
    ...(batch.fromAddress === undefined ? {} : { fromAddress: batch.fromAddress }),
    ...(batch.incarnation === undefined ? {} : { incarnation: batch.incarnation }),
    envelopes: batch.envelopes.map((e) => ({ ...e, message: encodeMessage(e.message) })),
  });
}

/** Decodes and validates a batch. Throws `MrkvError("BadRequest")` on malformed input. */
export function decodeRaftBatch(bytes: Uint8Array): RaftBatch {
  const o = expectObject(decodeCbor(bytes, "raft batch"), "batch");
  return {
    fromStoreId: expectId(field(o, "fromStoreId"), "batch.fromStoreId"),
    fromAddress: optional(
      field(o, "fromAddress"),
      "batch.fromAddress",
      (v, n) => expectString(v, n, 255),
      undefined,
    ),
    incarnation: optional(field(o, "incarnation"), "batch.incarnation", expectId, undefined),
    envelopes: expectArray(field(o, "envelopes"), "batch.envelopes", decodeEnvelope, 100_000),
  };
}

function decodeMergeTarget(v: unknown, name: string): RaftEnvelope["mergeTarget"] {
  const t = expectObject(v, name);
  return {
    id: expectId(field(t, "id"), `${name}.id`),
    epoch: decodeEpoch(field(t, "epoch"), `${name}.epoch`),
  };
}

function decodeEnvelope(v: unknown, name: string): RaftEnvelope {
  const o = expectObject(v, name);
  const keyField = (k: string) => expectBytes(field(o, k), `${name}.${k}`, MAX_KEY_BYTES);
  let message: Message;
  try {
    message = decodeMessage(expectBytes(field(o, "message"), `${name}.message`, 1 << 30));
  } catch (e) {
    throw new MrkvError("BadRequest", `${name}.message: ${(e as Error).message}`, {}, { cause: e });
  }
  return {
    regionId: expectId(field(o, "regionId"), `${name}.regionId`),
    fromPeer: decodePeer(field(o, "fromPeer"), `${name}.fromPeer`),
    toPeer: decodePeer(field(o, "toPeer"), `${name}.toPeer`),
    epoch: decodeEpoch(field(o, "epoch"), `${name}.epoch`),
    startKey: keyField("startKey"),
    endKey: keyField("endKey"),
    isTombstone: optional(field(o, "isTombstone"), `${name}.isTombstone`, (x) => x === true, false),
    ...(field(o, "mergeTarget") !== undefined && {
      mergeTarget: decodeMergeTarget(field(o, "mergeTarget"), `${name}.mergeTarget`),
    }),
    message,
  };
}
