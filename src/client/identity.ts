// The volunteer's identity (DESIGN.md invariant 6): an ECDSA P-256 key pair made in this browser
// with a non-extractable private key, kept in IndexedDB (a CryptoKey is structured-cloneable, so
// the key itself is stored, never its bytes). It lives in its own small database so that the
// identity outlives, and never migrates with, Hearth's cache schema. Works in pages and workers.
import { openDB } from 'idb';
import { HearthError } from '../core/errors.ts';
import { challengeBytes, toBase64Url, volunteerIdOf } from '../protocol/control.ts';
import { toStoreError } from '../store/db.ts';

export const IDENTITY_DB_NAME = 'hearth-identity';
const STORE = 'keys';
const KEY = 'volunteer';

interface StoredIdentity {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly createdAt: number;
}

/** This browser's volunteer identity. */
export interface VolunteerIdentity {
  /** SHA-256 (hex) of the public key's SPKI bytes: what the hub knows this volunteer by. */
  readonly id: string;
  /** SPKI bytes as base64url, for `hello`. */
  readonly publicKey: string;
  /** Non-extractable: it signs, and it never leaves this browser. */
  readonly privateKey: CryptoKey;
  readonly createdAt: number;
  /** Signs the hub's challenge for this connection; base64url of the P1363 signature. */
  sign(nonce: string): Promise<string>;
}

/**
 * Loads this browser's identity, making and storing one on first use. Two tabs racing on first
 * use end up with the same identity (the first stored wins).
 *
 * @example
 * const me = await loadOrCreateIdentity();
 * ws.send(JSON.stringify({ v: 2, type: 'hello', publicKey: me.publicKey, capabilities }));
 * // on { type: 'challenge', nonce }:
 * ws.send(JSON.stringify({ v: 2, type: 'auth', signature: await me.sign(nonce) }));
 */
export async function loadOrCreateIdentity(opts: { dbName?: string } = {}): Promise<VolunteerIdentity> {
  const name = opts.dbName ?? IDENTITY_DB_NAME;
  if (typeof indexedDB === 'undefined' || typeof crypto?.subtle === 'undefined') {
    throw new HearthError(
      'store/failed',
      'IndexedDB or WebCrypto is not available here: a volunteer identity cannot be kept.',
      { details: { name } },
    );
  }
  let stored: StoredIdentity;
  try {
    const db = await openDB(name, 1, {
      upgrade(d) {
        d.createObjectStore(STORE);
      },
    });
    try {
      let found = (await db.get(STORE, KEY)) as StoredIdentity | undefined;
      if (!found) {
        const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
          'sign',
          'verify',
        ]);
        const fresh: StoredIdentity = {
          privateKey: pair.privateKey,
          publicKey: pair.publicKey,
          createdAt: Date.now(),
        };
        // Read again inside one transaction: another tab may have stored its key meanwhile.
        const tx = db.transaction(STORE, 'readwrite');
        found = (await tx.store.get(KEY)) as StoredIdentity | undefined;
        if (!found) await tx.store.put(fresh, KEY);
        await tx.done;
        found ??= fresh;
      }
      stored = found;
    } finally {
      db.close();
    }
  } catch (e) {
    throw toStoreError(`loading the volunteer identity from "${name}"`, e, { name });
  }
  // Public keys are always exportable, whatever `extractable` says.
  const spki = await crypto.subtle.exportKey('spki', stored.publicKey);
  const id = await volunteerIdOf(spki);
  const { privateKey } = stored;
  return {
    id,
    publicKey: toBase64Url(spki),
    privateKey,
    createdAt: stored.createdAt,
    async sign(nonce: string) {
      const sig = await crypto.subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        privateKey,
        challengeBytes(nonce, id),
      );
      return toBase64Url(sig);
    },
  };
}
