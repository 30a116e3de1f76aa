// The volunteer identity in Chromium (vitest browser mode): real WebCrypto, real IndexedDB.
import { deleteDB } from 'idb';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateIdentity } from '../../src/client/identity.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { challengeBytes, fromBase64Url } from '../../src/protocol/control.ts';

const names: string[] = [];
const freshName = () => {
  const n = `hearth-identity-test-${crypto.randomUUID()}`;
  names.push(n);
  return n;
};
afterEach(async () => {
  for (const n of names.splice(0)) await deleteDB(n);
});

async function publicKeyOf(spkiB64: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    'spki',
    fromBase64Url(spkiB64, 'publicKey', 256),
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['verify'],
  );
}

describe('volunteer identity', () => {
  it('makes a non-extractable P-256 signing key', async () => {
    const me = await loadOrCreateIdentity({ dbName: freshName() });
    expect(me.privateKey.extractable).toBe(false);
    expect(me.privateKey.type).toBe('private');
    expect(me.privateKey.usages).toEqual(['sign']);
    expect((me.privateKey.algorithm as EcKeyAlgorithm).namedCurve).toBe('P-256');
    for (const format of ['pkcs8', 'jwk'] as const) {
      await expect(crypto.subtle.exportKey(format, me.privateKey)).rejects.toThrow();
    }
  });

  it('persists: the same id and key across loads, and a different one in another database', async () => {
    const name = freshName();
    const first = await loadOrCreateIdentity({ dbName: name });
    const second = await loadOrCreateIdentity({ dbName: name });
    expect(second.id).toBe(first.id);
    expect(second.publicKey).toBe(first.publicKey);
    expect(second.createdAt).toBe(first.createdAt);
    // Signed by the reloaded key, verified with the first load's public key.
    const sig = await second.sign('nonce-1');
    const pub = await publicKeyOf(first.publicKey);
    expect(
      await crypto.subtle.verify(
        { name: 'ECDSA', hash: 'SHA-256' },
        pub,
        fromBase64Url(sig, 'sig', 128),
        challengeBytes('nonce-1', first.id),
      ),
    ).toBe(true);
    const other = await loadOrCreateIdentity({ dbName: freshName() });
    expect(other.id).not.toBe(first.id);
  });

  it('two loads racing on first use end with one identity', async () => {
    const name = freshName();
    const [a, b] = await Promise.all([
      loadOrCreateIdentity({ dbName: name }),
      loadOrCreateIdentity({ dbName: name }),
    ]);
    const c = await loadOrCreateIdentity({ dbName: name });
    expect(b.id).toBe(a.id);
    expect(c.id).toBe(a.id);
  });

  it('the id is the SHA-256 of the SPKI; signatures verify, and only for their nonce and id', async () => {
    const me = await loadOrCreateIdentity({ dbName: freshName() });
    expect(me.id).toBe(await sha256Hex(fromBase64Url(me.publicKey, 'publicKey', 256)));
    const pub = await publicKeyOf(me.publicKey);
    const verify = async (sig: string, nonce: string, id: string) =>
      crypto.subtle.verify(
        { name: 'ECDSA', hash: 'SHA-256' },
        pub,
        fromBase64Url(sig, 'sig', 128),
        challengeBytes(nonce, id),
      );
    const sig = await me.sign('abc');
    expect(fromBase64Url(sig, 'sig', 128).byteLength).toBe(64);
    expect(await verify(sig, 'abc', me.id)).toBe(true);
    expect(await verify(sig, 'abd', me.id)).toBe(false);
    expect(await verify(sig, 'abc', '0'.repeat(64))).toBe(false);
  });
});
