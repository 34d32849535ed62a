/**
 * Compact binary (CBOR, via cborg) encodings of messages, entries and conf changes. Each value
 * is a positional array (no field names on the wire); enums are small integers. Decoders check
 * every field's shape and throw `DecodeError` on anything unexpected: nothing from the wire is
 * cast unchecked.
 *
 * @module
 */
import { decode, encode } from "cborg";
import { confStateProblem } from "./confchange.ts";
import { DecodeError } from "./errors.ts";
import {
  type ConfChange,
  type ConfChangeSingle,
  type ConfChangeTransition,
  type ConfChangeType,
  type ConfChangeV2,
  type ConfState,
  type Entry,
  type EntryType,
  isJointConfState,
  type Message,
  MESSAGE_TYPES,
  type Snapshot,
} from "./types.ts";

// Wire codes are positions in these tables: only ever append.
const ENTRY_TYPES: readonly EntryType[] = ["Normal", "ConfChange", "ConfChangeV2"];
const CONF_CHANGE_TYPES: readonly ConfChangeType[] = ["AddNode", "AddLearnerNode", "RemoveNode"];
const TRANSITIONS: readonly ConfChangeTransition[] = ["Auto", "JointImplicit", "JointExplicit"];

/** Version tag leading every top-level encoding, so the format can evolve. */
const VERSION = 1;

// --- to wire arrays --------------------------------------------------------------------------

/** Entry as [term, index, typeCode, data]. */
function entryToWire(e: Entry): unknown[] {
  return [e.term, e.index, ENTRY_TYPES.indexOf(e.type), e.data];
}

/**
 * ConfState as [voters, learners], or, for a joint configuration, [voters, learners,
 * votersOutgoing, learnersNext, autoLeave]. The short form keeps non-joint encodings unchanged.
 */
function confStateToWire(cs: ConfState): unknown[] {
  if (!isJointConfState(cs)) return [cs.voters, cs.learners];
  return [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext ?? [], cs.autoLeave ?? false];
}

/** Snapshot as [index, term, confState, data]. */
function snapshotToWire(s: Snapshot): unknown[] {
  return [s.metadata.index, s.metadata.term, confStateToWire(s.metadata.confState), s.data];
}

/**
 * Encodes a message as [version, type, to, from, term, logTerm, index, entries, commit,
 * snapshot|null, reject, rejectHint, context|null].
 */
export function encodeMessage(m: Message): Uint8Array {
  return encode([
    VERSION,
    MESSAGE_TYPES.indexOf(m.type),
    m.to,
    m.from,
    m.term,
    m.logTerm,
    m.index,
    m.entries.map(entryToWire),
    m.commit,
    m.snapshot === undefined ? null : snapshotToWire(m.snapshot),
    m.reject,
    m.rejectHint,
    m.context ?? null,
  ]);
}

/** Encodes a log entry (e.g. for a storage engine). */
export function encodeEntry(e: Entry): Uint8Array {
  return encode([VERSION, ...entryToWire(e)]);
}

/** Encodes a conf change: the `data` of a `ConfChange` entry. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encode([VERSION, CONF_CHANGE_TYPES.indexOf(cc.type), cc.nodeId, cc.context ?? null]);
}

/**
 * Encodes a `ConfChangeV2` as [version, transition, [[type, nodeId], ...], context|null]: the
 * `data` of a `ConfChangeV2` entry.
 */
export function encodeConfChangeV2(cc: ConfChangeV2): Uint8Array {
  return encode([
    VERSION,
    TRANSITIONS.indexOf(cc.transition),
    cc.changes.map((c) => [CONF_CHANGE_TYPES.indexOf(c.type), c.nodeId]),
    cc.context ?? null,
  ]);
}

// --- from wire arrays, validated ------------------------------------------------------------

/** Throws the decoders' one error type, naming the field and the problem. */
function fail(what: string, why: string): never {
  throw new DecodeError(`cannot decode ${what}: ${why}`);
}

/** Parses CBOR, turning any parse failure into a `DecodeError` (with the cause). */
function cbor(bytes: Uint8Array, what: string): unknown {
  if (!(bytes instanceof Uint8Array)) fail(what, "input is not a Uint8Array");
  try {
    return decode(bytes);
  } catch (e) {
    throw new DecodeError(`cannot decode ${what}: invalid CBOR`, { cause: e });
  }
}

/** An array, of exactly `len` elements when given. */
function arr(v: unknown, what: string, len?: number): unknown[] {
  if (!Array.isArray(v)) fail(what, "expected an array");
  if (len !== undefined && v.length !== len) fail(what, `expected ${len} fields, got ${v.length}`);
  return v;
}

/** A non-negative safe integer (ids, terms, indexes). */
function uint(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    fail(what, `expected a non-negative safe integer, got ${String(v)}`);
  }
  return v;
}

/** A CBOR byte string (a text string is refused). */
function bytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(what, "expected bytes");
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== "boolean") fail(what, "expected a boolean");
  return v;
}

/** An enum value given by its code (position in `table`). */
function enumOf<T>(table: readonly T[], v: unknown, what: string): T {
  const i = uint(v, what);
  if (i >= table.length) fail(what, `unknown code ${i}`);
  return table[i]!;
}

/** Refuses an encoding from a newer (or unknown) format version. */
function version(v: unknown, what: string): void {
  if (v !== VERSION) fail(what, `unsupported version ${String(v)}`);
}

function entryFromWire(f: unknown[], what: string): Entry {
  return {
    term: uint(f[0], `${what}.term`),
    index: uint(f[1], `${what}.index`),
    type: enumOf(ENTRY_TYPES, f[2], `${what}.type`),
    data: bytes(f[3], `${what}.data`),
  };
}

function idList(v: unknown, what: string): number[] {
  return arr(v, what).map((x, i) => uint(x, `${what}[${i}]`));
}

/**
 * A ConfState in the short (2 fields) or joint (5 fields) form, checked against the
 * configuration invariants so that a bad configuration never reaches the core. A joint form
 * must describe a joint configuration (the short form is the only encoding of the others).
 */
function confStateFromWire(v: unknown, what: string): ConfState {
  const f = arr(v, what);
  if (f.length !== 2 && f.length !== 5) fail(what, `expected 2 or 5 fields, got ${f.length}`);
  let cs: ConfState = {
    voters: idList(f[0], `${what}.voters`),
    learners: idList(f[1], `${what}.learners`),
  };
  if (f.length === 5) {
    cs = {
      ...cs,
      votersOutgoing: idList(f[2], `${what}.votersOutgoing`),
      learnersNext: idList(f[3], `${what}.learnersNext`),
      autoLeave: bool(f[4], `${what}.autoLeave`),
    };
    if (!isJointConfState(cs)) fail(what, "joint form without outgoing voters");
  }
  const problem = confStateProblem(cs);
  if (problem !== undefined) fail(what, problem);
  return cs;
}

function snapshotFromWire(v: unknown): Snapshot {
  const f = arr(v, "snapshot", 4);
  return {
    metadata: {
      index: uint(f[0], "snapshot.index"),
      term: uint(f[1], "snapshot.term"),
      confState: confStateFromWire(f[2], "snapshot.confState"),
    },
    data: bytes(f[3], "snapshot.data"),
  };
}

/** Decodes a message; throws `DecodeError` on malformed input. */
export function decodeMessage(b: Uint8Array): Message {
  const f = arr(cbor(b, "message"), "message", 13);
  version(f[0], "message");
  const m: Message = {
    type: enumOf(MESSAGE_TYPES, f[1], "message.type"),
    to: uint(f[2], "message.to"),
    from: uint(f[3], "message.from"),
    term: uint(f[4], "message.term"),
    logTerm: uint(f[5], "message.logTerm"),
    index: uint(f[6], "message.index"),
    entries: arr(f[7], "message.entries").map((e, i) =>
      entryFromWire(arr(e, `message.entries[${i}]`, 4), `message.entries[${i}]`)
    ),
    commit: uint(f[8], "message.commit"),
    snapshot: f[9] === null ? undefined : snapshotFromWire(f[9]),
    reject: bool(f[10], "message.reject"),
    rejectHint: uint(f[11], "message.rejectHint"),
    context: f[12] === null ? undefined : bytes(f[12], "message.context"),
  };
  return m;
}

/** Decodes a log entry; throws `DecodeError` on malformed input. */
export function decodeEntry(b: Uint8Array): Entry {
  const f = arr(cbor(b, "entry"), "entry", 5);
  version(f[0], "entry");
  return entryFromWire(f.slice(1), "entry");
}

/** Decodes a conf change; throws `DecodeError` on malformed input. */
export function decodeConfChange(b: Uint8Array): ConfChange {
  const f = arr(cbor(b, "conf change"), "conf change", 4);
  version(f[0], "conf change");
  const nodeId = uint(f[2], "conf change.nodeId");
  if (nodeId === 0) fail("conf change", "nodeId must be > 0");
  return {
    type: enumOf(CONF_CHANGE_TYPES, f[1], "conf change.type"),
    nodeId,
    context: f[3] === null ? undefined : bytes(f[3], "conf change.context"),
  };
}

/**
 * Decodes a `ConfChangeV2`; throws `DecodeError` on malformed input. A change without changes
 * (leave the joint configuration) must have the `Auto` transition.
 */
export function decodeConfChangeV2(b: Uint8Array): ConfChangeV2 {
  const what = "conf change v2";
  const f = arr(cbor(b, what), what, 4);
  version(f[0], what);
  const transition = enumOf(TRANSITIONS, f[1], `${what}.transition`);
  const changes: ConfChangeSingle[] = arr(f[2], `${what}.changes`).map((c, i) => {
    const w = `${what}.changes[${i}]`;
    const cf = arr(c, w, 2);
    const nodeId = uint(cf[1], `${w}.nodeId`);
    if (nodeId === 0) fail(w, "nodeId must be > 0");
    return { type: enumOf(CONF_CHANGE_TYPES, cf[0], `${w}.type`), nodeId };
  });
  if (changes.length === 0 && transition !== "Auto") {
    fail(what, `a leave-joint change (no changes) must use the Auto transition, not ${transition}`);
  }
  return {
    transition,
    changes,
    context: f[3] === null ? undefined : bytes(f[3], `${what}.context`),
  };
}

/**
 * Decodes the conf change a `ConfChange` or `ConfChangeV2` entry carries; throws `DecodeError`
 * for malformed data or an entry of another type.
 */
export function decodeConfChangeEntry(e: Entry): ConfChange | ConfChangeV2 {
  if (e.type === "ConfChange") return decodeConfChange(e.data);
  if (e.type === "ConfChangeV2") return decodeConfChangeV2(e.data);
  throw new DecodeError(`cannot decode a conf change from a ${e.type} entry at ${e.index}`);
}
