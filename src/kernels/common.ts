import { HearthError } from '../core/errors.ts';
import { type DType, type Shape, shapeToString } from '../core/tensor.ts';
import type { GpuContext } from '../gpu/context.ts';
import { getPipeline } from '../gpu/pipeline-cache.ts';
import type { GpuTensor } from '../gpu/tensor.ts';

/** Float dtypes kernels compute in. */
export type FloatDType = 'f32' | 'f16';

const ALIAS_F32 = 'alias T = f32;';

/**
 * The one templating step for WGSL: every float kernel declares `alias T = f32;` for its
 * storage type; the f16 variant enables the extension and aliases T to f16. Arithmetic stays
 * in f32 inside the shaders (loads convert with f32(), stores with T()).
 */
export function variantSource(ctx: GpuContext, code: string, dtype: FloatDType, kernel: string): string {
  if (dtype === 'f32') return code;
  if (!ctx.features.shaderF16) {
    throw new HearthError(
      'gpu/feature-missing',
      `${kernel} in f16 needs the adapter feature shader-f16, which this device lacks; use f32.`,
      { details: { kernel, feature: 'shader-f16' } },
    );
  }
  if (!code.includes(ALIAS_F32)) throw new Error(`shader for ${kernel} has no "${ALIAS_F32}" line`);
  return code.replace(ALIAS_F32, 'enable f16;\nalias T = f16;');
}

/** The cached pipeline of a kernel's shader, in the dtype asked for, with its override constants. */
export function kernelPipeline(
  ctx: GpuContext,
  kernel: string,
  code: string,
  dtype: FloatDType,
  constants?: Record<string, number>,
  entryPoint?: string,
): Promise<GPUComputePipeline> {
  return getPipeline(ctx.device, {
    label: dtype === 'f32' ? kernel : `${kernel}<${dtype}>`,
    code: variantSource(ctx, code, dtype, kernel),
    ...(constants ? { constants } : {}),
    ...(entryPoint ? { entryPoint } : {}),
  });
}

export function shapeError(kernel: string, message: string, details: Record<string, unknown>): HearthError {
  return new HearthError('tensor/shape', `${kernel}: ${message}`, { details: { kernel, ...details } });
}

/**
 * The matrix dims (the last two) of operand `what`, as [rows, cols] of op(X): swapped when
 * `transposed`. A 'tensor/shape' error when the shape has fewer than 2 dimensions.
 *
 * @example
 * const [M, K] = matrixDims('matmul', [8, 3, 4], false, 'a'); // [3, 4]
 */
export function matrixDims(
  kernel: string,
  shape: Shape,
  transposed: boolean,
  what: string,
): [number, number] {
  const rows = shape[shape.length - 2];
  const cols = shape[shape.length - 1];
  if (rows === undefined || cols === undefined) {
    throw shapeError(kernel, `${what} needs at least 2 dimensions, got ${shapeToString(shape)}.`, {
      [what]: shape,
    });
  }
  return transposed ? [cols, rows] : [rows, cols];
}

/** Checks that every tensor is a float tensor of the same dtype, and returns it. */
export function floatDType(kernel: string, first: GpuTensor, ...rest: GpuTensor[]): FloatDType {
  const ts = [first, ...rest];
  const d = first.dtype;
  for (const t of ts) {
    if (t.isReleased) {
      throw new HearthError('input/invalid', `${kernel}: tensor ${t} was already released.`, {
        details: { kernel },
      });
    }
    if (t.dtype !== d || (d !== 'f32' && d !== 'f16')) {
      throw new HearthError(
        'tensor/dtype',
        `${kernel}: inputs must all be f32 or all f16; got ${ts.map((x) => x.dtype).join(', ')}.`,
        { details: { kernel, dtypes: ts.map((x) => x.dtype) } },
      );
    }
  }
  return d as FloatDType;
}

export function expectDType(kernel: string, t: GpuTensor, dtypes: readonly DType[], name: string): void {
  if (!dtypes.includes(t.dtype)) {
    throw new HearthError(
      'tensor/dtype',
      `${kernel}: ${name} must be ${dtypes.join(' or ')}, got ${t.dtype}.`,
      {
        details: { kernel, name, dtype: t.dtype },
      },
    );
  }
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function expectShape(kernel: string, t: GpuTensor, shape: Shape, name: string): void {
  if (!sameShape(t.shape, shape)) {
    throw shapeError(
      kernel,
      `${name} must have shape ${shapeToString(shape)}, got ${shapeToString(t.shape)}.`,
      {
        name,
        expected: shape,
        got: t.shape,
      },
    );
  }
}

/** Packs u32 (and, via `f`, f32) uniform fields into a 16-byte-aligned buffer. */
export function uniforms(fields: readonly (number | { f: number })[]): ArrayBuffer {
  const n = Math.ceil(fields.length / 4) * 4;
  const buf = new ArrayBuffer(Math.max(16, n * 4));
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  fields.forEach((v, i) => {
    if (typeof v === 'number') u[i] = v >>> 0;
    else f[i] = v.f;
  });
  return buf;
}

/** Product of a shape's leading dimensions (all but the last `keep`). */
export function leading(shape: Shape, keep: number): number {
  return shape.slice(0, Math.max(0, shape.length - keep)).reduce((n, d) => n * d, 1);
}
