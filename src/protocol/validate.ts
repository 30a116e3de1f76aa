// Small runtime checks for data that crosses a trust boundary. Each failure is a HearthError
// ('input/invalid') whose message names the path of the bad field and what was expected.
import { HearthError } from '../core/errors.ts';

export function invalid(path: string, expected: string, got: unknown): HearthError {
  return new HearthError('input/invalid', `${path}: expected ${expected}, got ${describe(got)}.`, {
    details: { path, expected },
  });
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof ArrayBuffer) return `an ArrayBuffer of ${v.byteLength} bytes`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  return typeof v;
}

export function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof ArrayBuffer) {
    throw invalid(path, 'an object', v);
  }
  return v as Record<string, unknown>;
}

export function str(v: unknown, path: string, opts: { max?: number; pattern?: RegExp } = {}): string {
  if (typeof v !== 'string' || v.length === 0) throw invalid(path, 'a non-empty string', v);
  if (opts.max !== undefined && v.length > opts.max) throw invalid(path, `at most ${opts.max} characters`, v);
  if (opts.pattern && !opts.pattern.test(v)) throw invalid(path, `a string matching ${opts.pattern}`, v);
  return v;
}

export function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(path, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}

export function oneOf<T extends string>(v: unknown, path: string, options: readonly T[]): T {
  if (typeof v !== 'string' || !options.includes(v as T)) {
    throw invalid(path, `one of ${options.map((o) => JSON.stringify(o)).join(', ')}`, v);
  }
  return v as T;
}

export function arr(v: unknown, path: string, maxLength: number): unknown[] {
  if (!Array.isArray(v)) throw invalid(path, 'an array', v);
  if (v.length > maxLength) throw invalid(path, `at most ${maxLength} items`, v);
  return v;
}

export function bytes(v: unknown, path: string, maxBytes: number): ArrayBuffer {
  if (!(v instanceof ArrayBuffer)) {
    // Typed arrays are accepted and copied to a standalone buffer of exactly their bytes.
    if (ArrayBuffer.isView(v)) {
      const view = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      if (view.byteLength > maxBytes) throw invalid(path, `at most ${maxBytes} bytes`, v);
      return view.slice().buffer;
    }
    throw invalid(path, 'an ArrayBuffer', v);
  }
  if (v.byteLength > maxBytes) throw invalid(path, `at most ${maxBytes} bytes`, v);
  return v;
}

/** Rejects keys the schema does not know, so a typo is an error rather than a silent default. */
export function onlyKeys(o: Record<string, unknown>, path: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) {
      throw new HearthError('input/invalid', `${path}: unknown field "${k}" (known: ${keys.join(', ')}).`, {
        details: { path, field: k },
      });
    }
  }
}
