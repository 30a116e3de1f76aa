// The job manifest a researcher submits to a hub. It crosses a trust boundary (anyone holding a
// token may send one), so parseManifest checks every field and names the bad one.
//
// Bytes never travel inside a manifest: models, input tensors, uniforms and honeypot answers are
// blobs named by their SHA-256 and uploaded separately, so the control plane stays small.
import { HearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';
import type { DType } from '../core/tensor.ts';
import { parseDType, parseShape, SHARD_LIMITS, tensorBytes } from './shard.ts';
import { arr, describe, int, obj, oneOf, onlyKeys, str } from './validate.ts';

export const MANIFEST_VERSION = 1;

// Each kind's manifest lives with its kind (protocol/kinds/); parseManifest is in kinds/index.ts.
export type { Manifest } from './kinds/index.ts';
export type { OnnxHoneypot, OnnxManifest } from './kinds/onnx.ts';
export type {
  WgslBindingSpec,
  WgslBufferSpec,
  WgslDispatchSpec,
  WgslHoneypot,
  WgslManifest,
  WgslPass,
  WgslProgramSpec,
  WgslShardSpec,
  WgslStep,
} from './kinds/wgsl.ts';

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

/** The fields every job kind shares; each kind module adds its own (protocol/kinds/). */
export interface ManifestBase {
  readonly v: 1;
  readonly name?: string;
  /** Distinct volunteers whose results must agree before a shard is accepted (≥ 1). */
  readonly replication: number;
  /** Most results gathered for one shard before it is declared inconclusive (≥ replication). */
  readonly maxReplicas: number;
  readonly tolerance: Tolerance;
  /** How long a lease lasts without a heartbeat before the shard is reissued. */
  readonly deadlineMs: number;
  /**
   * Credits per FLOP of validated work. Read as the decimal written (`1e-9` is exactly 10⁻⁹); a
   * shard earns ⌊FLOPs × creditRate⌋ in base units (`creditUnits` in credit.ts).
   */
  readonly creditRate: number;
  readonly requirements?: Requirements;
  /**
   * Honeypots the hub makes itself: at submit it runs this many of the job's own shards, chosen
   * at random, on its own device and adds them as honeypots with the answers it got (hub/oracle.ts).
   */
  readonly autoHoneypots?: number;
  /**
   * Opt in to adaptive replication: a volunteer with a long record of validated work, honeypots
   * among it, may be given single-replica shards of this job (spot-checked). Without it every
   * shard gets `replication` agreeing results, no exceptions.
   */
  readonly adaptiveReplication?: boolean;
}

/** An 'input/invalid' error naming the manifest field at `path`. */
export const manifestError = (path: string, message: string): HearthError =>
  new HearthError('input/invalid', `${path}: ${message}`, { details: { path } });
const fail = manifestError;

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

/** A tensor named by SHA-256, with a dtype and a shape that has at least one element. */
export function tensorBlob(v: unknown, path: string): TensorBlob {
  const o = obj(v, path);
  onlyKeys(o, path, ['sha256', 'dtype', 'shape']);
  const sha256 = sha(o.sha256, `${path}.sha256`);
  const dtype = parseDType(o.dtype, `${path}.dtype`);
  const shape = parseShape(o.shape, `${path}.shape`);
  if (shape.some((d) => d === 0)) {
    throw fail(`${path}.shape`, `[${shape.join(', ')}] has no elements; send a tensor with at least one.`);
  }
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

/** A honeypot's expected outputs. */
export function expectedOutputs(v: unknown, path: string): ExpectedOutput[] {
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

/** Manifest fields every kind reads (a kind lists its own in its module). */
export const COMMON_KEYS = [
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
  'adaptiveReplication',
] as const;

/**
 * The fields every kind shares, checked, and the raw parts the kind's own parser takes: the
 * honeypot list and the declared FLOPs (required where the kind says the hub cannot count them).
 */
export function parseManifestBase(
  o: Readonly<Record<string, unknown>>,
  kinds: readonly string[],
  flopsRequired: (kind: string) => boolean,
): { kind: string; base: ManifestBase; honeypots: unknown[] | undefined; declaredFlops: number | undefined } {
  if (o.v !== MANIFEST_VERSION) {
    throw fail('manifest.v', `this hub reads manifest version ${MANIFEST_VERSION}, got ${describe(o.v)}.`);
  }
  const kind = oneOf(o.kind, 'manifest.kind', kinds);
  const name = o.name === undefined ? undefined : str(o.name, 'manifest.name', { max: 256 });
  const replication = int(o.replication, 'manifest.replication', 1, MANIFEST_LIMITS.maxReplication);
  // Default headroom: enough results to outvote one liar per replica.
  const maxReplicas =
    o.maxReplicas === undefined
      ? Math.min(MANIFEST_LIMITS.maxReplication, 2 * replication + 1)
      : int(o.maxReplicas, 'manifest.maxReplicas', replication, MANIFEST_LIMITS.maxReplication);
  const base: ManifestBase = {
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
    ...(o.adaptiveReplication !== undefined
      ? { adaptiveReplication: bool(o.adaptiveReplication, 'manifest.adaptiveReplication') }
      : {}),
  };
  const honeypots =
    o.honeypots === undefined
      ? undefined
      : arr(o.honeypots, 'manifest.honeypots', MANIFEST_LIMITS.maxHoneypots);
  // Required where the hub cannot count a shard's work (WGSL); optional where it can (ONNX). A
  // declared value is still range-checked when present.
  const declaredFlops =
    o.flopsPerShard === undefined && !flopsRequired(kind)
      ? undefined
      : num(o.flopsPerShard, 'manifest.flopsPerShard', 1, MANIFEST_LIMITS.maxFlopsPerShard);
  return { kind, base, honeypots, declaredFlops };
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw fail(path, `expected true or false, got ${describe(v)}.`);
  return v;
}
