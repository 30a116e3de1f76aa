import { HearthError } from './errors.ts';

/**
 * `xs[i]`, for an index the caller's own construction keeps in range (a peer's rank in the
 * ring it was built from, a dimension of a shape already checked). Under
 * `noUncheckedIndexedAccess` such a read is typed `T | undefined`; this says the caller
 * expects it to be there and, if a bug ever breaks that, fails with the index and the length
 * rather than letting an `undefined` travel on to fail somewhere far away.
 *
 * Not for hot inner loops over typed arrays, where the loop's own bound is the check.
 *
 * @example
 * const peer = at(ring, (rank + 1) % ring.length, 'ring'); // the next peer round the ring
 */
export function at<T>(xs: ArrayLike<T>, i: number, what: string): T {
  if (!Number.isInteger(i) || i < 0 || i >= xs.length) {
    throw new HearthError('input/invalid', `${what}: index ${i} is out of range (length ${xs.length}).`, {
      details: { index: i, length: xs.length },
    });
  }
  return xs[i] as T;
}
