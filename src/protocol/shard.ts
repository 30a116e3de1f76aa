// Shards (work units) and their results, as they cross from hub to page to worker and back.
// Everything here is validated at runtime by parseShard/parseResult: a shard comes from the
// network, and a result goes back to a hub that trusts nothing.
import { HearthError } from '../core/errors.ts';
import { BYTES_PER_ELEMENT, type DType, numel } from '../core/tensor.ts';
import type { JobKind } from './kinds/index.ts';
import { arr, bytes, int, obj, oneOf, onlyKeys } from './validate.ts';

export const SHARD_PROTOCOL_VERSION = 1;

/** Bounds on what one shard may carry (DESIGN.md invariant 7: everything a stranger sends is bounded). */
export const SHARD_LIMITS = {
  maxTensorBytes: 256 * 1024 * 1024,
  maxRank: 8,
  maxTensors: 64,
  maxSourceChars: 1024 * 1024,
  maxUniformBytes: 64 * 1024,
  maxBudgetMs: 60 * 60 * 1000,
} as const;

export const DTYPES: readonly DType[] = ['f32', 'f16', 'i32', 'u32'];

/** A tensor on the host: raw little-endian bytes (f16 as IEEE half bits), shape and dtype. */
export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: ArrayBuffer;
}

export type OnnxBackend = 'webgpu' | 'wasm';

// The kinds' own shard types live with their kinds (protocol/kinds/); re-exported here, where
// the worker and its callers have always found them.
export type { Shard } from './kinds/index.ts';
export type { OnnxShard } from './kinds/onnx.ts';
export type {
  WgslBinding,
  WgslBuffer,
  WgslDispatchShard,
  WgslInputBinding,
  WgslOutputBinding,
  WgslProgramShard,
  WgslShard,
  WgslUniformBinding,
} from './kinds/wgsl.ts';

export interface OutputTensor extends HostTensor {
  readonly name: string;
  /** SHA-256 of `data`: replicas compare these for bit-exact jobs. */
  readonly sha256: string;
}

export interface ShardResult {
  readonly v: 1;
  readonly shard: string;
  readonly job: string;
  readonly kind: JobKind;
  readonly outputs: readonly OutputTensor[];
  /** Which backend computed it: 'webgpu' or 'wasm' (onnx), always 'webgpu' for wgsl. */
  readonly backend: OnnxBackend;
  /** The adapter, e.g. "google swiftshader (fallback)", or "wasm". */
  readonly device: string;
  readonly ms: number;
}

export interface ShardProgress {
  readonly shard: string;
  /**
   * `checkpoint`: a training shard saved its state after `done` of `total` steps; `resume`: it
   * went on from a checkpoint saved after `done` steps (a reload) instead of from step 0.
   */
  readonly phase: 'load' | 'compile' | 'run' | 'read' | 'hash' | 'checkpoint' | 'resume';
  readonly done: number;
  readonly total: number;
}

export function parseDType(v: unknown, path: string): DType {
  return oneOf(v, path, DTYPES);
}

export function parseShape(v: unknown, path: string): number[] {
  const a = arr(v, path, SHARD_LIMITS.maxRank);
  return a.map((d, i) => int(d, `${path}[${i}]`, 0, 2 ** 31 - 1));
}

export function tensorBytes(dtype: DType, shape: readonly number[]): number {
  return numel(shape) * BYTES_PER_ELEMENT[dtype];
}

export function parseHostTensor(v: unknown, path: string): HostTensor {
  const o = obj(v, path);
  onlyKeys(o, path, ['dtype', 'shape', 'data', 'name', 'sha256']);
  const dtype = parseDType(o.dtype, `${path}.dtype`);
  const shape = parseShape(o.shape, `${path}.shape`);
  const want = tensorBytes(dtype, shape);
  if (want > SHARD_LIMITS.maxTensorBytes) {
    throw new HearthError(
      'input/invalid',
      `${path}: ${dtype}[${shape.join(', ')}] is ${want} bytes, over the ${SHARD_LIMITS.maxTensorBytes}-byte limit per tensor.`,
      { details: { path, bytes: want } },
    );
  }
  const data = bytes(o.data, `${path}.data`, SHARD_LIMITS.maxTensorBytes);
  if (data.byteLength !== want) {
    throw new HearthError(
      'input/invalid',
      `${path}: ${dtype}[${shape.join(', ')}] needs ${want} bytes of data, got ${data.byteLength}.`,
      { details: { path, expected: want, got: data.byteLength } },
    );
  }
  return { dtype, shape, data };
}

/** Checks a result's outputs against their declared hashes (the hub's first check). */
export async function verifyResultHashes(
  r: ShardResult,
  sha256: (b: ArrayBuffer) => Promise<string>,
): Promise<void> {
  for (const out of r.outputs) {
    const got = await sha256(out.data);
    if (got !== out.sha256) {
      throw new HearthError(
        'input/invalid',
        `result ${r.shard}: output "${out.name}" does not match its SHA-256.`,
        {
          details: { shard: r.shard, output: out.name },
        },
      );
    }
  }
}
