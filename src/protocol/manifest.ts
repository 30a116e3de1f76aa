// The job manifest a researcher submits to a hub. It crosses a trust boundary (anyone holding a
// token may send one), so parseManifest checks every field and names the bad one.
//
// Bytes never travel inside a manifest: models, input tensors, uniforms and honeypot answers are
// blobs named by their SHA-256 and uploaded separately, so the control plane stays small.
import { HearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';
import type { DType } from '../core/tensor.ts';
import type { CountedFlops } from './flops.ts';
import { parseDType, parseShape, SHARD_LIMITS, tensorBytes } from './shard.ts';
import { arr, describe, int, obj, oneOf, onlyKeys, str } from './validate.ts';

export const MANIFEST_VERSION = 1;

/** Bounds on a manifest (DESIGN.md invariant 7). */
export const MANIFEST_LIMITS = {
  maxShards: 100_000,
  maxHoneypots: 1_000,
  /** Shards the hub runs itself per job to make honeypots (each costs the hub one shard's work). */
  maxAutoHoneypots: 16,
  maxReplication: 16,
  maxDeadlineMs: 24 * 60 * 60 * 1000,
  maxFlopsPerShard: 1e18,
  maxCreditRate: 1e6,
} as const;

/** An input tensor stored as a blob: raw little-endian bytes of `dtype` and `shape`. */
export interface TensorBlob {
  readonly sha256: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** 'exact': replicas agree when output hashes are equal. Otherwise |a−b| ≤ atol + rtol·max(|a|,|b|). */
export type Tolerance = 'exact' | { readonly rtol: number; readonly atol: number };

/** What a volunteer's device must offer to be given this job's shards. */
export interface Requirements {
  /** Largest single GPU buffer the job needs (compared with the adapter's maxBufferSize). */
  readonly minBufferBytes?: number;
  /** WebGPU features the job needs, e.g. 'shader-f16'. */
  readonly features?: readonly string[];
}

/** One output a honeypot must produce: its hash, and for tolerance jobs the tensor as a blob. */
export interface ExpectedOutput {
  readonly name: string;
  readonly sha256: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

interface ManifestBase {
  readonly v: 1;
  readonly name?: string;
  /** Distinct volunteers whose results must agree before a shard is accepted (≥ 1). */
  readonly replication: number;
  /** Most results gathered for one shard before it is declared inconclusive (≥ replication). */
  readonly maxReplicas: number;
  readonly tolerance: Tolerance;
  /** How long a lease lasts without a heartbeat before the shard is reissued. */
  readonly deadlineMs: number;
  /** Credits per FLOP of validated work. */
  readonly creditRate: number;
  readonly requirements?: Requirements;
  /**
   * Honeypots the hub makes itself: at submit it runs this many of the job's own shards, chosen
   * at random, on its own device and adds them as honeypots with the answers it got (hub/oracle.ts).
   */
  readonly autoHoneypots?: number;
}

/** An input batch split along dim 0; every other input is passed whole to every shard. */
export interface OnnxManifest extends ManifestBase {
  readonly kind: 'onnx';
  /** SHA-256 of the .onnx file. */
  readonly model: string;
  readonly inputs: Readonly<Record<string, TensorBlob>>;
  /** The input split into shards of `shardSize` rows (the last shard may be shorter). */
  readonly batchInput: string;
  readonly shardSize: number;
  readonly outputs?: readonly string[];
  readonly honeypots?: readonly OnnxHoneypot[];
  /**
   * FLOPs of one shard as the researcher declares them: optional, since the hub counts them from
   * the model's graph (flops.ts); used for credit only when the graph cannot be counted.
   */
  readonly flopsPerShard?: number;
  /**
   * Set by the hub at submit, never by a researcher (parseManifest refuses the field): FLOPs
   * counted from the model for each batch size of this job. Credit uses these (flops.ts).
   */
  readonly flopsByRows?: CountedFlops;
}

export interface OnnxHoneypot {
  /** Inputs of this honeypot batch (same names as the job's inputs). */
  readonly inputs: Readonly<Record<string, TensorBlob>>;
  readonly expected: readonly ExpectedOutput[];
}

export type WgslBindingSpec =
  | { readonly binding: number; readonly role: 'input'; readonly name: string; readonly tensor: TensorBlob }
  | {
      readonly binding: number;
      readonly role: 'output';
      readonly name: string;
      readonly dtype: DType;
      readonly shape: readonly number[];
    }
  | { readonly binding: number; readonly role: 'uniform'; readonly name: string; readonly sha256: string };

/** One dispatch of the job's kernel: a shard, as the researcher lists it. */
export interface WgslShardSpec {
  readonly bindings: readonly WgslBindingSpec[];
  readonly dispatch: readonly [number, number, number];
}

/**
 * A WGSL job lists its shards explicitly: each is one dispatch with its own bindings. (A template
 * split by a rule can be added later as sugar that expands to this list; the list is what the
 * hub plans from, so it stays the one format.)
 */
export interface WgslManifest extends ManifestBase {
  readonly kind: 'wgsl';
  readonly source: string;
  readonly entryPoint?: string;
  readonly shards: readonly WgslShardSpec[];
  readonly honeypots?: readonly WgslHoneypot[];
  /** FLOPs of one shard, as the kernel's author declares them. Credit = flopsPerShard × creditRate. */
  readonly flopsPerShard: number;
}

export interface WgslHoneypot extends WgslShardSpec {
  readonly expected: readonly ExpectedOutput[];
}

export type Manifest = OnnxManifest | WgslManifest;

const fail = (path: string, message: string): HearthError =>
  new HearthError('input/invalid', `${path}: ${message}`, { details: { path } });

function sha(v: unknown, path: string): string {
  if (!isSha256Hex(v)) throw fail(path, 'expected a SHA-256 as 64 lowercase hex digits.');
  return v;
}

function num(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw fail(path, `expected a finite number in [${min}, ${max}], got ${describe(v)}.`);
  }
  return v;
}

function tensorBlob(v: unknown, path: string): TensorBlob {
  const o = obj(v, path);
  onlyKeys(o, path, ['sha256', 'dtype', 'shape']);
  const sha256 = sha(o.sha256, `${path}.sha256`);
  const dtype = parseDType(o.dtype, `${path}.dtype`);
  const shape = parseShape(o.shape, `${path}.shape`);
  if (tensorBytes(dtype, shape) > SHARD_LIMITS.maxTensorBytes) {
    throw fail(path, `${dtype}[${shape.join(', ')}] is over the ${SHARD_LIMITS.maxTensorBytes}-byte limit.`);
  }
  return { sha256, dtype, shape };
}

/** Checks a `{ name: TensorBlob }` map (also used for the tensors a lease names). */
export function tensorMap(v: unknown, path: string): Record<string, TensorBlob> {
  const o = obj(v, path);
  const names = Object.keys(o);
  if (names.length === 0 || names.length > SHARD_LIMITS.maxTensors) {
    throw fail(path, `expected 1 to ${SHARD_LIMITS.maxTensors} named tensors, got ${names.length}.`);
  }
  const out: Record<string, TensorBlob> = {};
  for (const n of names) {
    // JSON.parse makes "__proto__" an own key; assigned to a plain object it would set the
    // object's prototype instead, and the tensor would vanish when the manifest is stored.
    if (n === '__proto__') throw fail(`${path}.${n}`, 'this name is not allowed for a tensor.');
    out[n] = tensorBlob(o[n], `${path}.${n}`);
  }
  return out;
}

function expected(v: unknown, path: string): ExpectedOutput[] {
  const a = arr(v, path, SHARD_LIMITS.maxTensors);
  if (a.length === 0) throw fail(path, 'a honeypot needs at least one expected output.');
  return a.map((x, i) => {
    const p = `${path}[${i}]`;
    const o = obj(x, p);
    onlyKeys(o, p, ['name', 'sha256', 'dtype', 'shape']);
    return {
      name: str(o.name, `${p}.name`, { max: 256 }),
      sha256: sha(o.sha256, `${p}.sha256`),
      dtype: parseDType(o.dtype, `${p}.dtype`),
      shape: parseShape(o.shape, `${p}.shape`),
    };
  });
}

function tolerance(v: unknown, path: string): Tolerance {
  if (v === 'exact') return 'exact';
  if (typeof v === 'string')
    throw fail(path, `expected 'exact' or { rtol, atol }, got ${JSON.stringify(v)}.`);
  const o = obj(v, path);
  onlyKeys(o, path, ['rtol', 'atol']);
  return { rtol: num(o.rtol, `${path}.rtol`, 0, 1), atol: num(o.atol, `${path}.atol`, 0, 1e6) };
}

function requirements(v: unknown, path: string): Requirements {
  const o = obj(v, path);
  onlyKeys(o, path, ['minBufferBytes', 'features']);
  const minBufferBytes =
    o.minBufferBytes === undefined
      ? undefined
      : int(o.minBufferBytes, `${path}.minBufferBytes`, 0, 2 ** 53 - 1);
  const features =
    o.features === undefined
      ? undefined
      : arr(o.features, `${path}.features`, 64).map((f, i) => str(f, `${path}.features[${i}]`, { max: 64 }));
  return {
    ...(minBufferBytes !== undefined ? { minBufferBytes } : {}),
    ...(features ? { features } : {}),
  };
}

/** Checks one WGSL shard's bindings and dispatch (also used for the work a lease carries). */
export function wgslShard(v: unknown, path: string, extraKeys: readonly string[] = []): WgslShardSpec {
  const o = obj(v, path);
  onlyKeys(o, path, ['bindings', 'dispatch', ...extraKeys]);
  const bindings = arr(o.bindings, `${path}.bindings`, SHARD_LIMITS.maxTensors).map(
    (b, i): WgslBindingSpec => {
      const p = `${path}.bindings[${i}]`;
      const bo = obj(b, p);
      const role = oneOf(bo.role, `${p}.role`, ['input', 'output', 'uniform'] as const);
      const binding = int(bo.binding, `${p}.binding`, 0, 1023);
      const name = str(bo.name, `${p}.name`, { max: 128 });
      if (role === 'input') {
        onlyKeys(bo, p, ['binding', 'role', 'name', 'tensor']);
        return { binding, role, name, tensor: tensorBlob(bo.tensor, `${p}.tensor`) };
      }
      if (role === 'output') {
        onlyKeys(bo, p, ['binding', 'role', 'name', 'dtype', 'shape']);
        return {
          binding,
          role,
          name,
          dtype: parseDType(bo.dtype, `${p}.dtype`),
          shape: parseShape(bo.shape, `${p}.shape`),
        };
      }
      onlyKeys(bo, p, ['binding', 'role', 'name', 'sha256']);
      return { binding, role, name, sha256: sha(bo.sha256, `${p}.sha256`) };
    },
  );
  const seen = new Set<number>();
  for (const b of bindings) {
    if (seen.has(b.binding)) throw fail(`${path}.bindings`, `binding ${b.binding} is listed twice.`);
    seen.add(b.binding);
  }
  if (!bindings.some((b) => b.role === 'output')) {
    throw fail(`${path}.bindings`, 'a WGSL shard needs at least one output binding.');
  }
  const d = arr(o.dispatch, `${path}.dispatch`, 3);
  if (d.length !== 3) throw fail(`${path}.dispatch`, 'expected [x, y, z] workgroup counts.');
  const dispatch = d.map((x, i) => int(x, `${path}.dispatch[${i}]`, 1, 65535)) as [number, number, number];
  return { bindings, dispatch };
}

const COMMON_KEYS = [
  'v',
  'kind',
  'name',
  'replication',
  'maxReplicas',
  'tolerance',
  'deadlineMs',
  'creditRate',
  'flopsPerShard',
  'requirements',
  'honeypots',
  'autoHoneypots',
] as const;

/**
 * Checks an untrusted value and returns it as a Manifest, or throws a HearthError
 * ('input/invalid') whose message starts with the path of the bad field.
 *
 * @example
 * const m = parseManifest(JSON.parse(text));
 * // { v: 1, kind: 'onnx', model: 'e3b0…', inputs: { x: { sha256, dtype: 'f32', shape: [1000, 16] } },
 * //   batchInput: 'x', shardSize: 100, replication: 2, maxReplicas: 5, tolerance: { rtol: 1e-4, atol: 1e-5 },
 * //   deadlineMs: 60000, creditRate: 1e-9, flopsPerShard: 3.2e6 }
 */
export function parseManifest(v: unknown): Manifest {
  const o = obj(v, 'manifest');
  if (o.v !== MANIFEST_VERSION) {
    throw fail('manifest.v', `this hub reads manifest version ${MANIFEST_VERSION}, got ${describe(o.v)}.`);
  }
  const kind = oneOf(o.kind, 'manifest.kind', ['onnx', 'wgsl'] as const);
  const name = o.name === undefined ? undefined : str(o.name, 'manifest.name', { max: 256 });
  const replication = int(o.replication, 'manifest.replication', 1, MANIFEST_LIMITS.maxReplication);
  // Default headroom: enough results to outvote one liar per replica.
  const maxReplicas =
    o.maxReplicas === undefined
      ? Math.min(MANIFEST_LIMITS.maxReplication, 2 * replication + 1)
      : int(o.maxReplicas, 'manifest.maxReplicas', replication, MANIFEST_LIMITS.maxReplication);
  const base = {
    v: 1 as const,
    ...(name !== undefined ? { name } : {}),
    replication,
    maxReplicas,
    tolerance: tolerance(o.tolerance, 'manifest.tolerance'),
    deadlineMs: int(o.deadlineMs, 'manifest.deadlineMs', 1000, MANIFEST_LIMITS.maxDeadlineMs),
    creditRate: num(o.creditRate, 'manifest.creditRate', 0, MANIFEST_LIMITS.maxCreditRate),
    ...(o.requirements !== undefined
      ? { requirements: requirements(o.requirements, 'manifest.requirements') }
      : {}),
    ...(o.autoHoneypots !== undefined
      ? {
          autoHoneypots: int(o.autoHoneypots, 'manifest.autoHoneypots', 0, MANIFEST_LIMITS.maxAutoHoneypots),
        }
      : {}),
  };
  const hp =
    o.honeypots === undefined
      ? undefined
      : arr(o.honeypots, 'manifest.honeypots', MANIFEST_LIMITS.maxHoneypots);

  // Required for WGSL (nothing else says what a kernel costs); optional for ONNX, whose graph the
  // hub counts. A declared value is still range-checked when present.
  const declaredFlops =
    o.flopsPerShard === undefined && kind === 'onnx'
      ? undefined
      : num(o.flopsPerShard, 'manifest.flopsPerShard', 1, MANIFEST_LIMITS.maxFlopsPerShard);

  if (kind === 'onnx') {
    onlyKeys(o, 'manifest', [...COMMON_KEYS, 'model', 'inputs', 'batchInput', 'shardSize', 'outputs']);
    const model = sha(o.model, 'manifest.model');
    const inputs = tensorMap(o.inputs, 'manifest.inputs');
    const batchInput = str(o.batchInput, 'manifest.batchInput', { max: 256 });
    const batch = inputs[batchInput];
    if (!batch) throw fail('manifest.batchInput', `"${batchInput}" is not one of manifest.inputs.`);
    if (batch.shape.length === 0 || batch.shape[0] === 0) {
      throw fail('manifest.batchInput', `"${batchInput}" needs a non-empty dim 0 to split along.`);
    }
    const shardSize = int(o.shardSize, 'manifest.shardSize', 1, 2 ** 31 - 1);
    if (Math.ceil(batch.shape[0]! / shardSize) > MANIFEST_LIMITS.maxShards) {
      throw fail('manifest.shardSize', `splits into more than ${MANIFEST_LIMITS.maxShards} shards.`);
    }
    const outputs =
      o.outputs === undefined
        ? undefined
        : arr(o.outputs, 'manifest.outputs', SHARD_LIMITS.maxTensors).map((x, i) =>
            str(x, `manifest.outputs[${i}]`, { max: 256 }),
          );
    const honeypots = hp?.map((h, i): OnnxHoneypot => {
      const p = `manifest.honeypots[${i}]`;
      const ho = obj(h, p);
      onlyKeys(ho, p, ['inputs', 'expected']);
      const hin = tensorMap(ho.inputs, `${p}.inputs`);
      for (const n of Object.keys(inputs)) {
        if (!hin[n]) throw fail(`${p}.inputs`, `missing input "${n}" that the job declares.`);
      }
      return { inputs: hin, expected: expected(ho.expected, `${p}.expected`) };
    });
    return {
      ...base,
      kind,
      model,
      inputs,
      batchInput,
      shardSize,
      ...(outputs ? { outputs } : {}),
      ...(honeypots ? { honeypots } : {}),
      ...(declaredFlops !== undefined ? { flopsPerShard: declaredFlops } : {}),
    };
  }

  onlyKeys(o, 'manifest', [...COMMON_KEYS, 'source', 'entryPoint', 'shards']);
  const source = str(o.source, 'manifest.source', { max: SHARD_LIMITS.maxSourceChars });
  const entryPoint =
    o.entryPoint === undefined
      ? undefined
      : str(o.entryPoint, 'manifest.entryPoint', { max: 128, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/ });
  const list = arr(o.shards, 'manifest.shards', MANIFEST_LIMITS.maxShards);
  if (list.length === 0) throw fail('manifest.shards', 'a WGSL job needs at least one shard.');
  const shards = list.map((s, i) => wgslShard(s, `manifest.shards[${i}]`));
  const honeypots = hp?.map((h, i): WgslHoneypot => {
    const p = `manifest.honeypots[${i}]`;
    const spec = wgslShard(h, p, ['expected']);
    return { ...spec, expected: expected(obj(h, p).expected, `${p}.expected`) };
  });
  return {
    ...base,
    kind,
    source,
    ...(entryPoint ? { entryPoint } : {}),
    shards,
    ...(honeypots ? { honeypots } : {}),
    flopsPerShard: declaredFlops!,
  };
}
