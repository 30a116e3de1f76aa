// The all-reduce message: one ring step's chunk of a tensor, sent as a pushed blob over a
// PeerLink (which already verified its SHA-256 end to end). The blob starts with a fixed binary
// envelope that tags the chunk with its round, attempt, phase, step and chunk index, so a frame
// from an aborted attempt or another round is recognised and dropped, and so every field a peer
// sends is checked before its floats are used. Pure encode/decode, no I/O; src/net drives it.
//
// Layout, little-endian (offsets in bytes):
//   0  u8   magic 0x52 ('R') — a blob that is not an all-reduce message fails here
//   1  u8   ALLREDUCE_PROTOCOL_VERSION
//   2  u8   phase: 1 reduce-scatter, 2 all-gather
//   3  u8   dtype: 1 f32 (the only one in version 1)
//   4  u32  step (0 … members − 2)
//   8  u32  chunk index (0 … members − 1)
//  12  u32  elements in the whole tensor
//  16  u32  elements in this chunk (the payload)
//  20  u16  group size (peers named by the round, dropped ones included)
//  22  u16  round id length R (UTF-8 bytes)
//  24  u16  group index of the forwarded contribution (0xffff: none, in all-gather)
//  26  u16  volunteer identity length I (UTF-8 bytes)
//  28  32   SHA-256 of the group (ids in order) — peers with another group order are not mixed
//  60  32   reduce-scatter: the forwarded contribution's SHA-256; all-gather: digest of the
//           round's contribution list, so two peers that were told different hashes notice
//  92  u16  signature length S (ASCII base64url; 0: unsigned) — version 2
//  94  u16  zero (reserved)
//  96  R    round id
//  ..  ⌈G/8⌉ dropped-peer bitmask over the group (bit i: group[i] is out) — names the attempt
//  ..  I    volunteer identity of the forwarded contribution
//  ..  S    the contributor's signature of contributionMessage(round, sha256), base64url
//  ..  0–3  zero padding to a multiple of 4, so the payload can be read as a Float32Array in place
//  ..  4·n  payload, f32
import { HearthError } from '../core/errors.ts';
import { toHex } from '../core/hash.ts';

export const ALLREDUCE_PROTOCOL_VERSION = 2;
const MAGIC = 0x52;
const FIXED_BYTES = 96;
/** Most peers one round may name. */
export const MAX_GROUP = 1024;
/** Longest round id, in UTF-8 bytes. */
export const MAX_ROUND_ID_BYTES = 128;
/** Longest volunteer identity, in UTF-8 bytes. */
export const MAX_IDENTITY_BYTES = 256;
/** Longest contribution signature, in characters (a P-256 P1363 signature is 86 in base64url). */
export const MAX_SIGNATURE_CHARS = 128;
const NO_CONTRIBUTION = 0xffff;
const SIGNATURE = /^[A-Za-z0-9_-]*$/;
/** First line of every string a volunteer signs for a contribution (see contributionMessage). */
export const CONTRIBUTION_DOMAIN = 'hearth-allreduce/v1';

/**
 * The string a volunteer signs to vouch for its contribution to a round: a domain line that no
 * other signed string of Hearth starts with (the hub's auth challenge starts with
 * `hearth-volunteer-auth/`), the round id and the tensor's SHA-256. The hub verifies it against the
 * key the volunteer authenticated with, so a contribution is bound to one volunteer and one round.
 *
 * @example
 * const signature = await identity.sign(contributionMessage('job-7/round-12', sha256));
 */
export function contributionMessage(round: string, sha256: string): string {
  return `${CONTRIBUTION_DOMAIN}\n${round}\n${sha256}`;
}

/** Whether `message` is a contribution message (a signer refuses to sign anything else). */
export function isContributionMessage(message: string): boolean {
  const [domain, round, hash, ...rest] = message.split('\n');
  return (
    rest.length === 0 &&
    domain === CONTRIBUTION_DOMAIN &&
    round !== undefined &&
    round.length > 0 &&
    utf8.encode(round).byteLength <= MAX_ROUND_ID_BYTES &&
    hash !== undefined &&
    /^[0-9a-f]{64}$/.test(hash)
  );
}

export type AllReducePhase = 'reduce' | 'gather';
const PHASE_CODE: Readonly<Record<AllReducePhase, number>> = { reduce: 1, gather: 2 };

/** A contribution as it travels the ring: whose tensor, and its hash. */
export interface ForwardedContribution {
  /** Index of the contributing peer in the round's group. */
  readonly index: number;
  readonly sha256: string;
  /** The contributor's volunteer identity, when it gave one. */
  readonly volunteer?: string;
  /** Its signature of contributionMessage(round, sha256), base64url, when it signed. */
  readonly signature?: string;
}

/** One decoded all-reduce message. `payload` is a view into the received bytes. */
export interface AllReduceMessage {
  readonly round: string;
  readonly phase: AllReducePhase;
  readonly step: number;
  readonly chunk: number;
  readonly totalElements: number;
  readonly groupSize: number;
  /** SHA-256 (hex) of the group, see {@link groupDigest}. */
  readonly group: string;
  /** Group indices of the peers this attempt runs without, ascending. */
  readonly dropped: readonly number[];
  /** Reduce-scatter only. */
  readonly contribution?: ForwardedContribution;
  /** All-gather only: {@link contributionsDigest} as the sender computed it. */
  readonly digest?: string;
  readonly payload: Float32Array;
}

function bad(what: string, field: string): HearthError {
  return new HearthError('net/protocol', `Bad all-reduce message: ${what}.`, { details: { field } });
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

function hexInto(hex: string, out: Uint8Array, at: number): void {
  for (let i = 0; i < 32; i++) out[at + i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
}

/** Whether `bytes` claims to be an all-reduce message (magic and version); cheap, no validation. */
export function isAllReduceMessage(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && bytes[0] === MAGIC && bytes[1] === ALLREDUCE_PROTOCOL_VERSION;
}

/** The round id of something {@link isAllReduceMessage} accepted, or undefined when unreadable. */
export function peekRound(bytes: Uint8Array): string | undefined {
  if (bytes.byteLength < FIXED_BYTES) return undefined;
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(22, true);
  if (len > MAX_ROUND_ID_BYTES || FIXED_BYTES + len > bytes.byteLength) return undefined;
  try {
    return fromUtf8.decode(bytes.subarray(FIXED_BYTES, FIXED_BYTES + len));
  } catch {
    return undefined;
  }
}

/**
 * Encodes one message. The payload is copied once, into the message; fields are checked so a
 * sender cannot emit what {@link decodeAllReduce} would reject.
 *
 * @example
 * const bytes = encodeAllReduce({ round: 'r1', phase: 'reduce', step: 0, chunk: 2, totalElements: 10,
 *   groupSize: 4, group, dropped: [], contribution: { index: 2, sha256 }, payload: chunk });
 */
export function encodeAllReduce(m: AllReduceMessage): Uint8Array {
  const round = utf8.encode(m.round);
  if (round.byteLength === 0 || round.byteLength > MAX_ROUND_ID_BYTES) {
    throw new HearthError('input/invalid', `a round id is 1 to ${MAX_ROUND_ID_BYTES} UTF-8 bytes.`);
  }
  if (!Number.isInteger(m.groupSize) || m.groupSize < 1 || m.groupSize > MAX_GROUP) {
    throw new HearthError('input/invalid', `a group holds 1 to ${MAX_GROUP} peers.`);
  }
  const identity = utf8.encode(m.contribution?.volunteer ?? '');
  if (identity.byteLength > MAX_IDENTITY_BYTES) {
    throw new HearthError(
      'input/invalid',
      `a volunteer identity is at most ${MAX_IDENTITY_BYTES} UTF-8 bytes.`,
    );
  }
  const sigText = m.contribution?.signature ?? '';
  if (sigText.length > MAX_SIGNATURE_CHARS || !SIGNATURE.test(sigText)) {
    throw new HearthError(
      'input/invalid',
      `a contribution signature is at most ${MAX_SIGNATURE_CHARS} base64url characters.`,
    );
  }
  const signature = utf8.encode(sigText);
  for (const i of m.dropped) {
    if (!Number.isInteger(i) || i < 0 || i >= m.groupSize) {
      throw new HearthError(
        'input/invalid',
        `dropped: index ${i} is not a member of the group of ${m.groupSize} (0 to ${m.groupSize - 1}).`,
      );
    }
  }
  const maskBytes = Math.ceil(m.groupSize / 8);
  const head = FIXED_BYTES + round.byteLength + maskBytes + identity.byteLength + signature.byteLength;
  const payloadAt = Math.ceil(head / 4) * 4;
  const buf = new Uint8Array(payloadAt + m.payload.byteLength);
  const dv = new DataView(buf.buffer);
  buf[0] = MAGIC;
  buf[1] = ALLREDUCE_PROTOCOL_VERSION;
  buf[2] = PHASE_CODE[m.phase];
  buf[3] = 1;
  dv.setUint32(4, m.step, true);
  dv.setUint32(8, m.chunk, true);
  dv.setUint32(12, m.totalElements, true);
  dv.setUint32(16, m.payload.length, true);
  dv.setUint16(20, m.groupSize, true);
  dv.setUint16(22, round.byteLength, true);
  dv.setUint16(24, m.contribution ? m.contribution.index : NO_CONTRIBUTION, true);
  dv.setUint16(26, identity.byteLength, true);
  hexInto(m.group, buf, 28);
  const hash = m.phase === 'reduce' ? m.contribution?.sha256 : m.digest;
  if (hash === undefined) {
    throw new HearthError(
      'input/invalid',
      `a ${m.phase} message needs its ${m.phase === 'reduce' ? 'contribution' : 'digest'}.`,
    );
  }
  hexInto(hash, buf, 60);
  dv.setUint16(92, signature.byteLength, true);
  let at = FIXED_BYTES;
  buf.set(round, at);
  at += round.byteLength;
  // In range: each index was checked against groupSize above, and the mask has groupSize bits.
  for (const i of m.dropped) {
    const k = at + (i >> 3);
    buf[k] = (buf[k] as number) | (1 << (i & 7));
  }
  at += maskBytes;
  buf.set(identity, at);
  at += identity.byteLength;
  buf.set(signature, at);
  buf.set(new Uint8Array(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), payloadAt);
  return buf;
}

/**
 * Decodes and checks one message: magic, version, phase, dtype, lengths that add up exactly,
 * group size and indices in range, the bitmask's unused bits zero, UTF-8 text. Whether step and
 * chunk fit the receiver's ring is the caller's check. Throws only HearthError('net/protocol',
 * details.field naming the bad field). The payload is a view when `bytes` is 4-byte aligned.
 *
 * @example
 * if (isAllReduceMessage(push.bytes)) { const m = decodeAllReduce(push.bytes); ... }
 */
export function decodeAllReduce(bytes: Uint8Array): AllReduceMessage {
  if (bytes.byteLength < FIXED_BYTES)
    throw bad(`${bytes.byteLength} bytes is shorter than the envelope`, 'length');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint8(0);
  if (magic !== MAGIC) throw bad(`magic byte 0x${magic.toString(16)} is not 0x52`, 'magic');
  if (bytes[1] !== ALLREDUCE_PROTOCOL_VERSION)
    throw bad(`version ${bytes[1]} is not ${ALLREDUCE_PROTOCOL_VERSION}`, 'version');
  const phase: AllReducePhase | undefined = bytes[2] === 1 ? 'reduce' : bytes[2] === 2 ? 'gather' : undefined;
  if (!phase) throw bad(`unknown phase ${bytes[2]}`, 'phase');
  if (bytes[3] !== 1) throw bad(`dtype code ${bytes[3]} is not f32`, 'dtype');
  const step = dv.getUint32(4, true);
  const chunk = dv.getUint32(8, true);
  const totalElements = dv.getUint32(12, true);
  const elements = dv.getUint32(16, true);
  const groupSize = dv.getUint16(20, true);
  const roundLen = dv.getUint16(22, true);
  const index = dv.getUint16(24, true);
  const identityLen = dv.getUint16(26, true);
  const signatureLen = dv.getUint16(92, true);
  if (dv.getUint16(94, true) !== 0) throw bad('reserved bytes 94–95 are not zero', 'reserved');
  if (groupSize < 1 || groupSize > MAX_GROUP)
    throw bad(`group size ${groupSize} is outside [1, ${MAX_GROUP}]`, 'groupSize');
  if (roundLen < 1 || roundLen > MAX_ROUND_ID_BYTES) throw bad(`round id of ${roundLen} bytes`, 'round');
  if (identityLen > MAX_IDENTITY_BYTES) throw bad(`identity of ${identityLen} bytes`, 'identity');
  if (signatureLen > MAX_SIGNATURE_CHARS) throw bad(`signature of ${signatureLen} bytes`, 'signature');
  if (elements > totalElements)
    throw bad(`a chunk of ${elements} elements in a tensor of ${totalElements}`, 'elements');
  const maskBytes = Math.ceil(groupSize / 8);
  const head = FIXED_BYTES + roundLen + maskBytes + identityLen + signatureLen;
  const payloadAt = Math.ceil(head / 4) * 4;
  if (bytes.byteLength !== payloadAt + 4 * elements) {
    throw bad(
      `${bytes.byteLength} bytes, expected ${payloadAt + 4 * elements} for ${elements} f32 elements`,
      'length',
    );
  }
  let round: string;
  let volunteer: string;
  const idAt = FIXED_BYTES + roundLen + maskBytes;
  try {
    round = fromUtf8.decode(bytes.subarray(FIXED_BYTES, FIXED_BYTES + roundLen));
    volunteer = fromUtf8.decode(bytes.subarray(idAt, idAt + identityLen));
  } catch {
    throw bad('text is not UTF-8', 'round');
  }
  const signature = String.fromCharCode(
    ...bytes.subarray(idAt + identityLen, idAt + identityLen + signatureLen),
  );
  if (!SIGNATURE.test(signature)) throw bad('the signature is not base64url', 'signature');
  const mask = bytes.subarray(FIXED_BYTES + roundLen, FIXED_BYTES + roundLen + maskBytes);
  const dropped: number[] = [];
  for (const [byte, bits] of mask.entries()) {
    for (let bit = 0; bit < 8; bit++) {
      if ((bits & (1 << bit)) === 0) continue;
      const i = byte * 8 + bit;
      if (i >= groupSize) throw bad(`dropped bit ${i} is past the group of ${groupSize}`, 'dropped');
      dropped.push(i);
    }
  }
  for (let i = head; i < payloadAt; i++) if (bytes[i] !== 0) throw bad('padding is not zero', 'padding');
  const hash = toHex(bytes.subarray(60, 92));
  const at = bytes.byteOffset + payloadAt;
  const payload =
    at % 4 === 0
      ? new Float32Array(bytes.buffer, at, elements)
      : new Float32Array(bytes.slice(payloadAt).buffer);
  const common = {
    round,
    phase,
    step,
    chunk,
    totalElements,
    groupSize,
    group: toHex(bytes.subarray(28, 60)),
    dropped,
    payload,
  };
  if (phase === 'reduce') {
    if (index >= groupSize) throw bad(`contribution index ${index} is outside the group`, 'contribution');
    return {
      ...common,
      contribution: {
        index,
        sha256: hash,
        ...(identityLen > 0 ? { volunteer } : {}),
        ...(signatureLen > 0 ? { signature } : {}),
      },
    };
  }
  if (index !== NO_CONTRIBUTION || identityLen !== 0 || signatureLen !== 0)
    throw bad('an all-gather message carries a contribution', 'contribution');
  return { ...common, digest: hash };
}
