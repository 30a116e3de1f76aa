// Schema combinators on validate.ts: a message is defined once, and both its TypeScript type
// (`Infer<typeof schema>`) and its runtime parser come from that one definition. A schema is a
// function `(value, path) => T` that returns the checked value or throws a HearthError
// ('input/invalid') naming `path` — the same errors validate.ts has always given.
//
// Why not a library (valibot, zod)? What the wire needs is small: strict objects (unknown keys
// are errors), bounded strings and arrays, integers in a range, and refinements that read
// several fields; errors must name the path in Hearth's words. Forty lines do that without
// translating another library's issue objects.
import { HearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';
import { arr, describe, int, obj, oneOf, onlyKeys, str } from './validate.ts';

/** Checks `v` (found at `path`) and returns it typed, or throws naming the path. */
export type Schema<T> = (v: unknown, path: string) => T;
/** The type a schema returns. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

type Fields = Readonly<Record<string, Schema<unknown>>>;
/** The object type of required fields `R` and optional fields `O`. */
export type ObjectOf<R extends Fields, O extends Fields> = {
  readonly [K in keyof R]: Infer<R[K]>;
} & { readonly [K in keyof O]?: Infer<O[K]> };

export const fail = (path: string, message: string, details: Record<string, unknown> = {}): HearthError =>
  new HearthError('input/invalid', `${path}: ${message}`, { details: { path, ...details } });

/** A non-empty string, at most `max` characters, matching `pattern`. */
export const string =
  (opts: { max?: number; pattern?: RegExp } = {}): Schema<string> =>
  (v, path) =>
    str(v, path, opts);

/** An integer in [min, max]. */
export const integer =
  (min: number, max: number): Schema<number> =>
  (v, path) =>
    int(v, path, min, max);

/** A finite number ≥ 0. */
export const nonNegative: Schema<number> = (v, path) => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw fail(path, 'expected a finite number ≥ 0.');
  return v;
};

/** One of a few string literals. */
export const literal =
  <const T extends string>(options: readonly T[]): Schema<T> =>
  (v, path) =>
    oneOf(v, path, options);

/** Exactly this value (a version number, a constant). */
export const exactly =
  <const T extends number | string>(want: T): Schema<T> =>
  (v, path) => {
    if (v !== want)
      throw fail(path, `expected ${JSON.stringify(want)}, got ${v === undefined ? 'nothing' : describe(v)}.`);
    return want;
  };

/** 64 lowercase hex digits. */
export const sha256: Schema<string> = (v, path) => {
  if (!isSha256Hex(v)) throw fail(path, 'expected 64 lowercase hex digits.');
  return v;
};

/** An array of at most `max` items, each checked by `item` (`min` items at least, `distinct` values). */
export const array =
  <T>(item: Schema<T>, max: number, opts: { min?: number; distinct?: string } = {}): Schema<readonly T[]> =>
  (v, path) => {
    const list = arr(v, path, max).map((x, i) => item(x, `${path}[${i}]`));
    if (opts.min !== undefined && list.length < opts.min) {
      throw fail(path, `expected at least ${opts.min} ${opts.min === 1 ? 'item' : 'items'}.`);
    }
    if (opts.distinct !== undefined && new Set(list).size !== list.length) throw fail(path, opts.distinct);
    return list;
  };

/**
 * A strict object: the `required` fields, the `optional` ones (left out of the result when
 * absent, as exactOptionalPropertyTypes wants), and no other key — unless `unknown: 'ignore'`,
 * for answers from a newer peer that may add fields (they are left out of the result).
 */
export const object =
  <R extends Fields, O extends Fields = Record<never, never>>(
    required: R,
    optional?: O,
    opts: { unknown?: 'refuse' | 'ignore' } = {},
  ): Schema<ObjectOf<R, O>> =>
  (v, path) => {
    const o = obj(v, path);
    if (opts.unknown !== 'ignore')
      onlyKeys(o, path, [...Object.keys(required), ...Object.keys(optional ?? {})]);
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(required)) out[k] = s(o[k], `${path}.${k}`);
    for (const [k, s] of Object.entries(optional ?? {})) {
      if (o[k] !== undefined) out[k] = s(o[k], `${path}.${k}`);
    }
    return out as ObjectOf<R, O>;
  };

/** `schema`, then a check across its fields (throw `fail(...)` to refuse). */
export const refine =
  <T>(schema: Schema<T>, check: (value: T, path: string) => void): Schema<T> =>
  (v, path) => {
    const value = schema(v, path);
    check(value, path);
    return value;
  };

/** Any value, passed through unchecked (for fields a later layer checks, or ignores). */
export const unchecked: Schema<unknown> = (v) => v;

/** A plain object whose fields are not checked here (error details). */
export const record: Schema<Readonly<Record<string, unknown>>> = (v, path) => obj(v, path);

/** true or false. */
export const boolean: Schema<boolean> = (v, path) => {
  if (typeof v !== 'boolean') throw fail(path, `expected true or false, got ${describe(v)}.`);
  return v;
};
