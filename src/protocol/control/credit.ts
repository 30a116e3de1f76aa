// Credit messages: what a volunteer has earned, pushed by the hub as it changes. A connection
// that said `follow: ['credit']` in its hello gets a `credit` push after its welcome and after
// each change to its ledger (a result acknowledged, a shard it answered judged), at most a few
// times a second. The wallet issue adds vouchers and receipts here.
import { integer, object, string } from '../schema.ts';

/** Base units as a decimal string (protocol/credit.ts parseCreditWire): JSON numbers are doubles. */
const units = string({ max: 20, pattern: /^(0|[1-9][0-9]{0,18})$/ });

/** Requests a client sends in this concern, by type (none yet: the wallet adds its own). */
export const CREDIT_REQUESTS = {};

/** What the hub sends in this concern, by type. */
export const CREDIT_HUB = {
  /** A push (no `re`): this volunteer's credit now, in base units; results still awaiting agreement. */
  credit: object(
    { granted: units, pending: units, pendingResults: integer(0, Number.MAX_SAFE_INTEGER) },
    {
      /** The address this volunteer is bound to (Sign-In with Ethereum), when it is. */
      address: string({ max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ }),
    },
  ),
};

/** Which hub messages answer each request. */
export const CREDIT_REPLIES = {} as const;

/** What a connection may follow with pushes (`hello.follow`). */
export const FOLLOWABLE = ['credit'] as const;
