// The `onnx` job kind on the protocol layer: one batch of inputs through a model (onnxruntime-web).
// A job names the model and its inputs by SHA-256 and splits one input (the batch) along dim 0
// into shards of `shardSize` rows; every other input goes whole to every shard.
import { HearthError } from '../../core/errors.ts';
import { isSha256Hex } from '../../core/hash.ts';
import type { CountedFlops } from '../flops.ts';
import {
  type ExpectedOutput,
  expectedOutputs,
  MANIFEST_LIMITS,
  type ManifestBase,
  manifestError,
  type TensorBlob,
  tensorMap,
} from '../manifest.ts';
import { type HostTensor, type OnnxBackend, parseHostTensor, SHARD_LIMITS } from '../shard.ts';
import { arr, int, obj, oneOf, onlyKeys, str } from '../validate.ts';
import { tensorOf } from '../work.ts';
import type { NamedTensor, ProtocolKind } from './kind.ts';

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

/** An ONNX shard's work: rows [start, end) of the batch input, every other input whole. */
export interface OnnxWork {
  readonly kind: 'onnx';
  readonly model: string;
  readonly inputs: Readonly<Record<string, TensorBlob>>;
  readonly batchInput: string;
  /** Absent for honeypots, whose inputs are already one batch. */
  readonly rows?: readonly [number, number];
}

/**
 * One batch through an ONNX model, with bytes (what the worker runs). The model is named by the
 * SHA-256 of its bytes; the worker takes them from its blob cache and checks the hash before use.
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

/**
 * The batch input of an ONNX manifest and its rows (dim 0). parseManifest guarantees both; a
 * manifest that lacks them (not one parseManifest passed) fails as a manifest error naming
 * `manifest.batchInput`, not as an `undefined` somewhere later.
 *
 * @example
 * const { rows } = batchOf(m); // 1000 for a batch input of shape [1000, 784]
 */
export function batchOf(m: Pick<OnnxManifest, 'inputs' | 'batchInput'>): {
  tensor: TensorBlob;
  rows: number;
} {
  const tensor = m.inputs[m.batchInput];
  const rows = tensor?.shape[0];
  if (tensor === undefined || rows === undefined) {
    throw manifestError(
      'manifest.batchInput',
      `"${m.batchInput}" is not an input with a dim 0 to split along.`,
    );
  }
  return { tensor, rows };
}

const bad = (path: string, message: string) =>
  new HearthError('input/invalid', `${path}: ${message}`, { details: { path } });

function parseManifest(
  o: Readonly<Record<string, unknown>>,
  base: ManifestBase,
  hp: readonly unknown[] | undefined,
  declaredFlops: number | undefined,
): OnnxManifest {
  if (!isSha256Hex(o.model))
    throw manifestError('manifest.model', 'expected a SHA-256 as 64 lowercase hex digits.');
  const model = o.model;
  const inputs = tensorMap(o.inputs, 'manifest.inputs');
  const batchInput = str(o.batchInput, 'manifest.batchInput', { max: 256 });
  const batch = inputs[batchInput];
  if (!batch) throw manifestError('manifest.batchInput', `"${batchInput}" is not one of manifest.inputs.`);
  const rows = batch.shape[0];
  if (rows === undefined || rows === 0) {
    throw manifestError('manifest.batchInput', `"${batchInput}" needs a non-empty dim 0 to split along.`);
  }
  const shardSize = int(o.shardSize, 'manifest.shardSize', 1, 2 ** 31 - 1);
  if (Math.ceil(rows / shardSize) > MANIFEST_LIMITS.maxShards) {
    throw manifestError('manifest.shardSize', `splits into more than ${MANIFEST_LIMITS.maxShards} shards.`);
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
      if (!hin[n]) throw manifestError(`${p}.inputs`, `missing input "${n}" that the job declares.`);
    }
    return { inputs: hin, expected: expectedOutputs(ho.expected, `${p}.expected`) };
  });
  return {
    ...base,
    kind: 'onnx',
    model,
    inputs,
    batchInput,
    shardSize,
    ...(outputs ? { outputs } : {}),
    ...(honeypots ? { honeypots } : {}),
    ...(declaredFlops !== undefined ? { flopsPerShard: declaredFlops } : {}),
  };
}

function parseWork(o: Readonly<Record<string, unknown>>, path: string): OnnxWork {
  onlyKeys(o, path, ['kind', 'model', 'inputs', 'batchInput', 'rows']);
  if (!isSha256Hex(o.model)) throw bad(`${path}.model`, 'expected a SHA-256 as 64 lowercase hex digits.');
  const inputs = tensorMap(o.inputs, `${path}.inputs`);
  const batchInput = str(o.batchInput, `${path}.batchInput`, { max: 128 });
  const batch = inputs[batchInput];
  if (!batch) throw bad(`${path}.batchInput`, `"${batchInput}" is not one of the inputs.`);
  if (o.rows === undefined) return { kind: 'onnx', model: o.model, inputs, batchInput };
  if (!Array.isArray(o.rows) || o.rows.length !== 2) throw bad(`${path}.rows`, 'expected [start, end).');
  const total = batch.shape[0] ?? 0;
  const start = int(o.rows[0], `${path}.rows[0]`, 0, total);
  const end = int(o.rows[1], `${path}.rows[1]`, start + 1, total);
  return { kind: 'onnx', model: o.model, inputs, batchInput, rows: [start, end] };
}

/** Batch rows of an ONNX shard's work (its row range, or a honeypot's whole batch). */
function rowsOf(m: OnnxManifest, work: OnnxWork | undefined): number {
  if (work) {
    if (work.rows) return work.rows[1] - work.rows[0];
    return work.inputs[work.batchInput]?.shape[0] ?? 0;
  }
  return Math.min(batchOf(m).rows, m.shardSize);
}

function parseShard(
  o: Readonly<Record<string, unknown>>,
  head: { v: 1; id: string; job: string; budgetMs?: number },
): OnnxShard {
  onlyKeys(o, 'shard', ['v', 'kind', 'id', 'job', 'model', 'inputs', 'outputs', 'backend', 'budgetMs']);
  if (!isSha256Hex(o.model)) {
    throw bad('shard.model', 'expected the SHA-256 of the model as 64 lowercase hex digits.');
  }
  const inputsObj = obj(o.inputs, 'shard.inputs');
  const names = Object.keys(inputsObj);
  if (names.length === 0 || names.length > SHARD_LIMITS.maxTensors) {
    throw bad('shard.inputs', `expected 1 to ${SHARD_LIMITS.maxTensors} named tensors, got ${names.length}.`);
  }
  const inputs: Record<string, HostTensor> = {};
  for (const n of names) {
    // As in manifest.ts tensorMap: "__proto__" would set the prototype, not add an input.
    if (n === '__proto__') throw bad('shard.inputs.__proto__', 'this name is not allowed for a tensor.');
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
  return {
    ...head,
    kind: 'onnx',
    model: o.model,
    inputs,
    ...(outputs ? { outputs } : {}),
    ...(backend ? { backend } : {}),
  };
}

const tensorsOf = (path: string, map: Readonly<Record<string, TensorBlob>>): NamedTensor[] =>
  Object.entries(map).map(([name, tensor]) => ({ path: `${path}.${name}`, tensor }));

/** The `onnx` kind (registered in ./index.ts). */
export const onnxKind: ProtocolKind<OnnxManifest, OnnxWork, OnnxShard> = {
  kind: 'onnx',
  manifestKeys: ['model', 'inputs', 'batchInput', 'shardSize', 'outputs'],
  flopsRequired: false,
  parseManifest,
  parseWork,
  workBlobs: (w) => [w.model, ...Object.values(w.inputs).map((t) => t.sha256)],
  manifestBlobs(m) {
    const out = [m.model, ...Object.values(m.inputs).map((t) => t.sha256)];
    for (const h of m.honeypots ?? []) out.push(...Object.values(h.inputs).map((t) => t.sha256));
    return out;
  },
  manifestTensors: (m) => [
    ...tensorsOf('manifest.inputs', m.inputs),
    ...(m.honeypots ?? []).flatMap((h, i) => tensorsOf(`manifest.honeypots[${i}].inputs`, h.inputs)),
  ],
  flops(m, work) {
    const counted = m.flopsByRows?.byRows;
    if (counted) {
      const v = counted[rowsOf(m, work)] ?? counted[rowsOf(m, undefined)];
      if (v !== undefined) return v;
    }
    return m.flopsPerShard ?? 0;
  },
  shardContext: (m) => (m.outputs ? { outputs: m.outputs } : {}),
  async shardFromWork(work, ctx, blobs) {
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
      ...(ctx.budgetMs === undefined ? {} : { budgetMs: ctx.budgetMs }),
    };
  },
  parseShard,
  transferables: (s) => Object.values(s.inputs).map((t) => t.data),
};
