import { describe, expect, it } from 'vitest';
import { at, defined, entry, expectLength, first } from '../../src/core/at.ts';
import { isHearthError } from '../../src/core/errors.ts';

describe('at', () => {
  it('returns the element at an index in range', () => {
    expect(at(['a', 'b', 'c'], 0, 'letters')).toBe('a');
    expect(at(['a', 'b', 'c'], 2, 'letters')).toBe('c');
    expect(at(new Float32Array([1.5, 2.5]), 1, 'weights')).toBe(2.5);
  });

  it('keeps an element that is itself undefined, when the index is in range', () => {
    expect(at([undefined, 1], 0, 'slots')).toBeUndefined();
  });

  it('throws input/invalid naming the array, the index and the length when out of range', () => {
    for (const i of [-1, 3, 1.5, Number.NaN]) {
      let caught: unknown;
      try {
        at(['a', 'b', 'c'], i, 'letters');
      } catch (e) {
        caught = e;
      }
      expect(isHearthError(caught, 'input/invalid')).toBe(true);
      expect((caught as Error).message).toBe(`letters: index ${i} is out of range (length 3).`);
    }
  });
});

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('entry', () => {
  it('returns the value of a key that is there, even an undefined one', () => {
    const m = new Map<string, number | undefined>([
      ['a', 1],
      ['b', undefined],
    ]);
    expect(entry(m, 'a', 'counts')).toBe(1);
    expect(entry(m, 'b', 'counts')).toBeUndefined();
  });

  it('throws input/invalid naming the map and the key when the key is absent', () => {
    const e = caught(() => entry(new Map([['a', 1]]), 'z', 'counts'));
    expect(isHearthError(e, 'input/invalid')).toBe(true);
    expect((e as Error).message).toBe('counts: no entry for z.');
  });
});

describe('defined', () => {
  it('returns a value that is there (falsy ones too)', () => {
    expect(defined(0, 'n')).toBe(0);
    expect(defined('', 's')).toBe('');
  });

  it('throws input/invalid naming what was missing', () => {
    const e = caught(() => defined(undefined, 'entry point name'));
    expect(isHearthError(e, 'input/invalid')).toBe(true);
    expect((e as Error).message).toBe('entry point name: missing.');
  });
});

describe('first', () => {
  it('returns the first value of an iterable: the oldest key of a Map', () => {
    expect(
      first(
        new Map([
          ['old', 1],
          ['new', 2],
        ]).keys(),
        'cache',
      ),
    ).toBe('old');
    expect(first(new Set([3, 4]), 'set')).toBe(3);
  });

  it('throws input/invalid naming what was empty', () => {
    const e = caught(() => first(new Set(), 'job cache'));
    expect(isHearthError(e, 'input/invalid')).toBe(true);
    expect((e as Error).message).toBe('job cache: empty, where a first value was expected.');
  });
});

describe('expectLength', () => {
  it('passes when the array has at least n elements', () => {
    expect(() => expectLength(new Float32Array(4), 4, 'x')).not.toThrow();
    expect(() => expectLength([1, 2, 3], 2, 'x')).not.toThrow();
  });

  it('throws input/invalid naming the array, the length needed and the length it has', () => {
    const e = caught(() => expectLength(new Float32Array(3), 4, 'bias'));
    expect(isHearthError(e, 'input/invalid')).toBe(true);
    expect((e as Error).message).toBe('bias: needs 4 elements, has 3.');
  });
});
