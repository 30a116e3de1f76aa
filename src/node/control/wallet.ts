// Handlers for wallet messages: siwe-request (the terms of a Sign-In with Ethereum message) and
// siwe-bind (the signed message: this volunteer's credit goes to that address from now on).
import type { Hex } from 'viem';
import { HearthError } from '../../core/errors.ts';
import type { HubWallets } from '../../hub/wallets.ts';
import type { Connection, HandlerContext, Handlers } from './handler.ts';

function walletsOf(ctx: HandlerContext, what: string): HubWallets {
  if (!ctx.wallets) {
    throw new HearthError(
      'wallet/disabled',
      `${what}: this hub pays no tokens (its operator started it without --credit-contract); credit stays in its ledger.`,
    );
  }
  return ctx.wallets;
}

export const WALLET_HANDLERS: Handlers<'siwe-request' | 'siwe-bind'> = {
  'siwe-request': (m, c: Connection, ctx) => ({
    type: 'siwe-terms',
    ...walletsOf(ctx, m.type).terms(c.volunteer, c.origin),
  }),
  'siwe-bind': async (m, c, ctx) => {
    const binding = await walletsOf(ctx, m.type).bind(c.volunteer, m.message, m.signature as Hex);
    ctx.creditChanged?.(c.volunteer);
    return { type: 'wallet-bound', address: binding.address };
  },
};
