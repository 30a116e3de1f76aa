import { HearthError } from '../core/errors.ts';

/** Throws the signal's reason (a HearthError: cancelled or timed out) if it has fired. */
export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw asError(signal.reason);
}

function asError(reason: unknown): HearthError {
  return reason instanceof HearthError
    ? reason
    : new HearthError('shard/cancelled', 'The shard was cancelled.', { cause: reason });
}

/** Settles with `p`, or rejects with the signal's reason as soon as it fires. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  checkAborted(signal);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(asError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
