// The control plane between a volunteer and the hub: small JSON text messages over one WebSocket.
// Everything a volunteer sends is untrusted (DESIGN.md invariants 3 and 7), so both directions
// are a versioned discriminated union checked at runtime; a failure is a HearthError
// ('input/invalid') whose message names the bad field.
//
// Result tensors travel inside the `result` message as base64url strings. One self-contained
// text frame per message keeps the protocol stateless between frames (no "binary frame follows"
// pairing to get wrong under loss or interleaving); the cost is a third more bytes, which the
// hub's message-size limit bounds. Larger outputs belong on the data plane (by hash).
import { HearthError } from '../core/errors.ts';
import { isSha256Hex, sha256Hex } from '../core/hash.ts';
import { MAX_GROUP, MAX_ROUND_ID_BYTES } from './allreduce.ts';
import { type JobKind, oneKind } from './kinds/index.ts';
import {
  DTYPES,
  type OutputTensor,
  parseShape,
  SHARD_LIMITS,
  type ShardResult,
  tensorBytes,
} from './shard.ts';
import { arr, describe, int, obj, oneOf, onlyKeys, str } from './validate.ts';

export const CONTROL_PROTOCOL_VERSION = 1;

/** Bounds on control messages, whatever the transport allows. */
export const CONTROL_LIMITS = {
  /** Characters of one message (the hub's WebSocket maxPayload should not exceed this). */
  maxMessageChars: 16 * 1024 * 1024,
  maxFeatures: 64,
  maxFeatureChars: 64,
  /** base64url of a P-256 SPKI is 122 characters; a little room for other encoders. */
  maxPublicKeyChars: 256,
  /** A P-256 ECDSA signature is 64 bytes (r ‖ s): 86 base64url characters. */
  maxSignatureChars: 128,
  maxNonceChars: 64,
  maxIdChars: 256,
  maxErrorChars: 2048,
  /** Blob hashes in one `announce`. */
  maxAnnounce: 256,
  /** Peer ids in one `holders` answer. */
  maxHolders: 16,
  /** Partial holders (peers still fetching the blob) in one `holders` answer. */
  maxPartialHolders: 16,
  /** Members of one all-reduce group (protocol/allreduce.ts MAX_GROUP). */
  maxAllReduceGroup: MAX_GROUP,
  /** Elements of one tensor averaged through the hub (a hub may allow fewer). */
  maxAllReduceElements: 2 ** 26,
  /** Characters of a round id (and at most 128 UTF-8 bytes, as on the data plane). */
  maxRoundChars: MAX_ROUND_ID_BYTES,
} as const;

/** What a volunteer's device reports on hello (the scheduler matches shards by it). */
export interface ControlCapabilities {
  /** The adapter's maxBufferSize. */
  readonly maxBufferBytes: number;
  readonly features: readonly string[];
}

/** A P-256 public key as a JWK (only the public fields). */
export interface PublicJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
}

/** An output tensor as it travels: bytes as base64url. */
export interface WireOutput {
  readonly name: string;
  readonly dtype: OutputTensor['dtype'];
  readonly shape: readonly number[];
  readonly sha256: string;
  readonly data: string;
}

// ---- client → hub ----
export interface HelloMessage {
  readonly v: 1;
  readonly type: 'hello';
  /** SPKI bytes as base64url, or a JWK. The volunteer id is the SHA-256 of the SPKI bytes. */
  readonly publicKey: string | PublicJwk;
  readonly capabilities: ControlCapabilities;
}
export interface AuthMessage {
  readonly v: 1;
  readonly type: 'auth';
  /** ECDSA P-256 / SHA-256 signature (IEEE P1363, r ‖ s) of `challengeBytes(nonce, id)`, base64url. */
  readonly signature: string;
}
export interface LeaseRequestMessage {
  readonly v: 1;
  readonly type: 'lease-request';
}
export interface HeartbeatMessage {
  readonly v: 1;
  readonly type: 'heartbeat';
  /** The lease id from the `lease` message. */
  readonly lease: string;
}
export interface ResultMessage {
  readonly v: 1;
  readonly type: 'result';
  readonly result: ShardResult;
}
/**
 * "I could not run this shard": the error the runner gave. The hub records deterministic errors
 * (a kernel that does not compile) like results and fails the shard once enough distinct
 * volunteers report the same one; any other error only hands the shard to someone else.
 */
export interface ShardFailedMessage {
  readonly v: 1;
  readonly type: 'shard-failed';
  readonly shard: string;
  /** The HearthError code (`wgsl/compile`, `gpu/device-lost`, …). */
  readonly code: string;
  readonly message: string;
}
/** "This connection's peer holds these verified blobs": the hub lists it as a source for them. */
export interface AnnounceMessage {
  readonly v: 1;
  readonly type: 'announce';
  readonly blobs: readonly string[];
}
/** "Who else holds this blob?" */
export interface HoldersRequestMessage {
  readonly v: 1;
  readonly type: 'holders-request';
  readonly sha256: string;
}
/** One member's contribution to an all-reduce round, as a member reports it. */
export interface ReportedContribution {
  /** The member's PeerJS id (issued by the hub with `welcome`). */
  readonly peer: string;
  /** The volunteer id it gave on the ring. */
  readonly volunteer: string;
  /** SHA-256 of the tensor it contributed. */
  readonly sha256: string;
  /** Its signature of contributionMessage(round, sha256) (protocol/allreduce.ts), base64url. */
  readonly signature: string;
}
/**
 * "This round finished, with these signed contributions": the hub checks each signature against
 * the key of the volunteer its peer id was issued to, stores the report and answers
 * `allreduce-ack`. Sent by any member that finished the round over the ring.
 */
export interface AllReduceReportMessage {
  readonly v: 1;
  readonly type: 'allreduce-report';
  readonly round: string;
  /** Peer ids in the round's order; the sender's own included. */
  readonly group: readonly string[];
  /** Members whose tensors are in the mean, in group order. */
  readonly contributors: readonly string[];
  /** One per contributor, in the same order. */
  readonly contributions: readonly ReportedContribution[];
  /** SHA-256 of the mean's f32 bytes. */
  readonly mean: string;
  /** Members left out. */
  readonly dropped: readonly string[];
}
/**
 * "The ring failed; let me average through the hub": the hub answers `allreduce-ticket`, a
 * one-time secret for `PUT /v1/allreduce/:round/contributions` and `GET /v1/allreduce/:round/mean`.
 * Every member that falls back sends the same group and element count.
 */
export interface AllReduceFallbackMessage {
  readonly v: 1;
  readonly type: 'allreduce-fallback';
  readonly round: string;
  readonly group: readonly string[];
  /** f32 elements of the tensor. */
  readonly elements: number;
  /** SHA-256 of the tensor's bytes, checked when they arrive. */
  readonly sha256: string;
}
export type ClientMessage =
  | HelloMessage
  | AuthMessage
  | LeaseRequestMessage
  | HeartbeatMessage
  | ResultMessage
  | AnnounceMessage
  | HoldersRequestMessage
  | AllReduceReportMessage
  | AllReduceFallbackMessage
  | ShardFailedMessage;

// ---- hub → client ----
export interface ChallengeMessage {
  readonly v: 1;
  readonly type: 'challenge';
  /** 32 random bytes as base64url, fresh for this connection. */
  readonly nonce: string;
}
export interface WelcomeMessage {
  readonly v: 1;
  readonly type: 'welcome';
  readonly volunteerId: string;
  /**
   * The PeerJS id this connection may use on the hub's PeerServer (/p2p): chosen by the hub,
   * random, and tied to this authenticated connection, so a holder the hub names is a volunteer
   * it knows. Absent when the hub runs no PeerServer.
   */
  readonly peerId?: string;
}
/** The shape of a lease's work that this layer knows: its kind. */
export interface LeaseWork {
  readonly kind: JobKind;
}
/** A WGSL job's kernel, which its shards' work does not repeat. */
export interface LeaseKernel {
  readonly source: string;
  readonly entryPoint?: string;
}
export interface LeaseMessage {
  readonly v: 1;
  readonly type: 'lease';
  readonly lease: string;
  readonly shard: string;
  readonly job: string;
  /** For WGSL work: the job's kernel (the hub includes it when it can look the job up). */
  readonly kernel?: LeaseKernel;
  /** For ONNX work: the outputs the job wants (all of the model's outputs when absent). */
  readonly outputs?: readonly string[];
  /**
   * What to compute, with blobs by SHA-256 (fetched over the data plane): the hub's planned work
   * (protocol/kinds/ ShardWork) as JSON. Only its kind is checked here.
   */
  readonly work: LeaseWork;
  /** ms since the epoch; heartbeat before it or the shard goes to someone else. */
  readonly deadline: number;
}
export interface NoWorkMessage {
  readonly v: 1;
  readonly type: 'no-work';
  /** This volunteer's results still waiting for their shards to be judged (its "awaiting" count). */
  readonly pending?: number;
}
/** What the hub did with a `shard-failed` report (hub/scheduler.ts FailureOutcome). */
export interface FailureNotedMessage {
  readonly v: 1;
  readonly type: 'failure-noted';
  readonly shard: string;
  readonly outcome: 'released' | 'recorded' | 'failed';
}
export interface ExtendedMessage {
  readonly v: 1;
  readonly type: 'extended';
  readonly lease: string;
  readonly deadline: number;
}
export type AckOutcome = 'pending' | 'valid' | 'invalid' | 'inconclusive';
export interface AckMessage {
  readonly v: 1;
  readonly type: 'ack';
  readonly shard: string;
  readonly outcome: AckOutcome;
}
export type ControlErrorCode =
  /** Not JSON, wrong types, unknown fields or kinds: the message names the field. */
  | 'bad-message'
  /** A message that needs an authenticated connection came before `welcome`. */
  | 'unauthenticated'
  /** A message out of order (a second hello, auth before hello). */
  | 'bad-state'
  /** The signature did not verify, or the key is not a P-256 key. The connection closes. */
  | 'auth-failed'
  /** No auth within the hub's deadline. The connection closes. */
  | 'auth-timeout'
  /** Over the messages-per-second limit. The connection closes. */
  | 'rate-limited'
  /** Binary frames are not part of this protocol. */
  | 'unsupported'
  /** The scheduler refused it (no such lease, wrong outputs, hashes that do not match). */
  | 'refused'
  /** The hub failed; the message may be retried. */
  | 'internal'
  /** A newer connection of the same volunteer replaced this one, which closes: do not reconnect. */
  | 'replaced';
export interface ErrorMessage {
  readonly v: 1;
  readonly type: 'error';
  readonly code: ControlErrorCode;
  readonly message: string;
}
export interface AnnouncedMessage {
  readonly v: 1;
  readonly type: 'announced';
  /** Blobs this connection is now listed for, in all. */
  readonly count: number;
}
export interface HoldersMessage {
  readonly v: 1;
  readonly type: 'holders';
  readonly sha256: string;
  /** Peer ids of connected volunteers that announced the blob, in random order (never the asker). */
  readonly peers: readonly string[];
  /**
   * With no peers: how many other volunteers are fetching the blob from the hub right now. More
   * than 0 means "ask again shortly": a copy is about to be in the swarm.
   */
  readonly fetching?: number;
  /**
   * With peers: other volunteers fetching the blob from peers right now (asked, told of holders,
   * not announced yet), in random order, never the asker. Each serves the pieces it has checked
   * against the hub's piece list; ask them beside the full holders.
   */
  readonly partial?: readonly string[];
}
/** The hub's judgement of one reported contribution. */
export type ContributionVerdict =
  /** Signed by the key of the volunteer the peer id was issued to. */
  | 'valid'
  /** The signature does not verify with that volunteer's key. */
  | 'bad-signature'
  /** The peer id was issued to another volunteer than the one named. */
  | 'wrong-volunteer'
  /** The hub never issued this peer id, or has forgotten it. */
  | 'unknown-peer';
export const CONTRIBUTION_VERDICTS: readonly ContributionVerdict[] = [
  'valid',
  'bad-signature',
  'wrong-volunteer',
  'unknown-peer',
];
export interface AllReduceAckMessage {
  readonly v: 1;
  readonly type: 'allreduce-ack';
  readonly round: string;
  /** Contributions that are not 'valid', with the hub's verdict (empty when all verified). */
  readonly flagged: readonly { readonly peer: string; readonly verdict: ContributionVerdict }[];
}
export interface AllReduceTicketMessage {
  readonly v: 1;
  readonly type: 'allreduce-ticket';
  readonly round: string;
  /** 64 hex digits: `Authorization: Bearer <ticket>` on the round's upload and mean routes. */
  readonly ticket: string;
  /** ms since the epoch: the hub averages what it has by then. */
  readonly deadline: number;
}
export type HubMessage =
  | ChallengeMessage
  | WelcomeMessage
  | LeaseMessage
  | NoWorkMessage
  | ExtendedMessage
  | AckMessage
  | ErrorMessage
  | AnnouncedMessage
  | HoldersMessage
  | AllReduceAckMessage
  | AllReduceTicketMessage
  | FailureNotedMessage;

const CLIENT_TYPES = [
  'hello',
  'auth',
  'lease-request',
  'heartbeat',
  'result',
  'announce',
  'holders-request',
  'allreduce-report',
  'allreduce-fallback',
  'shard-failed',
] as const;
const HUB_TYPES = [
  'challenge',
  'welcome',
  'lease',
  'no-work',
  'extended',
  'ack',
  'error',
  'announced',
  'holders',
  'allreduce-ack',
  'allreduce-ticket',
  'failure-noted',
] as const;
/** A PeerJS id as the hub issues them: 'h' and 32 hex digits. */
export const PEER_ID = /^h[0-9a-f]{32}$/;
const TICKET = /^[0-9a-f]{64}$/;
export const ACK_OUTCOMES: readonly AckOutcome[] = ['pending', 'valid', 'invalid', 'inconclusive'];
export const CONTROL_ERROR_CODES: readonly ControlErrorCode[] = [
  'bad-message',
  'unauthenticated',
  'bad-state',
  'auth-failed',
  'auth-timeout',
  'rate-limited',
  'unsupported',
  'refused',
  'internal',
  'replaced',
];
const B64URL = /^[A-Za-z0-9_-]*$/;
const ID = /^[A-Za-z0-9._:/@#-]{1,256}$/;

const bad = (path: string, message: string, details: Record<string, unknown> = {}): HearthError =>
  new HearthError('input/invalid', `${path}: ${message}`, { details: { path, ...details } });

/** base64url (no padding) of bytes. Works in pages, workers and Node. */
export function toBase64Url(data: ArrayBuffer | Uint8Array): string {
  const u8 = data instanceof Uint8Array ? data : new Uint8Array(data);
  let bin = '';
  for (let i = 0; i < u8.length; i += 0x8000) {
    bin += String.fromCharCode(...u8.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Bytes of a base64url string (padding optional); throws naming `path` on anything else. */
export function fromBase64Url(s: unknown, path: string, maxBytes: number): ArrayBuffer {
  if (typeof s !== 'string') throw bad(path, `expected a base64url string, got ${typeof s}.`);
  const body = s.endsWith('==') ? s.slice(0, -2) : s.endsWith('=') ? s.slice(0, -1) : s;
  if (!B64URL.test(body) || body.length % 4 === 1) throw bad(path, 'expected base64url characters.');
  const n = Math.floor((body.length * 3) / 4);
  if (n > maxBytes) throw bad(path, `${n} bytes is over the ${maxBytes}-byte limit.`, { bytes: n });
  const bin = atob(body.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (body.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

/**
 * The bytes a volunteer signs to answer a challenge. The nonce is fresh per connection, so a
 * signature seen on one connection is worthless on any other; the id ties it to one key.
 */
export function challengeBytes(nonce: string, volunteerId: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(
    `hearth-volunteer-auth/${CONTROL_PROTOCOL_VERSION}\n${nonce}\n${volunteerId}`,
  );
}

/** A volunteer's id: SHA-256 (hex) of its public key's SPKI bytes. Chosen by key, never claimed. */
export function volunteerIdOf(spki: ArrayBuffer): Promise<string> {
  return sha256Hex(spki);
}

function parseText(text: unknown, who: string): Record<string, unknown> {
  if (typeof text !== 'string') throw bad(who, `expected a JSON text message, got ${typeof text}.`);
  if (text.length > CONTROL_LIMITS.maxMessageChars) {
    throw bad(who, `${text.length} characters is over the ${CONTROL_LIMITS.maxMessageChars} limit.`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(who, `not valid JSON (${(e as Error).message}).`);
  }
  const o = obj(v, who);
  if (o.v !== CONTROL_PROTOCOL_VERSION) {
    throw bad(
      `${who}.v`,
      `this hub speaks control protocol ${CONTROL_PROTOCOL_VERSION}, the message says ${o.v === undefined ? 'nothing' : describe(o.v)}.`,
    );
  }
  return o;
}

function parsePublicKey(v: unknown, path: string): string | PublicJwk {
  if (typeof v === 'string') {
    str(v, path, { max: CONTROL_LIMITS.maxPublicKeyChars, pattern: B64URL });
    return v;
  }
  const o = obj(v, path);
  onlyKeys(o, path, ['kty', 'crv', 'x', 'y', 'ext', 'key_ops']);
  oneOf(o.kty, `${path}.kty`, ['EC'] as const);
  oneOf(o.crv, `${path}.crv`, ['P-256'] as const);
  const x = str(o.x, `${path}.x`, { max: 64, pattern: B64URL });
  const y = str(o.y, `${path}.y`, { max: 64, pattern: B64URL });
  return { kty: 'EC', crv: 'P-256', x, y };
}

function parseCapabilities(v: unknown, path: string): ControlCapabilities {
  const o = obj(v, path);
  onlyKeys(o, path, ['maxBufferBytes', 'features']);
  const maxBufferBytes = int(o.maxBufferBytes, `${path}.maxBufferBytes`, 0, Number.MAX_SAFE_INTEGER);
  const features = arr(o.features, `${path}.features`, CONTROL_LIMITS.maxFeatures).map((f, i) =>
    str(f, `${path}.features[${i}]`, { max: CONTROL_LIMITS.maxFeatureChars }),
  );
  return { maxBufferBytes, features };
}

function parseOutput(v: unknown, path: string): OutputTensor {
  const o = obj(v, path);
  onlyKeys(o, path, ['name', 'dtype', 'shape', 'sha256', 'data']);
  const name = str(o.name, `${path}.name`, { max: 128 });
  const dtype = oneOf(o.dtype, `${path}.dtype`, DTYPES);
  const shape = parseShape(o.shape, `${path}.shape`);
  if (!isSha256Hex(o.sha256)) throw bad(`${path}.sha256`, 'expected 64 lowercase hex digits.');
  const want = tensorBytes(dtype, shape);
  const limit = Math.min(SHARD_LIMITS.maxTensorBytes, CONTROL_LIMITS.maxMessageChars);
  if (want > limit) throw bad(path, `${want} bytes is over the ${limit}-byte limit.`, { bytes: want });
  const data = fromBase64Url(o.data, `${path}.data`, limit);
  if (data.byteLength !== want) {
    throw bad(`${path}.data`, `${dtype}[${shape.join(', ')}] needs ${want} bytes, got ${data.byteLength}.`, {
      expected: want,
      got: data.byteLength,
    });
  }
  return { name, dtype, shape, sha256: o.sha256, data };
}

function parseResult(v: unknown, path: string): ShardResult {
  const o = obj(v, path);
  onlyKeys(o, path, ['v', 'shard', 'job', 'kind', 'outputs', 'backend', 'device', 'ms']);
  if (o.v !== 1) throw bad(`${path}.v`, `expected 1, got ${o.v === undefined ? 'nothing' : describe(o.v)}.`);
  const shard = str(o.shard, `${path}.shard`, { pattern: ID });
  const job = str(o.job, `${path}.job`, { pattern: ID });
  const kind = oneKind(o.kind, `${path}.kind`);
  const list = arr(o.outputs, `${path}.outputs`, SHARD_LIMITS.maxTensors);
  if (list.length === 0) throw bad(`${path}.outputs`, 'expected at least one output.');
  const outputs = list.map((x, i) => parseOutput(x, `${path}.outputs[${i}]`));
  const names = new Set(outputs.map((x) => x.name));
  if (names.size !== outputs.length) throw bad(`${path}.outputs`, 'output names must be distinct.');
  const backend = oneOf(o.backend, `${path}.backend`, ['webgpu', 'wasm'] as const);
  const device = str(o.device, `${path}.device`, { max: 256 });
  if (typeof o.ms !== 'number' || !Number.isFinite(o.ms) || o.ms < 0) {
    throw bad(`${path}.ms`, 'expected a finite number ≥ 0.');
  }
  return { v: 1, shard, job, kind, outputs, backend, device, ms: o.ms };
}

/** An all-reduce round id: 1 to 128 UTF-8 bytes, no control characters (it names URLs and rows). */
export function parseRoundId(v: unknown, path: string): string {
  const round = str(v, path, { max: CONTROL_LIMITS.maxRoundChars });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(round)) throw bad(path, 'control characters are not allowed.');
  if (new TextEncoder().encode(round).byteLength > MAX_ROUND_ID_BYTES) {
    throw bad(path, `at most ${MAX_ROUND_ID_BYTES} UTF-8 bytes.`);
  }
  return round;
}

function sha(v: unknown, path: string): string {
  if (!isSha256Hex(v)) throw bad(path, 'expected 64 lowercase hex digits.');
  return v;
}

/** Distinct hub-issued peer ids, at least `min` of them. */
function peerList(v: unknown, path: string, min: number): string[] {
  const list = arr(v, path, CONTROL_LIMITS.maxAllReduceGroup).map((p, i) =>
    str(p, `${path}[${i}]`, { pattern: PEER_ID }),
  );
  if (list.length < min) throw bad(path, `expected at least ${min} peer ids.`);
  if (new Set(list).size !== list.length) throw bad(path, 'a peer id appears twice.');
  return list;
}

function parseReport(o: Record<string, unknown>): AllReduceReportMessage {
  onlyKeys(o, 'message', ['v', 'type', 'round', 'group', 'contributors', 'contributions', 'mean', 'dropped']);
  const round = parseRoundId(o.round, 'message.round');
  const group = peerList(o.group, 'message.group', 2);
  const members = new Set(group);
  const inGroup = (list: string[], path: string) => {
    list.forEach((p, i) => {
      if (!members.has(p)) throw bad(`${path}[${i}]`, 'not a member of message.group.');
    });
    return list;
  };
  const contributors = inGroup(peerList(o.contributors, 'message.contributors', 1), 'message.contributors');
  const dropped = inGroup(peerList(o.dropped, 'message.dropped', 0), 'message.dropped');
  const list = arr(o.contributions, 'message.contributions', CONTROL_LIMITS.maxAllReduceGroup);
  if (list.length !== contributors.length) {
    throw bad(
      'message.contributions',
      `expected one per contributor (${contributors.length}), got ${list.length}.`,
    );
  }
  const contributions = list.map((c, i): ReportedContribution => {
    const path = `message.contributions[${i}]`;
    const x = obj(c, path);
    onlyKeys(x, path, ['peer', 'volunteer', 'sha256', 'signature']);
    const peer = str(x.peer, `${path}.peer`, { pattern: PEER_ID });
    if (peer !== contributors[i])
      throw bad(`${path}.peer`, `expected ${contributors[i]} (contributors[${i}]).`);
    if (!isSha256Hex(x.volunteer))
      throw bad(`${path}.volunteer`, 'expected a volunteer id (64 lowercase hex digits).');
    return {
      peer,
      volunteer: x.volunteer,
      sha256: sha(x.sha256, `${path}.sha256`),
      signature: str(x.signature, `${path}.signature`, {
        max: CONTROL_LIMITS.maxSignatureChars,
        pattern: B64URL,
      }),
    };
  });
  return {
    v: 1,
    type: 'allreduce-report',
    round,
    group,
    contributors,
    contributions,
    mean: sha(o.mean, 'message.mean'),
    dropped,
  };
}

/**
 * Checks a message from a volunteer. Throws a HearthError ('input/invalid') naming the bad field.
 *
 * @example
 * const m = parseClientMessage(text);
 * if (m.type === 'hello') m.capabilities.maxBufferBytes;
 */
export function parseClientMessage(text: unknown): ClientMessage {
  const o = parseText(text, 'message');
  const type = oneOf(o.type, 'message.type', CLIENT_TYPES);
  switch (type) {
    case 'hello':
      onlyKeys(o, 'message', ['v', 'type', 'publicKey', 'capabilities']);
      return {
        v: 1,
        type,
        publicKey: parsePublicKey(o.publicKey, 'message.publicKey'),
        capabilities: parseCapabilities(o.capabilities, 'message.capabilities'),
      };
    case 'auth':
      onlyKeys(o, 'message', ['v', 'type', 'signature']);
      return {
        v: 1,
        type,
        signature: str(o.signature, 'message.signature', {
          max: CONTROL_LIMITS.maxSignatureChars,
          pattern: B64URL,
        }),
      };
    case 'lease-request':
      onlyKeys(o, 'message', ['v', 'type']);
      return { v: 1, type };
    case 'heartbeat':
      onlyKeys(o, 'message', ['v', 'type', 'lease']);
      return { v: 1, type, lease: str(o.lease, 'message.lease', { pattern: ID }) };
    case 'announce': {
      onlyKeys(o, 'message', ['v', 'type', 'blobs']);
      const blobs = arr(o.blobs, 'message.blobs', CONTROL_LIMITS.maxAnnounce).map((b, i) => {
        if (!isSha256Hex(b)) throw bad(`message.blobs[${i}]`, 'expected 64 lowercase hex digits.');
        return b;
      });
      return { v: 1, type, blobs };
    }
    case 'holders-request':
      onlyKeys(o, 'message', ['v', 'type', 'sha256']);
      if (!isSha256Hex(o.sha256)) throw bad('message.sha256', 'expected 64 lowercase hex digits.');
      return { v: 1, type, sha256: o.sha256 };
    case 'shard-failed':
      onlyKeys(o, 'message', ['v', 'type', 'shard', 'code', 'message']);
      return {
        v: 1,
        type,
        shard: str(o.shard, 'message.shard', { pattern: ID }),
        code: str(o.code, 'message.code', { max: 64, pattern: /^[a-z0-9-]+\/[a-z0-9-]+$/ }),
        message: str(o.message, 'message.message', { max: CONTROL_LIMITS.maxErrorChars }),
      };
    case 'result':
      onlyKeys(o, 'message', ['v', 'type', 'result']);
      return { v: 1, type: 'result', result: parseResult(o.result, 'message.result') };
    case 'allreduce-report':
      return parseReport(o);
    case 'allreduce-fallback':
      onlyKeys(o, 'message', ['v', 'type', 'round', 'group', 'elements', 'sha256']);
      return {
        v: 1,
        type,
        round: parseRoundId(o.round, 'message.round'),
        group: peerList(o.group, 'message.group', 1),
        elements: int(o.elements, 'message.elements', 1, CONTROL_LIMITS.maxAllReduceElements),
        sha256: sha(o.sha256, 'message.sha256'),
      };
  }
}

function parseKernel(v: unknown, path: string): LeaseKernel {
  const o = obj(v, path);
  onlyKeys(o, path, ['source', 'entryPoint']);
  const source = str(o.source, `${path}.source`, { max: SHARD_LIMITS.maxSourceChars });
  if (o.entryPoint === undefined) return { source };
  const entryPoint = str(o.entryPoint, `${path}.entryPoint`, {
    max: 128,
    pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
  });
  return { source, entryPoint };
}

/**
 * Checks a message from the hub (the volunteer trusts the hub to decide, not to be well formed).
 * A lease's `work` is checked for its kind only; the worker's parseShard checks the shard it
 * becomes.
 */
export function parseHubMessage(text: unknown): HubMessage {
  const o = parseText(text, 'message');
  const type = oneOf(o.type, 'message.type', HUB_TYPES);
  const time = (v: unknown, path: string) => int(v, path, 0, Number.MAX_SAFE_INTEGER);
  switch (type) {
    case 'challenge':
      onlyKeys(o, 'message', ['v', 'type', 'nonce']);
      return {
        v: 1,
        type,
        nonce: str(o.nonce, 'message.nonce', { max: CONTROL_LIMITS.maxNonceChars, pattern: B64URL }),
      };
    case 'welcome':
      onlyKeys(o, 'message', ['v', 'type', 'volunteerId', 'peerId']);
      if (!isSha256Hex(o.volunteerId)) throw bad('message.volunteerId', 'expected 64 lowercase hex digits.');
      if (o.peerId === undefined) return { v: 1, type, volunteerId: o.volunteerId };
      return {
        v: 1,
        type,
        volunteerId: o.volunteerId,
        peerId: str(o.peerId, 'message.peerId', { pattern: PEER_ID }),
      };
    case 'announced':
      onlyKeys(o, 'message', ['v', 'type', 'count']);
      return { v: 1, type, count: int(o.count, 'message.count', 0, Number.MAX_SAFE_INTEGER) };
    case 'holders': {
      onlyKeys(o, 'message', ['v', 'type', 'sha256', 'peers', 'fetching', 'partial']);
      if (!isSha256Hex(o.sha256)) throw bad('message.sha256', 'expected 64 lowercase hex digits.');
      const peers = arr(o.peers, 'message.peers', CONTROL_LIMITS.maxHolders).map((p, i) =>
        str(p, `message.peers[${i}]`, { pattern: PEER_ID }),
      );
      const partial =
        o.partial === undefined
          ? undefined
          : arr(o.partial, 'message.partial', CONTROL_LIMITS.maxPartialHolders).map((p, i) =>
              str(p, `message.partial[${i}]`, { pattern: PEER_ID }),
            );
      const fetching =
        o.fetching === undefined
          ? undefined
          : int(o.fetching, 'message.fetching', 0, Number.MAX_SAFE_INTEGER);
      return {
        v: 1,
        type,
        sha256: o.sha256,
        peers,
        ...(fetching === undefined ? {} : { fetching }),
        ...(partial === undefined ? {} : { partial }),
      };
    }
    case 'lease': {
      onlyKeys(o, 'message', ['v', 'type', 'lease', 'shard', 'job', 'kernel', 'outputs', 'work', 'deadline']);
      const work = obj(o.work, 'message.work');
      oneKind(work.kind, 'message.work.kind');
      const leaseWork = work as unknown as LeaseWork;
      return {
        v: 1,
        type,
        lease: str(o.lease, 'message.lease', { pattern: ID }),
        shard: str(o.shard, 'message.shard', { pattern: ID }),
        job: str(o.job, 'message.job', { pattern: ID }),
        ...(o.kernel === undefined ? {} : { kernel: parseKernel(o.kernel, 'message.kernel') }),
        ...(o.outputs === undefined
          ? {}
          : {
              outputs: arr(o.outputs, 'message.outputs', SHARD_LIMITS.maxTensors).map((x, i) =>
                str(x, `message.outputs[${i}]`, { max: 128 }),
              ),
            }),
        work: leaseWork,
        deadline: time(o.deadline, 'message.deadline'),
      };
    }
    case 'no-work':
      onlyKeys(o, 'message', ['v', 'type', 'pending']);
      if (o.pending === undefined) return { v: 1, type };
      return { v: 1, type, pending: int(o.pending, 'message.pending', 0, Number.MAX_SAFE_INTEGER) };
    case 'failure-noted':
      onlyKeys(o, 'message', ['v', 'type', 'shard', 'outcome']);
      return {
        v: 1,
        type,
        shard: str(o.shard, 'message.shard', { pattern: ID }),
        outcome: oneOf(o.outcome, 'message.outcome', ['released', 'recorded', 'failed'] as const),
      };
    case 'allreduce-ack': {
      onlyKeys(o, 'message', ['v', 'type', 'round', 'flagged']);
      const flagged = arr(o.flagged, 'message.flagged', CONTROL_LIMITS.maxAllReduceGroup).map((f, i) => {
        const x = obj(f, `message.flagged[${i}]`);
        onlyKeys(x, `message.flagged[${i}]`, ['peer', 'verdict']);
        return {
          peer: str(x.peer, `message.flagged[${i}].peer`, { pattern: PEER_ID }),
          verdict: oneOf(x.verdict, `message.flagged[${i}].verdict`, CONTRIBUTION_VERDICTS),
        };
      });
      return { v: 1, type, round: parseRoundId(o.round, 'message.round'), flagged };
    }
    case 'allreduce-ticket':
      onlyKeys(o, 'message', ['v', 'type', 'round', 'ticket', 'deadline']);
      return {
        v: 1,
        type,
        round: parseRoundId(o.round, 'message.round'),
        ticket: str(o.ticket, 'message.ticket', { pattern: TICKET }),
        deadline: time(o.deadline, 'message.deadline'),
      };
    case 'extended':
      onlyKeys(o, 'message', ['v', 'type', 'lease', 'deadline']);
      return {
        v: 1,
        type,
        lease: str(o.lease, 'message.lease', { pattern: ID }),
        deadline: time(o.deadline, 'message.deadline'),
      };
    case 'ack':
      onlyKeys(o, 'message', ['v', 'type', 'shard', 'outcome']);
      return {
        v: 1,
        type,
        shard: str(o.shard, 'message.shard', { pattern: ID }),
        outcome: oneOf(o.outcome, 'message.outcome', ACK_OUTCOMES),
      };
    default:
      onlyKeys(o, 'message', ['v', 'type', 'code', 'message']);
      return {
        v: 1,
        type: 'error',
        code: oneOf(o.code, 'message.code', CONTROL_ERROR_CODES),
        message: str(o.message, 'message.message', { max: CONTROL_LIMITS.maxErrorChars }),
      };
  }
}

/** A ShardResult as it travels in a `result` message: output bytes as base64url. */
export type WireResult = Omit<ShardResult, 'outputs'> & { readonly outputs: readonly WireOutput[] };

/** A result as it travels: output bytes as base64url. */
export function encodeResult(r: ShardResult): WireResult {
  return {
    ...r,
    outputs: r.outputs.map((o) => ({
      name: o.name,
      dtype: o.dtype,
      shape: o.shape,
      sha256: o.sha256,
      data: toBase64Url(o.data),
    })),
  };
}

/** A client message as it is sent: a result's tensors as base64url (see encodeResult). */
export type ClientWireMessage =
  | Exclude<ClientMessage, ResultMessage>
  | { readonly v: 1; readonly type: 'result'; readonly result: WireResult };
