import { HearthError } from '../core/errors.ts';
import { BYTES_PER_ELEMENT, type DType, numel, type Shape, shapeToString } from '../core/tensor.ts';
import type { GpuContext } from './context.ts';
import { MAP_READ_MODE, Usage } from './usage.ts';

/** Host arrays per dtype. f16 travels as raw IEEE-754 half bits in a Uint16Array. */
export interface HostArrays {
  f32: Float32Array;
  f16: Uint16Array;
  i32: Int32Array;
  u32: Uint32Array;
}
export type HostArray = HostArrays[DType];

const STORAGE_USAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;

/**
 * A tensor in a pooled GPU storage buffer. The buffer may be larger than the tensor (size
 * classes); `byteLength` is the tensor's own size. Call `release()` when done with it.
 */
export class GpuTensor<D extends DType = DType> {
  readonly ctx: GpuContext;
  readonly buffer: GPUBuffer;
  readonly shape: Shape;
  readonly dtype: D;
  /** A view shares its owner's buffer: releasing it does nothing, the owner's release frees it. */
  readonly isView: boolean;
  private released = false;

  constructor(ctx: GpuContext, buffer: GPUBuffer, shape: Shape, dtype: D, isView = false) {
    this.ctx = ctx;
    this.buffer = buffer;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.isView = isView;
  }

  /** The same bytes under another shape with as many elements (no copy; a view). */
  reshape(shape: Shape): GpuTensor<D> {
    checkShape(shape, this.buffer.label);
    if (numel(shape) !== this.numel) {
      throw new HearthError(
        'tensor/shape',
        `Cannot reshape ${this} to ${shapeToString(shape)}: ${this.numel} elements vs ${numel(shape)}.`,
        { details: { from: this.shape, to: shape } },
      );
    }
    return new GpuTensor(this.ctx, this.buffer, shape, this.dtype, true);
  }

  get numel(): number {
    return numel(this.shape);
  }

  get byteLength(): number {
    return this.numel * BYTES_PER_ELEMENT[this.dtype];
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Hands the buffer back to the pool. Using the tensor afterwards is an error. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (!this.isView && !this.ctx.isLost) this.ctx.pool.release(this.buffer);
  }

  toString(): string {
    return `${this.dtype}${shapeToString(this.shape)} "${this.buffer.label}"`;
  }
}

function checkShape(shape: Shape, label: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new HearthError(
      'tensor/shape',
      `Tensor "${label}" has an invalid shape ${JSON.stringify(shape)}: use non-negative integers.`,
      { details: { shape, label } },
    );
  }
}

/** An uninitialised tensor from the pool (contents are whatever the last holder left). */
export function emptyTensor<D extends DType>(
  ctx: GpuContext,
  shape: Shape,
  dtype: D,
  label: string,
): GpuTensor<D> {
  ctx.assertAlive();
  checkShape(shape, label);
  const bytes = Math.max(4, numel(shape) * BYTES_PER_ELEMENT[dtype]);
  return new GpuTensor(ctx, ctx.pool.acquire(bytes, STORAGE_USAGE, label), shape, dtype);
}

const DTYPE_OF = new Map<unknown, DType>([
  [Float32Array, 'f32'],
  [Uint16Array, 'f16'],
  [Int32Array, 'i32'],
  [Uint32Array, 'u32'],
]);

/**
 * Uploads host data into a new tensor. The dtype follows the array: Float32Array → f32,
 * Uint16Array → f16 bits, Int32Array → i32, Uint32Array → u32. One copy (queue.writeBuffer).
 */
export function uploadTensor(ctx: GpuContext, data: HostArray, shape: Shape, label: string): GpuTensor {
  const dtype = DTYPE_OF.get(data.constructor);
  if (!dtype) {
    throw new HearthError(
      'tensor/dtype',
      `Tensor "${label}": unsupported host array ${data.constructor.name}.`,
      {
        details: { label },
      },
    );
  }
  checkShape(shape, label);
  if (numel(shape) !== data.length) {
    throw new HearthError(
      'tensor/shape',
      `Tensor "${label}": shape ${shapeToString(shape)} holds ${numel(shape)} elements but the data has ${data.length}.`,
      { details: { shape, length: data.length, label } },
    );
  }
  const t = emptyTensor(ctx, shape, dtype, label);
  // writeBuffer wants a multiple of 4 bytes: an odd-length f16 array gets one pad element.
  if (data.byteLength % 4 !== 0) {
    const padded = new Uint16Array(data.length + 1);
    padded.set(data as Uint16Array);
    ctx.device.queue.writeBuffer(t.buffer, 0, padded);
  } else if (data.byteLength > 0) {
    ctx.device.queue.writeBuffer(t.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }
  return t;
}

const ARRAY_OF: { [D in DType]: new (b: ArrayBuffer) => HostArrays[D] } = {
  f32: Float32Array,
  f16: Uint16Array,
  i32: Int32Array,
  u32: Uint32Array,
};

/** Copies a tensor back to the host through a pooled staging buffer. */
export async function readTensor<D extends DType>(t: GpuTensor<D>): Promise<HostArrays[D]> {
  const ctx = t.ctx;
  ctx.assertAlive();
  const bytes = t.byteLength;
  const padded = Math.ceil(bytes / 4) * 4;
  if (padded === 0) return new ARRAY_OF[t.dtype](new ArrayBuffer(0));
  const staging = ctx.pool.acquire(padded, Usage.MAP_READ | Usage.COPY_DST, `${t.buffer.label}:read`);
  try {
    const enc = ctx.device.createCommandEncoder({ label: `read ${t.buffer.label}` });
    enc.copyBufferToBuffer(t.buffer, 0, staging, 0, padded);
    ctx.device.queue.submit([enc.finish()]);
    await Promise.race([staging.mapAsync(MAP_READ_MODE, 0, padded), ctx.lost.then((e) => Promise.reject(e))]);
    const out = staging.getMappedRange(0, padded).slice(0, bytes);
    staging.unmap();
    return new ARRAY_OF[t.dtype](out);
  } finally {
    ctx.pool.release(staging);
  }
}
