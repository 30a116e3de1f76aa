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
export type HearthErrorCode =
  | 'gpu/unavailable'
  | 'gpu/device-lost'
  | 'gpu/limit'
  | 'gpu/validation'
  | 'gpu/out-of-memory'
  | 'gpu/feature-missing'
  | 'wgsl/compile'
  | 'wgsl/pipeline'
  | 'tensor/shape'
  | 'tensor/dtype'
  | 'input/invalid'
  | 'wgsl/manifest'
  | 'shard/timeout'
  | 'shard/cancelled'
  /** The shard runner failed in a way it did not name (a bug, a crash): not the job's fault. */
  | 'shard/failed'
  | 'onnx/model'
  | 'onnx/unsupported'
  | 'onnx/run'
  | 'blob/missing'
  | 'blob/corrupt'
  | 'store/quota'
  | 'store/failed'
  /** A hub or peer could not be reached, or the connection dropped. Retrying later may work. */
  | 'net/unreachable'
  /** A hub or peer did not answer in time. */
  | 'net/timeout'
  /** A hub or peer answered, and said no (the message says why). */
  | 'net/refused'
  /** A peer sent bytes that break the data-plane protocol (garbage, out-of-range, oversized). */
  | 'net/protocol';

export type ErrorDetails = Readonly<Record<string, unknown>>;

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

  /** A plain object that survives structured clone; `fromJSON` rebuilds the error. */
  toJSON(): { name: 'HearthError'; code: HearthErrorCode; message: string; details: ErrorDetails } {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }

  static fromJSON(v: { code: HearthErrorCode; message: string; details?: ErrorDetails }): HearthError {
    return new HearthError(v.code, v.message, v.details ? { details: v.details } : {});
  }
}

export function isHearthError(e: unknown, code?: HearthErrorCode): e is HearthError {
  return e instanceof HearthError && (code === undefined || e.code === code);
}
