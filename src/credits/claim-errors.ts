// What a refused claim means, as a HearthError: the contract's custom errors (a `claim` that
// reverts, a `claimMany` voucher skipped with its reason's selector) and the chain's own failures
// (no RPC, no ETH for gas), each with a message that says what to do. Browser-safe: the volunteer
// page claims from the volunteer's wallet with the same words as the hub's relayer.
import {
  BaseError,
  ContractFunctionRevertedError,
  type Hex,
  HttpRequestError,
  InsufficientFundsError,
  TimeoutError,
  toFunctionSelector,
  WebSocketRequestError,
} from 'viem';
import { HearthError, type HearthErrorCode } from '../core/errors.ts';

/** HearthCredit's refusals of a voucher, by the contract's error name. */
export const VOUCHER_REFUSALS = {
  VoucherExpired: {
    code: 'voucher/expired',
    message: 'the voucher has expired: ask the hub for a fresh one (it carries everything earned so far).',
  },
  InvalidSignature: {
    code: 'voucher/invalid-signature',
    message:
      'the voucher\u2019s signature is not a well-formed 65-byte signature: ask the hub for the voucher again.',
  },
  UnknownSigner: {
    code: 'voucher/unknown-signer',
    message:
      'the voucher was not signed by the key this contract trusts: it was altered, forged, or made for another chain or contract. Ask the hub that credits you for a voucher for this contract.',
  },
  SignerRetired: {
    code: 'voucher/signer-retired',
    message:
      'the voucher was signed by the hub\u2019s previous key, which this contract no longer trusts: ask the hub for a fresh voucher.',
  },
  NothingToClaim: {
    code: 'voucher/nothing-to-claim',
    message:
      'nothing to claim: this account has already claimed this voucher\u2019s amount or more (a voucher counts everything earned, so an older one pays nothing).',
  },
  AmountTooLarge: {
    code: 'voucher/refused',
    message:
      'the voucher\u2019s amount is over the contract\u2019s 128-bit limit: the hub signed a wrong amount.',
  },
  ZeroAccount: {
    code: 'voucher/refused',
    message: 'the voucher is for the zero address, which can hold nothing: claim for your own address.',
  },
  BalanceOverflow: {
    code: 'voucher/refused',
    message: 'the claim would take the balance past 2^128 − 1 base units.',
  },
} as const satisfies Record<string, { code: HearthErrorCode; message: string }>;

/** The name of one of HearthCredit's voucher errors. */
export type VoucherRefusal = keyof typeof VOUCHER_REFUSALS;

const BY_SELECTOR = new Map<string, VoucherRefusal>(
  (Object.keys(VOUCHER_REFUSALS) as VoucherRefusal[]).map((name) => [toFunctionSelector(`${name}()`), name]),
);

/**
 * The error name of a `ClaimSkipped` event's `reason` (a 4-byte error selector), or undefined for
 * a selector HearthCredit does not define.
 *
 * @example
 * skipReason('0x…'); // 'NothingToClaim'
 */
export function skipReason(selector: Hex): VoucherRefusal | undefined {
  return BY_SELECTOR.get(selector.toLowerCase());
}

/** The HearthError for a voucher refusal; `details` carry the refusal's name and `context`. */
export function voucherRefusal(name: VoucherRefusal, context: Record<string, unknown> = {}): HearthError {
  const r = VOUCHER_REFUSALS[name];
  return new HearthError(r.code, r.message, { details: { refusal: name, ...context } });
}

/**
 * A failed claim (or any HearthCredit call) as a HearthError: the contract's refusal of a voucher
 * ('voucher/*'), no ETH for gas ('chain/insufficient-funds'), no answer from the RPC
 * ('chain/unreachable'), anything else 'chain/reverted' with the chain's own words. A HearthError
 * passes through unchanged.
 *
 * @example
 * try { await claimOnChain(wallet, contract, voucher, signature); }
 * catch (e) { throw claimError(e, { account: voucher.account }); }
 */
export function claimError(e: unknown, context: Record<string, unknown> = {}): HearthError {
  if (e instanceof HearthError) return e;
  if (e instanceof BaseError) {
    const reverted = e.walk((x) => x instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) {
      const name = reverted.data?.errorName;
      const fromSelector = reverted.signature ? skipReason(reverted.signature) : undefined;
      const refusal =
        name !== undefined && name in VOUCHER_REFUSALS ? (name as VoucherRefusal) : fromSelector;
      if (refusal !== undefined) return voucherRefusal(refusal, context);
      return new HearthError(
        'chain/reverted',
        `the contract refused the call: ${reverted.shortMessage}${reverted.reason ? ` (${reverted.reason})` : ''}.`,
        { details: { ...context, ...(name === undefined ? {} : { error: name }) }, cause: e },
      );
    }
    if (e.walk((x) => x instanceof InsufficientFundsError)) {
      return new HearthError(
        'chain/insufficient-funds',
        'the sending account has too little ETH to pay for the gas: fund it (the relayer key\u2019s address) and retry.',
        { details: context, cause: e },
      );
    }
    if (
      e.walk(
        (x) =>
          x instanceof HttpRequestError || x instanceof WebSocketRequestError || x instanceof TimeoutError,
      )
    ) {
      return new HearthError(
        'chain/unreachable',
        `the chain's RPC did not answer (${e.shortMessage}): check the RPC URL and that the node is running, then retry.`,
        { details: context, cause: e },
      );
    }
    return new HearthError('chain/reverted', `the chain refused the call: ${e.shortMessage}`, {
      details: context,
      cause: e,
    });
  }
  return new HearthError('chain/reverted', `the call failed: ${e instanceof Error ? e.message : String(e)}`, {
    details: context,
    cause: e,
  });
}
