import { describe, expect, it } from 'vitest';
import { toF16Array } from '../../src/core/f16.ts';
import type { DType } from '../../src/core/tensor.ts';
import { tensorsAgree } from '../../src/hub/agreement.ts';

const t = (dtype: DType, values: ArrayLike<number>, sha256 = 'x') => {
  const data =
    dtype === 'f32'
      ? Float32Array.from(values).buffer
      : dtype === 'f16'
        ? toF16Array(values).buffer
        : dtype === 'i32'
          ? Int32Array.from(values).buffer
          : Uint32Array.from(values).buffer;
  return { dtype, shape: [values.length], data: data as ArrayBuffer, sha256 };
};
const tol = { rtol: 1e-3, atol: 1e-6 };

describe('replica agreement', () => {
  it('agrees within rtol/atol and not beyond', () => {
    expect(tensorsAgree(t('f32', [1, 100]), t('f32', [1.0005, 100.05]), tol)).toBe(true);
    expect(tensorsAgree(t('f32', [1, 100]), t('f32', [1.002, 100]), tol)).toBe(false);
    expect(tensorsAgree(t('f32', [0]), t('f32', [5e-7]), tol)).toBe(true);
    expect(tensorsAgree(t('f32', [0]), t('f32', [5e-6]), tol)).toBe(false);
  });

  it('never lets NaN agree; infinities agree only with the same infinity', () => {
    expect(tensorsAgree(t('f32', [Number.NaN]), t('f32', [Number.NaN]), tol)).toBe(false);
    expect(tensorsAgree(t('f32', [Number.NaN]), t('f32', [0]), tol)).toBe(false);
    expect(
      tensorsAgree(t('f32', [Number.POSITIVE_INFINITY]), t('f32', [Number.POSITIVE_INFINITY]), tol),
    ).toBe(true);
    expect(tensorsAgree(t('f32', [Number.POSITIVE_INFINITY]), t('f32', [1e38]), tol)).toBe(false);
  });

  it('decodes f16 and integer outputs', () => {
    expect(tensorsAgree(t('f16', [1, 2]), t('f16', [1, 2.001]), tol)).toBe(true);
    expect(tensorsAgree(t('f16', [1, 2]), t('f16', [1, 2.1]), tol)).toBe(false);
    expect(tensorsAgree(t('i32', [-5, 7]), t('i32', [-5, 7]), { rtol: 0, atol: 0 })).toBe(true);
    expect(tensorsAgree(t('u32', [5]), t('u32', [6]), { rtol: 0, atol: 0 })).toBe(false);
  });

  it('compares hashes for exact jobs, and dtype and shape always', () => {
    expect(tensorsAgree(t('f32', [1], 'a'), t('f32', [1], 'a'), 'exact')).toBe(true);
    expect(tensorsAgree(t('f32', [1], 'a'), t('f32', [1], 'b'), 'exact')).toBe(false);
    expect(tensorsAgree(t('f32', [1]), t('i32', [1]), tol)).toBe(false);
    expect(tensorsAgree(t('f32', [1, 2]), { ...t('f32', [1, 2]), shape: [2, 1] }, tol)).toBe(false);
  });
});
