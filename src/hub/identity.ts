// A volunteer's identity on the hub side (DESIGN.md invariant 6): its id is the SHA-256 of its
// public key, and it proves it holds the key by signing this connection's fresh nonce. Nothing
// here trusts the volunteer's claim of an id: the id is always derived from the key.
import { HearthError } from '../core/errors.ts';
import {
  CONTROL_LIMITS,
  challengeBytes,
  fromBase64Url,
  type PublicJwk,
  toBase64Url,
  volunteerIdOf,
} from '../protocol/control.ts';

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A volunteer's public key, checked to be a P-256 point, and the id it names. */
export interface VolunteerKey {
  readonly id: string;
  readonly key: CryptoKey;
}

/** 32 random bytes as base64url: a challenge that is never reused. */
export function newNonce(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * Imports a volunteer's public key (SPKI base64url or JWK) and derives its id from the key's
 * canonical SPKI bytes, so both encodings of one key give one id. Throws 'input/invalid' for
 * anything that is not a P-256 public key.
 *
 * @example
 * const { id, key } = await importVolunteerKey(hello.publicKey);
 */
export async function importVolunteerKey(publicKey: string | PublicJwk): Promise<VolunteerKey> {
  let key: CryptoKey;
  try {
    key =
      typeof publicKey === 'string'
        ? await crypto.subtle.importKey(
            'spki',
            fromBase64Url(publicKey, 'message.publicKey', CONTROL_LIMITS.maxPublicKeyChars),
            ECDSA_P256,
            true,
            ['verify'],
          )
        : await crypto.subtle.importKey(
            'jwk',
            { kty: 'EC', crv: 'P-256', x: publicKey.x, y: publicKey.y },
            ECDSA_P256,
            true,
            ['verify'],
          );
  } catch (e) {
    if (e instanceof HearthError) throw e;
    throw new HearthError('input/invalid', 'message.publicKey: not an ECDSA P-256 public key.', {
      details: { path: 'message.publicKey' },
      cause: e,
    });
  }
  if (key.type !== 'public') {
    throw new HearthError('input/invalid', 'message.publicKey: expected a public key.', {
      details: { path: 'message.publicKey' },
    });
  }
  const spki = await crypto.subtle.exportKey('spki', key);
  return { id: await volunteerIdOf(spki), key };
}

/**
 * True when `signature` (base64url, IEEE P1363 r ‖ s) is the key's signature of this
 * connection's challenge. Malformed signatures are false, never a throw.
 */
export async function verifyChallenge(v: VolunteerKey, nonce: string, signature: string): Promise<boolean> {
  try {
    const sig = fromBase64Url(signature, 'message.signature', CONTROL_LIMITS.maxSignatureChars);
    if (sig.byteLength !== 64) return false;
    return await crypto.subtle.verify(SIGN_ALG, v.key, sig, challengeBytes(nonce, v.id));
  } catch {
    return false;
  }
}
