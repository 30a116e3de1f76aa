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

/**
 * `map.get(key)`, for a key the caller's own construction put there (an id taken from the
 * map's own keys, a slot registered before use). Fails naming the map and the key if a bug
 * ever breaks that, instead of handing on an `undefined`.
 *
 * @example
 * const buf = entry(buffers, slot.buffer, 'plan buffers'); // every slot names a planned buffer
 */
export function entry<K, V>(map: ReadonlyMap<K, V>, key: K, what: string): V {
  if (!map.has(key)) {
    throw new HearthError('input/invalid', `${what}: no entry for ${String(key)}.`, {
      details: { key: String(key), size: map.size },
    });
  }
  return map.get(key) as V;
}

/**
 * `v`, which the caller's own construction guarantees is there (a regular expression's
 * non-optional group after a match, the last element of a list just checked non-empty, a
 * record the caller just wrote). Fails naming what was missing if a bug ever breaks that.
 *
 * For values that come from outside (a manifest, a peer, a file), check and throw the
 * error that names the input instead.
 *
 * @example
 * const name = defined(m[1], 'entry point name'); // group 1 is not optional in the pattern
 */
export function defined<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new HearthError('input/invalid', `${what}: missing.`);
  return v;
}

/**
 * The first value of an iterable the caller knows is not empty (the oldest key of a Map, which
 * keeps insertion order, once it is over its bound). Fails naming what was empty if a bug ever
 * breaks that.
 *
 * @example
 * if (cache.size > LIMIT) cache.delete(first(cache.keys(), 'cache keys')); // least recently used out
 */
export function first<T>(xs: Iterable<T>, what: string): T {
  for (const x of xs) return x;
  throw new HearthError('input/invalid', `${what}: empty, where a first value was expected.`);
}

/**
 * Checks, once before a loop, that `xs` has at least `n` elements: the loop may then read
 * `xs[i] as number` for any i < n. This is the form for hot loops over typed arrays (kernel
 * references, tensor walks), where `at()` on every element would cost a call per element.
 * Fails naming the array, the length needed and the length it has.
 *
 * @example
 * expectLength(bias, N, 'bias');
 * for (let n = 0; n < N; n++) s[n] += bias[n] as number;
 */
export function expectLength(xs: ArrayLike<unknown>, n: number, what: string): void {
  if (xs.length < n) {
    throw new HearthError('input/invalid', `${what}: needs ${n} elements, has ${xs.length}.`, {
      details: { needed: n, length: xs.length },
    });
  }
}
