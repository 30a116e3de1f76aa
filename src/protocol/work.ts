// The work a lease carries: what the hub's planner decided one shard is, with its tensors named by
// SHA-256 (the bytes travel on the data plane). The hub builds it (hub/planner.ts); a volunteer
// parses it before fetching anything, since a lease is bytes from the network like any other.
import { HearthError } from '../core/errors.ts';
import { isSha256Hex } from '../core/hash.ts';
import { type TensorBlob, tensorMap, type WgslShardSpec, wgslShard } from './manifest.ts';
import { type HostTensor, type Shard, tensorBytes, type WgslBinding } from './shard.ts';
import { int, obj, oneOf, onlyKeys, str } from './validate.ts';

/** An ONNX shard: rows [start, end) of the batch input, every other input whole. */
export interface OnnxWork {
  readonly kind: 'onnx';
  readonly model: string;
  readonly inputs: Readonly<Record<string, TensorBlob>>;
  readonly batchInput: string;
  /** Absent for honeypots, whose inputs are already one batch. */
  readonly rows?: readonly [number, number];
}

/** A WGSL shard: one dispatch of the job's kernel (the lease carries the kernel beside it). */
export interface WgslWork {
  readonly kind: 'wgsl';
  readonly spec: WgslShardSpec;
}

export type ShardWork = OnnxWork | WgslWork;

const bad = (path: string, message: string) =>
  new HearthError('input/invalid', `${path}: ${message}`, { details: { path } });

/**
 * Checks a lease's work. Throws a HearthError ('input/invalid') naming the bad field.
 *
 * @example
 * const work = parseShardWork(lease.work, 'lease.work');
 * if (work.kind === 'onnx') work.rows; // [start, end) of the batch input, or undefined
 */
export function parseShardWork(v: unknown, path = 'work'): ShardWork {
  const o = obj(v, path);
  const kind = oneOf(o.kind, `${path}.kind`, ['onnx', 'wgsl'] as const);
  if (kind === 'wgsl') {
    onlyKeys(o, path, ['kind', 'spec']);
    return { kind, spec: wgslShard(o.spec, `${path}.spec`) };
  }
  onlyKeys(o, path, ['kind', 'model', 'inputs', 'batchInput', 'rows']);
  if (!isSha256Hex(o.model)) throw bad(`${path}.model`, 'expected a SHA-256 as 64 lowercase hex digits.');
  const inputs = tensorMap(o.inputs, `${path}.inputs`);
  const batchInput = str(o.batchInput, `${path}.batchInput`, { max: 128 });
  const batch = inputs[batchInput];
  if (!batch) throw bad(`${path}.batchInput`, `"${batchInput}" is not one of the inputs.`);
  if (o.rows === undefined) return { kind, model: o.model, inputs, batchInput };
  if (!Array.isArray(o.rows) || o.rows.length !== 2) {
    throw bad(`${path}.rows`, 'expected [start, end).');
  }
  const total = batch.shape[0] ?? 0;
  const start = int(o.rows[0], `${path}.rows[0]`, 0, total);
  const end = int(o.rows[1], `${path}.rows[1]`, start + 1, total);
  return { kind, model: o.model, inputs, batchInput, rows: [start, end] };
}

/** Verified bytes by SHA-256 (a BlobFetcher in a tab, the blob folder on the hub). */
export interface BlobGetter {
  get(sha256: string): Promise<Uint8Array>;
}

/** What a shard needs besides its work: ids, the WGSL job's kernel, the ONNX job's outputs. */
export interface ShardContext {
  readonly shard: string;
  readonly job: string;
  readonly kernel?: { readonly source: string; readonly entryPoint?: string };
  readonly outputs?: readonly string[];
  readonly budgetMs?: number;
}

/**
 * The protocol Shard (with bytes) that a piece of work describes (by hashes): blobs fetched
 * through `blobs`, checked for size, the batch input cut to the work's rows. For ONNX work the
 * model's bytes are not loaded: the worker reads them from its blob cache.
 *
 * @example
 * const shard = await shardFromWork(parseShardWork(lease.work), { shard: lease.shard, job: lease.job }, blobs);
 */
export async function shardFromWork(work: ShardWork, ctx: ShardContext, blobs: BlobGetter): Promise<Shard> {
  const budget = ctx.budgetMs === undefined ? {} : { budgetMs: Math.max(1, Math.floor(ctx.budgetMs)) };
  if (work.kind === 'onnx') {
    const inputs: Record<string, HostTensor> = {};
    for (const [name, blob] of Object.entries(work.inputs)) {
      const t = await tensorOf(blob, blobs, `work.inputs.${name}`);
      if (name === work.batchInput && work.rows) {
        const [start, end] = work.rows;
        const rowBytes = t.data.byteLength / (blob.shape[0] ?? 1);
        inputs[name] = {
          dtype: t.dtype,
          shape: [end - start, ...blob.shape.slice(1)],
          data: t.data.slice(start * rowBytes, end * rowBytes),
        };
      } else inputs[name] = t;
    }
    return {
      v: 1,
      kind: 'onnx',
      id: ctx.shard,
      job: ctx.job,
      model: work.model,
      inputs,
      ...(ctx.outputs ? { outputs: [...ctx.outputs] } : {}),
      ...budget,
    };
  }
  if (!ctx.kernel) {
    throw new HearthError('input/invalid', 'kernel: WGSL work needs its kernel source.', {
      details: { path: 'kernel' },
    });
  }
  const bindings: WgslBinding[] = [];
  for (const b of work.spec.bindings) {
    const path = `work.spec.bindings[${b.binding}]`;
    if (b.role === 'input') {
      bindings.push({
        binding: b.binding,
        role: 'input',
        name: b.name,
        tensor: await tensorOf(b.tensor, blobs, path),
      });
    } else if (b.role === 'uniform') {
      bindings.push({
        binding: b.binding,
        role: 'uniform',
        name: b.name,
        data: ownBuffer(await blobs.get(b.sha256)),
      });
    } else {
      bindings.push({
        binding: b.binding,
        role: 'output',
        name: b.name,
        dtype: b.dtype,
        shape: [...b.shape],
      });
    }
  }
  return {
    v: 1,
    kind: 'wgsl',
    id: ctx.shard,
    job: ctx.job,
    source: ctx.kernel.source,
    ...(ctx.kernel.entryPoint ? { entryPoint: ctx.kernel.entryPoint } : {}),
    bindings,
    dispatch: [...work.spec.dispatch] as [number, number, number],
    ...budget,
  };
}

async function tensorOf(blob: TensorBlob, blobs: BlobGetter, path: string): Promise<HostTensor> {
  const bytes = await blobs.get(blob.sha256);
  const want = tensorBytes(blob.dtype, blob.shape);
  if (bytes.byteLength !== want) {
    throw new HearthError(
      'input/invalid',
      `${path}: ${blob.dtype}[${blob.shape.join(', ')}] needs ${want} bytes, blob ${blob.sha256} has ${bytes.byteLength}.`,
      { details: { path, expected: want, got: bytes.byteLength } },
    );
  }
  return { dtype: blob.dtype, shape: [...blob.shape], data: ownBuffer(bytes) };
}

/** An ArrayBuffer holding exactly these bytes (the worker takes it by transfer). */
function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer as ArrayBuffer;
}

/** The blobs a piece of work names (to warm a cache, or to announce). */
export function workBlobs(work: ShardWork): string[] {
  if (work.kind === 'onnx') return [work.model, ...Object.values(work.inputs).map((t) => t.sha256)];
  return work.spec.bindings.flatMap((b) =>
    b.role === 'input' ? [b.tensor.sha256] : b.role === 'uniform' ? [b.sha256] : [],
  );
}
