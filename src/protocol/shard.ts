// Shards (work units) and their results, as they cross from hub to page to worker and back.
// Everything here is validated at runtime by parseShard/parseResult: a shard comes from the
// network, and a result goes back to a hub that trusts nothing.
import { HearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';
import { BYTES_PER_ELEMENT, type DType, numel } from '../core/tensor.ts';
import { arr, bytes, describe, int, obj, oneOf, onlyKeys, str } from './validate.ts';

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
const ID = /^[A-Za-z0-9._:/-]{1,128}$/;

/** A tensor on the host: raw little-endian bytes (f16 as IEEE half bits), shape and dtype. */
export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: ArrayBuffer;
}

export type OnnxBackend = 'webgpu' | 'wasm';

/**
 * One batch through an ONNX model. The model is named by the SHA-256 of its bytes; the worker
 * takes them from its blob cache and checks the hash before use.
 *
 * @example
 * { v: 1, kind: 'onnx', id: 'job7/3', job: 'job7', model: 'e3b0…55', inputs: { x: { dtype: 'f32', shape: [8, 16], data } } }
 */
export interface OnnxShard {
  readonly v: 1;
  readonly kind: 'onnx';
  readonly id: string;
  readonly job: string;
  readonly model: string;
  readonly inputs: Readonly<Record<string, HostTensor>>;
  /** Output names to return; all of the model's outputs when absent. */
  readonly outputs?: readonly string[];
  /** 'auto' (default): WebGPU, falling back to WASM when WebGPU is missing or fails. */
  readonly backend?: 'auto' | OnnxBackend;
  /** Wall-clock budget; a shard over it stops with a 'shard/timeout' error. */
  readonly budgetMs?: number;
}

export interface WgslInputBinding {
  readonly binding: number;
  readonly role: 'input';
  readonly name: string;
  readonly tensor: HostTensor;
}
export interface WgslOutputBinding {
  readonly binding: number;
  readonly role: 'output';
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}
export interface WgslUniformBinding {
  readonly binding: number;
  readonly role: 'uniform';
  readonly name: string;
  /** The uniform struct's bytes, laid out as the shader declares it. */
  readonly data: ArrayBuffer;
}
export type WgslBinding = WgslInputBinding | WgslOutputBinding | WgslUniformBinding;

/**
 * A researcher's WGSL compute shader run once over a dispatch grid. Bindings are all in
 * @group(0): inputs as `var<storage, read>`, outputs as `var<storage, read_write>`, uniforms
 * as `var<uniform>`.
 */
export interface WgslShard {
  readonly v: 1;
  readonly kind: 'wgsl';
  readonly id: string;
  readonly job: string;
  readonly source: string;
  readonly entryPoint?: string;
  readonly bindings: readonly WgslBinding[];
  readonly dispatch: readonly [number, number, number];
  readonly budgetMs?: number;
}

export type Shard = OnnxShard | WgslShard;

export interface OutputTensor extends HostTensor {
  readonly name: string;
  /** SHA-256 of `data`: replicas compare these for bit-exact jobs. */
  readonly sha256: string;
}

export interface ShardResult {
  readonly v: 1;
  readonly shard: string;
  readonly job: string;
  readonly kind: Shard['kind'];
  readonly outputs: readonly OutputTensor[];
  /** Which backend computed it: 'webgpu' or 'wasm' (onnx), always 'webgpu' for wgsl. */
  readonly backend: OnnxBackend;
  /** The adapter, e.g. "google swiftshader (fallback)", or "wasm". */
  readonly device: string;
  readonly ms: number;
}

export interface ShardProgress {
  readonly shard: string;
  readonly phase: 'load' | 'compile' | 'run' | 'read' | 'hash';
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

function budget(v: unknown, path: string): number | undefined {
  return v === undefined ? undefined : int(v, path, 1, SHARD_LIMITS.maxBudgetMs);
}

function parseBinding(v: unknown, path: string): WgslBinding {
  const o = obj(v, path);
  const role = oneOf(o.role, `${path}.role`, ['input', 'output', 'uniform'] as const);
  const binding = int(o.binding, `${path}.binding`, 0, 1023);
  const name = str(o.name, `${path}.name`, { max: 128 });
  switch (role) {
    case 'input':
      onlyKeys(o, path, ['binding', 'role', 'name', 'tensor']);
      return { binding, role, name, tensor: parseHostTensor(o.tensor, `${path}.tensor`) };
    case 'output': {
      onlyKeys(o, path, ['binding', 'role', 'name', 'dtype', 'shape']);
      const dtype = parseDType(o.dtype, `${path}.dtype`);
      const shape = parseShape(o.shape, `${path}.shape`);
      if (tensorBytes(dtype, shape) > SHARD_LIMITS.maxTensorBytes) {
        throw new HearthError(
          'input/invalid',
          `${path}: output is over the ${SHARD_LIMITS.maxTensorBytes}-byte limit.`,
          {
            details: { path },
          },
        );
      }
      return { binding, role, name, dtype, shape };
    }
    default: {
      onlyKeys(o, path, ['binding', 'role', 'name', 'data']);
      const data = bytes(o.data, `${path}.data`, SHARD_LIMITS.maxUniformBytes);
      if (data.byteLength === 0 || data.byteLength % 4 !== 0) {
        throw new HearthError(
          'input/invalid',
          `${path}.data: uniform bytes must be a non-zero multiple of 4, got ${data.byteLength}.`,
          {
            details: { path },
          },
        );
      }
      return { binding, role: 'uniform', name, data };
    }
  }
}

/**
 * Checks an untrusted value and returns it as a Shard, or throws a HearthError
 * ('input/invalid') naming the bad field.
 */
export function parseShard(v: unknown): Shard {
  const o = obj(v, 'shard');
  if (o.v !== SHARD_PROTOCOL_VERSION) {
    throw new HearthError(
      'input/invalid',
      `shard.v: this worker speaks shard protocol ${SHARD_PROTOCOL_VERSION}, the shard says ${describe(o.v)}.`,
      { details: { path: 'shard.v' } },
    );
  }
  const kind = oneOf(o.kind, 'shard.kind', ['onnx', 'wgsl'] as const);
  const id = str(o.id, 'shard.id', { pattern: ID });
  const job = str(o.job, 'shard.job', { pattern: ID });
  if (kind === 'onnx') {
    onlyKeys(o, 'shard', ['v', 'kind', 'id', 'job', 'model', 'inputs', 'outputs', 'backend', 'budgetMs']);
    if (!isSha256Hex(o.model))
      throw new HearthError(
        'input/invalid',
        'shard.model: expected the SHA-256 of the model as 64 lowercase hex digits.',
        { details: { path: 'shard.model' } },
      );
    const inputsObj = obj(o.inputs, 'shard.inputs');
    const names = Object.keys(inputsObj);
    if (names.length === 0 || names.length > SHARD_LIMITS.maxTensors) {
      throw new HearthError(
        'input/invalid',
        `shard.inputs: expected 1 to ${SHARD_LIMITS.maxTensors} named tensors, got ${names.length}.`,
        {
          details: { path: 'shard.inputs' },
        },
      );
    }
    const inputs: Record<string, HostTensor> = {};
    for (const n of names) {
      // As in manifest.ts tensorMap: "__proto__" would set the prototype, not add an input.
      if (n === '__proto__') {
        throw new HearthError(
          'input/invalid',
          'shard.inputs.__proto__: this name is not allowed for a tensor.',
          {
            details: { path: 'shard.inputs.__proto__' },
          },
        );
      }
      inputs[n] = parseHostTensor(inputsObj[n], `shard.inputs.${n}`);
    }
    const outputs =
      o.outputs === undefined
        ? undefined
        : arr(o.outputs, 'shard.outputs', SHARD_LIMITS.maxTensors).map((x, i) =>
            str(x, `shard.outputs[${i}]`, { max: 256 }),
          );
    const backend =
      o.backend === undefined
        ? undefined
        : oneOf(o.backend, 'shard.backend', ['auto', 'webgpu', 'wasm'] as const);
    const budgetMs = budget(o.budgetMs, 'shard.budgetMs');
    return {
      v: 1,
      kind,
      id,
      job,
      model: o.model,
      inputs,
      ...(outputs ? { outputs } : {}),
      ...(backend ? { backend } : {}),
      ...(budgetMs ? { budgetMs } : {}),
    };
  }
  onlyKeys(o, 'shard', [
    'v',
    'kind',
    'id',
    'job',
    'source',
    'entryPoint',
    'bindings',
    'dispatch',
    'budgetMs',
  ]);
  const source = str(o.source, 'shard.source', { max: SHARD_LIMITS.maxSourceChars });
  const entryPoint =
    o.entryPoint === undefined
      ? undefined
      : str(o.entryPoint, 'shard.entryPoint', { max: 128, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/ });
  const bindings = arr(o.bindings, 'shard.bindings', SHARD_LIMITS.maxTensors).map((b, i) =>
    parseBinding(b, `shard.bindings[${i}]`),
  );
  const seen = new Set<number>();
  for (const b of bindings) {
    if (seen.has(b.binding)) {
      throw new HearthError('input/invalid', `shard.bindings: binding ${b.binding} is listed twice.`, {
        details: { binding: b.binding },
      });
    }
    seen.add(b.binding);
  }
  if (!bindings.some((b) => b.role === 'output')) {
    throw new HearthError(
      'input/invalid',
      'shard.bindings: a WGSL shard needs at least one output binding.',
      { details: {} },
    );
  }
  const d = arr(o.dispatch, 'shard.dispatch', 3);
  if (d.length !== 3)
    throw new HearthError('input/invalid', 'shard.dispatch: expected [x, y, z] workgroup counts.', {
      details: {},
    });
  const dispatch = d.map((x, i) => int(x, `shard.dispatch[${i}]`, 1, 2 ** 31 - 1)) as [
    number,
    number,
    number,
  ];
  const budgetMs = budget(o.budgetMs, 'shard.budgetMs');
  return {
    v: 1,
    kind,
    id,
    job,
    source,
    ...(entryPoint ? { entryPoint } : {}),
    bindings,
    dispatch,
    ...(budgetMs ? { budgetMs } : {}),
  };
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
