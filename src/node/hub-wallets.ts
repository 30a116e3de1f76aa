// Wallet routes: the hub's payment rules, what an address has earned, its latest cumulative
// voucher, and a claim the hub relays from its own funded key so the volunteer needs no ETH.
// All public: a voucher only ever pays its own account, so handing it to anyone is harmless, and
// knowing an address is all a claim needs. Bounded instead: each caller and each account gets a
// few requests a minute, and a relayed claim is sent only when the chain owes the account
// something (read first), so nobody can make the relayer pay gas for nothing.
import type { IncomingMessage } from 'node:http';
import { HearthError } from '../core/errors.ts';
import { CREDIT_UNITS } from '../protocol/credit.ts';
import { send } from './http.ts';
import type { Ctx } from './hub-context.ts';
import type { Route } from './routes.ts';

/** Requests per minute, per calling address and per account, on the voucher and claim routes. */
export const WALLET_RATE_LIMITS = { vouchersPerMinute: 30, claimsPerMinute: 4 } as const;

/** A sliding one-minute window per key; keys forgotten when their window empties. */
export class PerMinute {
  readonly #hits = new Map<string, number[]>();
  readonly #limit: number;
  readonly #now: () => number;
  constructor(limit: number, now: () => number = Date.now) {
    this.#limit = limit;
    this.#now = now;
  }
  /** Counts a hit for `key`; false (and not counted) when the key had `limit` in the last minute. */
  take(key: string): boolean {
    const now = this.#now();
    if (this.#hits.size > 10_000) {
      for (const [k, v] of this.#hits) if ((v.at(-1) ?? 0) <= now - 60_000) this.#hits.delete(k);
    }
    const recent = (this.#hits.get(key) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= this.#limit) {
      this.#hits.set(key, recent);
      return false;
    }
    recent.push(now);
    this.#hits.set(key, recent);
    return true;
  }
}

const limited = (what: string, limit: number) =>
  new HearthError('control/rate-limited', `${what}: at most ${limit} a minute; try again shortly.`, {
    details: { status: 429 },
  });

function walletsOf(ctx: Ctx) {
  if (!ctx.wallets) {
    throw new HearthError(
      'wallet/disabled',
      'this hub pays no tokens: its operator started it without --credit-contract. Credit stays in its ledger.',
    );
  }
  return ctx.wallets;
}

const caller = (req: IncomingMessage) => req.socket.remoteAddress ?? '?';

export const WALLET_ROUTES: readonly Route[] = [
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/wallet',
    auth: 'public',
    handle: ({ ctx, req, res }) => {
      const w = walletsOf(ctx);
      send(req, res, 200, {
        chainId: w.rules.chainId,
        contract: w.rules.contract,
        embedShareBps: w.rules.embedShareBps,
        unitsPerCredit: CREDIT_UNITS.toString(),
        relayer: ctx.relayer !== undefined,
      });
    },
  },
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/wallet/:address',
    auth: 'public',
    handle: async ({ ctx, req, res, params }) => {
      const w = walletsOf(ctx);
      const v = await w.voucherless(params.address ?? '');
      const claimed = ctx.relayer ? await ctx.relayer.claimed(v.address) : undefined;
      send(req, res, 200, {
        address: v.address,
        earned: v.earned.total.toString(),
        asVolunteer: v.earned.asVolunteer.toString(),
        asSite: v.earned.asSite.toString(),
        pending: v.earned.pending.toString(),
        ...(claimed === undefined ? {} : { claimed: claimed.toString() }),
      });
    },
  },
  {
    methods: ['GET'],
    path: '/v1/wallet/:address/voucher',
    auth: 'public',
    handle: async ({ ctx, req, res, params }) => {
      const w = walletsOf(ctx);
      const key = (params.address ?? '').toLowerCase();
      if (!ctx.limits.vouchers.take(caller(req)) || !ctx.limits.vouchers.take(key)) {
        throw limited('vouchers', WALLET_RATE_LIMITS.vouchersPerMinute);
      }
      const v = await w.voucher(params.address ?? '');
      send(req, res, 200, {
        account: v.account,
        amount: v.amount.toString(),
        expiry: v.expiry.toString(),
        chainId: v.chainId,
        contract: v.contract,
        signature: v.signature,
      });
    },
  },
  {
    methods: ['POST'],
    path: '/v1/wallet/:address/claim',
    auth: 'public',
    handle: async ({ ctx, req, res, params }) => {
      const w = walletsOf(ctx);
      if (!ctx.relayer) {
        throw new HearthError(
          'wallet/disabled',
          'this hub relays no claims (started without --relayer-key-file): get the voucher and submit `claim` from any funded account.',
        );
      }
      const key = (params.address ?? '').toLowerCase();
      if (!ctx.limits.claims.take(caller(req)) || !ctx.limits.claims.take(key)) {
        throw limited('relayed claims', WALLET_RATE_LIMITS.claimsPerMinute);
      }
      const v = await w.voucher(params.address ?? '');
      const out = await ctx.relayer.claim(v);
      send(req, res, 200, {
        account: v.account,
        amount: v.amount.toString(),
        minted: out.minted.toString(),
        transaction: out.transaction,
      });
    },
  },
];
