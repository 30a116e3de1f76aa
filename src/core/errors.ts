/**
 * Hearth's one error type. Every failure a user can meet is a HearthError with a literal
 * `code`, a message that says what was wrong and what to do, structured `details`, and the
 * underlying `cause` where there is one.
 *
 * @example
 * throw new HearthError('gpu/limit', 'matmul needs a 2 GiB buffer; this adapter allows 1 GiB.', {
 *   details: { bytes: 2 ** 31, limit: 2 ** 30 },
 * });
 */
export const HEARTH_ERROR_CODES = [
  'gpu/unavailable',
  'gpu/device-lost',
  'gpu/limit',
  'gpu/validation',
  'gpu/out-of-memory',
  'gpu/feature-missing',
  'wgsl/compile',
  'wgsl/pipeline',
  'tensor/shape',
  'tensor/dtype',
  /** Bad input: the message names the field and what was expected. */
  'input/invalid',
  'wgsl/manifest',
  'shard/timeout',
  'shard/cancelled',
  /** The shard runner failed in a way it did not name (a bug, a crash): not the job's fault. */
  'shard/failed',
  /** No such shard (never planned, or forgotten). */
  'shard/unknown',
  /** The volunteer holds no such lease (never granted, expired and given to another, released). */
  'lease/unknown',
  /** No such job. */
  'job/unknown',
  /** The job is not running (cancelled, failed, done): it takes no more results or changes. */
  'job/closed',
  /** This volunteer already sent a result for this shard. */
  'result/duplicate',
  'onnx/model',
  'onnx/unsupported',
  'onnx/run',
  'blob/missing',
  'blob/corrupt',
  'store/quota',
  'store/failed',
  /** The shared database (PostgreSQL) did not answer in time: check the server, then retry. */
  'store/unavailable',
  /** Two hubs changed the same records at once and the database undid one change: retry it. */
  'store/conflict',
  /** A hub or peer could not be reached, or the connection dropped. Retrying later may work. */
  'net/unreachable',
  /** A hub or peer did not answer in time. */
  'net/timeout',
  /** A hub or peer answered, and said no (the message says why). */
  'net/refused',
  /** A peer sent bytes that break the data-plane protocol (garbage, out-of-range, oversized). */
  'net/protocol',
  /** The other side speaks another version of a protocol: reload the page or upgrade. */
  'protocol/version',
  /** A control message that needs an authenticated connection came before `welcome`. */
  'control/unauthenticated',
  /** A control message out of order (a second hello, auth before hello). */
  'control/bad-state',
  /** The challenge signature did not verify, or the key is not a P-256 key. */
  'control/auth-failed',
  /** No auth within the hub's deadline. */
  'control/auth-timeout',
  /** Over a per-connection limit (messages per second, messages queued, reports per minute). */
  'control/rate-limited',
  /** This hub does not offer what the message asks for (no swarm, no all-reduce, binary frames). */
  'control/unsupported',
  /** A newer connection of the same volunteer replaced this one: do not reconnect. */
  'control/replaced',
  /** The hub failed on a message; it may be retried. */
  'control/internal',
  // The hub's HTTP refusals (node/http.ts STATUS_OF_CODE gives each its status).
  'http/moved',
  'http/bad-request',
  /** No token, or one the hub does not know (or revoked). */
  'http/unauthorized',
  /** A token that may not do this (another researcher's job, an admin route). */
  'http/forbidden',
  /** The page's Origin is not allowed to use this hub. */
  'http/origin',
  'http/not-found',
  'http/method',
  'http/conflict',
  'http/too-large',
  'http/range',
  'http/too-many-connections',
  /** The hub failed on this request; it keeps serving others. */
  'http/internal',
  /** The hub is shutting down. */
  'http/closing',
  /** The hub has no built pages to serve. */
  'pages/missing',
  /** A PeerJS id the hub did not issue to an open volunteer connection. */
  'p2p/peer-id',
  /** A `hearth` command line that cannot be run as written: printed with the usage, exit 2. */
  'cli/usage',
  // Wallets and budgets (issue 13).
  /** This hub pays no tokens: it was started without a credit contract. */
  'wallet/disabled',
  /** A Sign-In with Ethereum message or signature the hub refuses (domain, nonce, expiry, signer, identity). */
  'wallet/siwe',
  /** The volunteer is bound to another address already: a binding is for good. */
  'wallet/bound',
  /** The volunteer said no in their wallet (EIP-1193 4001), or the wallet has not authorised this page (4100). */
  'wallet/rejected',
  /** No wallet in this browser, or it answered something that is not EIP-1193. */
  'wallet/unavailable',
  /** A job whose planned credit exceeds what is left of its researcher token's budget. */
  'budget/exceeded',
  // Credit to a wallet: vouchers and the HearthCredit contract (src/credits/, src/node/chain.ts).
  /** The voucher's expiry has passed: ask the hub for a fresh one. */
  'voucher/expired',
  /** The signature is not 65 well-formed bytes (r, s with s in the lower half, v 27 or 28). */
  'voucher/invalid-signature',
  /** Signed by a key the contract does not trust: forged, altered, or for another chain or contract. */
  'voucher/unknown-signer',
  /** Signed by the hub's previous key, which the contract no longer trusts: ask for a fresh voucher. */
  'voucher/signer-retired',
  /** The account has already claimed this voucher's amount or more: a replayed or older voucher. */
  'voucher/nothing-to-claim',
  /** A voucher the contract can never pay: for the zero address, or an amount over its 128-bit limit. */
  'voucher/refused',
  /** No chain answers at the RPC URL, or it stopped answering. Retrying later may work. */
  'chain/unreachable',
  /** The chain is not the one expected (its chain id), or there is no HearthCredit at the address. */
  'chain/mismatch',
  /** The sending account has too little ETH to pay for the gas. */
  'chain/insufficient-funds',
  /** A transaction failed for a reason that is not the voucher's (the message has the chain's words). */
  'chain/reverted',
  /** The local chain (anvil) could not be started. */
  'chain/anvil',
  /** A key file that is missing, readable by group or others, or not a 0x private key. */
  'chain/key-file',
  /** A training model configuration or hyperparameter out of its range (train/config.ts). */
  'train/config',
  /** A parameter, moment or pseudo-gradient vector whose length or layout does not match the model. */
  'train/layout',
  /** A corpus, data shard or batch that cannot be read as the job asks (train/data.ts). */
  'train/data',
  /** A compressed pseudo-gradient frame that is malformed: bad magic, version, lengths or values. */
  'train/frame',
  /** A loss or parameter became NaN or infinite: the learning rate is too high or the data is bad. */
  'train/diverged',
] as const;

/**
 * Every failure's code: `area/what`, one meaning per name. The list is also a runtime value
 * (`HEARTH_ERROR_CODES`), so a code that arrives over a wire can be checked.
 */
export type HearthErrorCode = (typeof HEARTH_ERROR_CODES)[number];

/** Whether `v` is one of Hearth's error codes. */
export function isHearthErrorCode(v: unknown): v is HearthErrorCode {
  return typeof v === 'string' && (HEARTH_ERROR_CODES as readonly string[]).includes(v);
}

export type ErrorDetails = Readonly<Record<string, unknown>>;

/** A cause that is not a HearthError, as it travels: its name and message. */
export interface CauseJson {
  readonly name: string;
  readonly message: string;
}

/** A HearthError as it travels (structured clone, JSON). */
export interface HearthErrorJson {
  readonly name: 'HearthError';
  readonly code: HearthErrorCode;
  readonly message: string;
  readonly details: ErrorDetails;
  readonly cause?: HearthErrorJson | CauseJson;
}

function causeJson(c: unknown, depth: number): HearthErrorJson | CauseJson | undefined {
  if (c === undefined || c === null || depth <= 0) return undefined;
  if (c instanceof HearthError) {
    const inner = causeJson(c.cause, depth - 1);
    return {
      name: 'HearthError',
      code: c.code,
      message: c.message,
      details: c.details,
      ...(inner === undefined ? {} : { cause: inner }),
    };
  }
  if (c instanceof Error) return { name: c.name, message: c.message };
  return { name: typeof c, message: String(c) };
}

export class HearthError extends Error {
  override readonly name = 'HearthError' as const;
  readonly code: HearthErrorCode;
  readonly details: ErrorDetails;

  constructor(
    code: HearthErrorCode,
    message: string,
    options: { details?: ErrorDetails; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  /**
   * A plain object that survives structured clone and JSON; `fromJSON` rebuilds the error. The
   * cause travels too (a HearthError as itself, any other error as its name and message), a few
   * levels deep: what went wrong underneath is what a user reporting a failure most needs.
   */
  toJSON(): HearthErrorJson {
    const cause = causeJson(this.cause, 4);
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      details: this.details,
      ...(cause === undefined ? {} : { cause }),
    };
  }

  static fromJSON(v: {
    code: HearthErrorCode;
    message: string;
    details?: ErrorDetails;
    cause?: HearthErrorJson | CauseJson;
  }): HearthError {
    const cause =
      v.cause === undefined
        ? undefined
        : 'code' in v.cause
          ? HearthError.fromJSON(v.cause)
          : Object.assign(new Error(v.cause.message), { name: v.cause.name });
    return new HearthError(v.code, v.message, {
      ...(v.details ? { details: v.details } : {}),
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

export function isHearthError(e: unknown, code?: HearthErrorCode): e is HearthError {
  return e instanceof HearthError && (code === undefined || e.code === code);
}
