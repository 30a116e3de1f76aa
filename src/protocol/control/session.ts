// Session messages: how a connection becomes a volunteer. hello (public key, capabilities) →
// challenge (a fresh nonce) → auth (the nonce signed) → welcome (the volunteer id, the peer id).
import { sha256Hex } from '../../core/hash.ts';
import { isPayoutAddress, isWebOrigin, MAX_ORIGIN_CHARS } from '../embed.ts';
import {
  array,
  fail,
  type Infer,
  integer,
  literal,
  object,
  refine,
  type Schema,
  sha256,
  string,
  unchecked,
} from '../schema.ts';
import { FOLLOWABLE } from './credit.ts';
import { base64url, CONTROL_LIMITS, peerId } from './wire.ts';

/** A P-256 public key as a JWK (only the public fields). */
export interface PublicJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
}

const jwk = object(
  {
    kty: literal(['EC']),
    crv: literal(['P-256']),
    x: base64url(64),
    y: base64url(64),
  },
  // Browsers export these with the key; they say nothing the hub needs.
  { ext: unchecked, key_ops: unchecked },
);

const publicKey: Schema<string | PublicJwk> = (v, path) => {
  if (typeof v === 'string') return base64url(CONTROL_LIMITS.maxPublicKeyChars)(v, path);
  const { kty, crv, x, y } = jwk(v, path);
  return { kty, crv, x, y };
};

const capabilities = object({
  /** The adapter's maxBufferSize. */
  maxBufferBytes: integer(0, Number.MAX_SAFE_INTEGER),
  features: array(string({ max: CONTROL_LIMITS.maxFeatureChars }), CONTROL_LIMITS.maxFeatures),
});
/** What a volunteer's device reports on hello (the scheduler matches shards by it). */
export type ControlCapabilities = Infer<typeof capabilities>;

/**
 * Which site embedded this volunteer (a `<hearth-widget>`'s frame says so): the embedding page's
 * exact origin and the payout address it named. The volunteer's word — the frame reads the origin
 * from its browser (`location.ancestorOrigins`) — so the hub also requires the origin to be one it
 * allows widgets on.
 */
const embed = object({
  origin: refine(string({ max: MAX_ORIGIN_CHARS }), (o, path) => {
    if (!isWebOrigin(o))
      throw fail(path, 'expected an origin like "https://news.example" (no path, no slash).');
  }),
  payout: refine(string({ max: 42 }), (p, path) => {
    if (!isPayoutAddress(p)) throw fail(path, 'expected a payout address: 0x and 40 hex digits.');
  }),
});
/** The embedding site of a widget's volunteer, as a hello carries it. */
export type EmbedInfo = Infer<typeof embed>;

/** Requests a client sends in this concern, by type. */
export const SESSION_REQUESTS = {
  /** SPKI bytes as base64url, or a JWK. The volunteer id is the SHA-256 of the SPKI bytes. */
  hello: object(
    { publicKey, capabilities },
    {
      /** Pushes this connection wants as things change (`credit`: its earnings). */
      follow: array(literal(FOLLOWABLE), FOLLOWABLE.length),
      /** Set by a `<hearth-widget>`'s frame: the site that embedded it and its payout address. */
      embed,
    },
  ),
  /** ECDSA P-256 / SHA-256 signature (IEEE P1363, r ‖ s) of `challengeBytes(nonce, id)`, base64url. */
  auth: object({ signature: base64url(CONTROL_LIMITS.maxSignatureChars) }),
};

/** What the hub sends in this concern, by type. */
export const SESSION_HUB = {
  /** 32 random bytes as base64url, fresh for this connection. */
  challenge: object({ nonce: base64url(CONTROL_LIMITS.maxNonceChars) }),
  /**
   * `peerId`: the PeerJS id this connection may use on the hub's PeerServer (/p2p): chosen by the
   * hub, random, and tied to this authenticated connection, so a holder the hub names is a
   * volunteer it knows. Absent when the hub runs no PeerServer.
   */
  welcome: object({ volunteerId: sha256 }, { peerId }),
};

/** Which hub messages answer each request. */
export const SESSION_REPLIES = {
  hello: ['challenge'],
  auth: ['welcome'],
} as const;

/**
 * The bytes a volunteer signs to answer a challenge. The nonce is fresh per connection, so a
 * signature seen on one connection is worthless on any other; the id ties it to one key. (The
 * text says version 1: the signed bytes have not changed since.)
 */
export function challengeBytes(nonce: string, volunteerId: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`hearth-volunteer-auth/1\n${nonce}\n${volunteerId}`);
}

/** A volunteer's id: SHA-256 (hex) of its public key's SPKI bytes. Chosen by key, never claimed. */
export function volunteerIdOf(spki: ArrayBuffer): Promise<string> {
  return sha256Hex(spki);
}
