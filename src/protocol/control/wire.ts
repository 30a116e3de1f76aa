// What every control message shares: the protocol version, the limits, the envelope fields
// (`v`, `type`, and `id` on requests / `re` on replies), base64url, and the field schemas that
// several concerns use. The messages themselves live beside this file, one file per concern.
import { MAX_GROUP, MAX_ROUND_ID_BYTES } from '../allreduce.ts';
import { fail, type Schema, string } from '../schema.ts';

/**
 * Version 2 correlates: every request carries an `id`, its reply names it in `re`, and a hub
 * message without `re` is the hub's own (a push). Version 1 matched replies first-in first-out.
 */
export const CONTROL_PROTOCOL_VERSION = 2;

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
  /** Characters of an error's `details` as JSON (larger details are dropped, the message kept). */
  maxDetailsChars: 4096,
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
  /** Leases one `lease-batch` asks for, results one `results` message carries. */
  maxBatch: 64,
} as const;

/** A request id: chosen by the client, unique among its requests in flight. */
export const requestId: Schema<number> = (v, path) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw fail(path, 'expected a request id (a safe integer ≥ 0).');
  }
  return v;
};

const B64URL = /^[A-Za-z0-9_-]*$/;
/** Ids of shards, jobs and leases as the hub makes them. */
export const ID = /^[A-Za-z0-9._:/@#-]{1,256}$/;
/** A PeerJS id as the hub issues them: 'h' and 32 hex digits. */
export const PEER_ID = /^h[0-9a-f]{32}$/;

export const id = string({ pattern: ID });
export const peerId = string({ pattern: PEER_ID });
export const base64url = (max: number) => string({ max, pattern: B64URL });
export const time: Schema<number> = (v, path) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw fail(
      path,
      `expected ms since the epoch (an integer ≥ 0), got ${typeof v === 'number' ? v : typeof v}.`,
    );
  }
  return v;
};

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
  if (typeof s !== 'string') throw fail(path, `expected a base64url string, got ${typeof s}.`);
  const body = s.endsWith('==') ? s.slice(0, -2) : s.endsWith('=') ? s.slice(0, -1) : s;
  if (!B64URL.test(body) || body.length % 4 === 1) throw fail(path, 'expected base64url characters.');
  const n = Math.floor((body.length * 3) / 4);
  if (n > maxBytes) throw fail(path, `${n} bytes is over the ${maxBytes}-byte limit.`, { bytes: n });
  const bin = atob(body.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (body.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}
