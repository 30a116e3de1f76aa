// HostTensor ↔ onnxruntime-web Tensor. Hearth's dtypes map one to one onto ORT's float32,
// float16 (IEEE half bits, Uint16Array), int32 and uint32. int64, common in ONNX models for
// token ids and indices, has no Hearth dtype; it is bridged losslessly where it can be:
// - an int64 model input takes an i32 shard tensor, widened element by element;
// - an int64 model output comes back as i32 when every value fits in 32 bits, and fails with
//   'onnx/unsupported' (naming the output and the value) when one does not.
// Every other ORT type (bool, int8, uint8, float64, string, …) is 'onnx/unsupported', named.
import type { Tensor } from 'onnxruntime-web';
import { HearthError } from '../core/errors.ts';
import { type DType, numel } from '../core/tensor.ts';
import type { HostTensor } from '../protocol/shard.ts';
import type { OrtModule } from './ort.ts';

const TO_ORT = { f32: 'float32', f16: 'float16', i32: 'int32', u32: 'uint32' } as const satisfies Record<
  DType,
  Tensor.Type
>;
const FROM_ORT: Readonly<Record<string, DType>> = {
  float32: 'f32',
  float16: 'f16',
  int32: 'i32',
  uint32: 'u32',
};

/** Whether a model input or output of ORT element type `type` can cross to and from a shard. */
export function isSupportedOrtType(type: string): boolean {
  return type in FROM_ORT || type === 'int64';
}

/** The Hearth dtype a shard must give for an input of ORT type `type` (int64 takes i32). */
export function dtypeForOrtType(type: string): DType | undefined {
  return type === 'int64' ? 'i32' : FROM_ORT[type];
}

/**
 * An ORT tensor over the host tensor's bytes (no copy, except int64 which is widened).
 * `ortType` is the model's type for the input; the caller checked that it is compatible and
 * that the byte length fits the dtype and shape.
 */
export function toOrtTensor(ort: OrtModule, t: HostTensor, ortType: string | undefined): Tensor {
  const dims = [...t.shape];
  const n = numel(t.shape);
  if (ortType === 'int64' && t.dtype === 'i32') {
    const src = new Int32Array(t.data); // at least n long: the caller checked the byte length
    const wide = new BigInt64Array(n);
    for (let i = 0; i < n; i++) wide[i] = BigInt(src[i] as number);
    return new ort.Tensor('int64', wide, dims);
  }
  switch (t.dtype) {
    case 'f32':
      return new ort.Tensor('float32', new Float32Array(t.data), dims);
    case 'f16':
      return new ort.Tensor('float16', new Uint16Array(t.data), dims);
    case 'i32':
      return new ort.Tensor('int32', new Int32Array(t.data), dims);
    case 'u32':
      return new ort.Tensor('uint32', new Uint32Array(t.data), dims);
  }
}

/** The ORT type that a shard's dtype becomes. */
export function ortTypeOf(dtype: DType): Tensor.Type {
  return TO_ORT[dtype];
}

/**
 * The output as a HostTensor with a buffer of its own (copied out of ORT's memory).
 * `name` is the output's name, for errors.
 */
export async function fromOrtTensor(t: Tensor, name: string): Promise<HostTensor> {
  const shape = t.dims.map(Number);
  const data = (t.location === 'cpu' ? t.data : await t.getData()) as ArrayBufferView | string[];
  if (t.type === 'int64') {
    const src = data as BigInt64Array;
    const out = new Int32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const v = src[i] as bigint;
      if (v < -2147483648n || v > 2147483647n) {
        throw new HearthError(
          'onnx/unsupported',
          `Output "${name}" is int64 and its element ${i} (${v}) does not fit in i32; Hearth returns int64 outputs as i32 only when every value fits.`,
          { details: { output: name, dtype: 'int64', index: i, value: String(v) } },
        );
      }
      out[i] = Number(v);
    }
    return { dtype: 'i32', shape, data: out.buffer };
  }
  const dtype = FROM_ORT[t.type];
  if (!dtype || Array.isArray(data) || !ArrayBuffer.isView(data)) {
    throw new HearthError(
      'onnx/unsupported',
      `Output "${name}" has element type ${t.type}, which Hearth cannot return (f32, f16, i32, u32 and int64 as i32 only).`,
      { details: { output: name, dtype: t.type } },
    );
  }
  // Float16Array (where the platform has it) and Uint16Array both hold the half bits.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return { dtype, shape, data: bytes.buffer };
}
