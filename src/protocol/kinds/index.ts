// The job kinds, registered once. `JobKind` is the one definition of which kinds exist; each
// function here dispatches to the kind's module (./onnx.ts, ./wgsl.ts), so a new kind is a new
// module and one line in PROTOCOL_KINDS — never an edit at every `kind === …`. The hub's and the
// worker's layers keep their own registries (hub/kinds/, worker/runners/), keyed by this type.
import { HearthError } from '../../core/errors.ts';
import { creditUnits } from '../credit.ts';
import { COMMON_KEYS, parseManifestBase } from '../manifest.ts';
import { SHARD_LIMITS, SHARD_PROTOCOL_VERSION } from '../shard.ts';
import { describe, int, obj, oneOf, onlyKeys, str } from '../validate.ts';
import type { BlobGetter, ShardContext } from '../work.ts';
import type { NamedTensor, ProtocolKind, ShardHead } from './kind.ts';
import { type OnnxManifest, type OnnxShard, type OnnxWork, onnxKind } from './onnx.ts';
import { type TrainManifest, type TrainShard, type TrainWork, trainKind } from './train.ts';
import { type WgslManifest, type WgslShard, type WgslWork, wgslKind } from './wgsl.ts';

export const PROTOCOL_KINDS = { onnx: onnxKind, wgsl: wgslKind, train: trainKind } as const;

/** The job kinds this build knows. */
export type JobKind = keyof typeof PROTOCOL_KINDS;
export const JOB_KINDS = Object.keys(PROTOCOL_KINDS) as JobKind[];

/** A job manifest of any kind. */
export type Manifest = OnnxManifest | WgslManifest | TrainManifest;
/** What a lease carries for one shard (blobs by SHA-256), of any kind. */
export type ShardWork = OnnxWork | WgslWork | TrainWork;
/** A shard with bytes, as the worker runs it, of any kind. */
export type Shard = OnnxShard | WgslShard | TrainShard;

/** The manifest, work and shard types of one kind. */
export type KindTypes = {
  onnx: { manifest: OnnxManifest; work: OnnxWork; shard: OnnxShard };
  wgsl: { manifest: WgslManifest; work: WgslWork; shard: WgslShard };
  train: { manifest: TrainManifest; work: TrainWork; shard: TrainShard };
};

// One cast, here: a kind's module takes its own kind's values; the callers below pass a value
// whose `kind` picked that module, which TypeScript cannot correlate across the union.
type AnyKind = ProtocolKind<Manifest, ShardWork, Shard>;
const kindOf = (kind: JobKind): AnyKind => PROTOCOL_KINDS[kind] as unknown as AnyKind;

const ID = /^[A-Za-z0-9._:/-]{1,128}$/;

/**
 * Checks an untrusted value and returns it as a Manifest, or throws a HearthError
 * ('input/invalid') whose message starts with the path of the bad field.
 *
 * @example
 * const m = parseManifest(JSON.parse(text));
 * // { v: 1, kind: 'onnx', model: 'e3b0…', inputs: { x: { sha256, dtype: 'f32', shape: [1000, 16] } },
 * //   batchInput: 'x', shardSize: 100, replication: 2, maxReplicas: 5, tolerance: { rtol: 1e-4, atol: 1e-5 },
 * //   deadlineMs: 60000, creditRate: 1e-9 }
 */
export function parseManifest(v: unknown): Manifest {
  const o = obj(v, 'manifest');
  const { kind, base, honeypots, declaredFlops } = parseManifestBase(
    o,
    JOB_KINDS,
    (k) => PROTOCOL_KINDS[k as JobKind].flopsRequired,
  );
  const k = kindOf(kind as JobKind);
  onlyKeys(o, 'manifest', [...COMMON_KEYS, ...k.manifestKeys]);
  return k.parseManifest(o, base, honeypots, declaredFlops);
}

/**
 * Checks a lease's work. Throws a HearthError ('input/invalid') naming the bad field.
 *
 * @example
 * const work = parseShardWork(lease.work, 'lease.work');
 * if (work.kind === 'onnx') work.rows; // [start, end) of the batch input, or undefined
 */
export function parseShardWork(v: unknown, path = 'work'): ShardWork {
  const o = obj(v, path);
  const kind = oneKind(o.kind, `${path}.kind`);
  return kindOf(kind).parseWork(o, path);
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
  const kind = oneKind(o.kind, 'shard.kind');
  const head: ShardHead = {
    v: 1,
    id: str(o.id, 'shard.id', { pattern: ID }),
    job: str(o.job, 'shard.job', { pattern: ID }),
    ...(o.budgetMs === undefined
      ? {}
      : { budgetMs: int(o.budgetMs, 'shard.budgetMs', 1, SHARD_LIMITS.maxBudgetMs) }),
  };
  return kindOf(kind).parseShard(o, head);
}

/** `v` as a JobKind, or an 'input/invalid' error listing the kinds there are. */
export function oneKind(v: unknown, path: string): JobKind {
  return oneOf(v, path, JOB_KINDS);
}

/**
 * The protocol Shard (with bytes) that a piece of work describes (by hashes): blobs fetched
 * through `blobs`, checked for size. For ONNX work the model's bytes are not loaded: the worker
 * reads them from its blob cache.
 *
 * @example
 * const shard = await shardFromWork(parseShardWork(lease.work), { shard: lease.shard, job: lease.job }, blobs);
 */
export function shardFromWork(work: ShardWork, ctx: ShardContext, blobs: BlobGetter): Promise<Shard> {
  const budget = ctx.budgetMs === undefined ? {} : { budgetMs: Math.max(1, Math.floor(ctx.budgetMs)) };
  return kindOf(work.kind).shardFromWork(work, { ...ctx, ...budget }, blobs);
}

/** The blobs a piece of work names (to warm a cache, or to announce). */
export function workBlobs(work: ShardWork): string[] {
  return kindOf(work.kind).workBlobs(work);
}

/** Every blob a manifest's shards and honeypots name (what volunteers fetch). */
export function manifestBlobs(m: Manifest): string[] {
  return [...new Set(kindOf(m.kind).manifestBlobs(m))];
}

/**
 * Every blob the hub must hold before it takes the manifest: what volunteers fetch, and the
 * honeypots' answers of a tolerance job (compared as bytes; exact jobs compare hashes). The
 * `hearth submit` command and the researcher console upload these.
 */
export function submitBlobs(m: Manifest): string[] {
  const out = manifestBlobs(m);
  if (m.tolerance !== 'exact')
    for (const h of m.honeypots ?? []) for (const e of h.expected) out.push(e.sha256);
  return [...new Set(out)];
}

/** Every tensor a manifest names, with the path of its field. */
export function manifestTensors(m: Manifest): NamedTensor[] {
  return kindOf(m.kind).manifestTensors(m);
}

/** What a lease of this job carries beside its work (the WGSL kernel, the ONNX outputs). */
export function shardContextOf(m: Manifest): Pick<ShardContext, 'kernel' | 'outputs'> {
  return kindOf(m.kind).shardContext(m);
}

/** The shard's input buffers, to transfer (not copy) to the worker. */
export function shardTransferables(s: Shard): ArrayBuffer[] {
  return kindOf(s.kind).transferables(s);
}

/**
 * FLOPs credited for one validated shard of this job (see flops.ts for how each kind counts
 * them). Without `work`, a full shard.
 */
export function flopsPerShard(m: Manifest, work?: ShardWork): number {
  return kindOf(m.kind).flops(m, work?.kind === m.kind ? work : undefined);
}

/**
 * Credit for one validated shard, in base units (`CREDIT_UNITS` per credit): FLOPs × the job's
 * credit rate, exact and rounded down (`creditUnits`). Throws HearthError('input/invalid') when a
 * shard would earn more than `MAX_SHARD_CREDIT_UNITS`.
 *
 * @example
 * shardCredit({ ...manifest, flopsPerShard: 2e9, creditRate: 1e-9 }); // 2_000_000n: 2 credits
 */
export function shardCredit(m: Manifest, work?: ShardWork): bigint {
  return creditUnits(flopsPerShard(m, work), m.creditRate);
}
