// Researcher tokens (DESIGN.md invariant 6). A token's secret is shown once, when it is made; the
// store keeps only its SHA-256, so a leaked database file leaks no usable token. The secret has
// 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { HearthError } from '../core/errors.ts';
import type { TokenRecord, TokenRepository, Transactions } from './store.ts';

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** A token as listed: never its secret nor its hash. */
export interface TokenInfo {
  readonly name: string;
  readonly createdAt: number;
  readonly revoked: boolean;
  readonly revokedAt?: number;
  /** The credit budget in base units, a decimal string (absent: no limit). */
  readonly budget?: string;
}

/** Who a request's bearer token says it is. */
export type Principal = { readonly kind: 'admin' } | { readonly kind: 'researcher'; readonly name: string };

/** SHA-256 of a token's secret as 64 lowercase hex digits. */
export function hashToken(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}

/**
 * Makes a researcher token and returns its secret: this is the only time it is seen.
 *
 * @example
 * const { token } = createToken(store, 'alice'); // give `token` to alice; the hub keeps its hash
 */
export function createToken(
  store: TokenRepository,
  name: string,
  now: number = Date.now(),
  budget?: bigint,
): { name: string; token: string; createdAt: number } {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new HearthError(
      'input/invalid',
      `token name: expected 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" or "-", got ${JSON.stringify(name)}.`,
      { details: { path: 'name' } },
    );
  }
  // A fixed prefix: base64url may start with '-', which a command line reads as a flag
  // (`--token -x…` failed as a usage error one run in 32); it also makes a leaked token greppable.
  const token = `hth_${randomBytes(32).toString('base64url')}`;
  // One insert that fails on a taken name: a check then a write would let two `hearth token
  // create --name x` (the hub and the CLI on one file) replace each other's token silently.
  if (
    !store.addToken({
      name,
      hash: hashToken(token),
      createdAt: now,
      ...(budget === undefined ? {} : { budget }),
    })
  ) {
    throw new HearthError('input/invalid', `token name: "${name}" is taken; choose another name.`, {
      details: { path: 'name', name },
    });
  }
  return { name, token, createdAt: now };
}

function info(t: TokenRecord): TokenInfo {
  return {
    name: t.name,
    createdAt: t.createdAt,
    revoked: t.revokedAt !== undefined,
    ...(t.revokedAt !== undefined ? { revokedAt: t.revokedAt } : {}),
    ...(t.budget !== undefined ? { budget: t.budget.toString() } : {}),
  };
}

/** Every token, oldest first: names, creation and revocation times. */
export function listTokens(store: TokenRepository): TokenInfo[] {
  return store.listTokens().map(info);
}

/** Revokes a token by name; false when there is no such token. Revoking twice keeps the first time. */
export function revokeToken(
  store: TokenRepository & Pick<Transactions, 'transaction'>,
  name: string,
  now: number = Date.now(),
): boolean {
  return store.transaction(() => {
    const t = store.getToken(name);
    if (!t) return false;
    if (t.revokedAt === undefined) store.putToken({ ...t, revokedAt: now });
    return true;
  });
}

/** The secret of an `Authorization: Bearer <secret>` header, or undefined. */
export function bearer(header: string | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer ([A-Za-z0-9._~+/-]{1,512}=*)$/i.exec(header.trim());
  return m ? m[1] : undefined;
}

/**
 * Who holds this secret: the admin (compared in constant time with the hub's admin token), a
 * researcher with a live token, or nobody (undefined) — a revoked token is nobody.
 */
export function authenticate(
  store: TokenRepository,
  secret: string,
  adminToken?: string,
): Principal | undefined {
  const hash = hashToken(secret);
  if (adminToken !== undefined && adminToken.length > 0 && sameHash(hash, hashToken(adminToken))) {
    return { kind: 'admin' };
  }
  const t = store.tokenByHash(hash);
  if (!t || t.revokedAt !== undefined || !sameHash(t.hash, hash)) return undefined;
  return { kind: 'researcher', name: t.name };
}
