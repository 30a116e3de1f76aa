import { describe, expect, it } from 'vitest';
import { at } from '../../src/core/at.ts';
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
