// Lease messages: how work moves. lease-request → lease | no-work; heartbeat → extended; result →
// ack; shard-failed → failure-noted; and the hub's push `work-available` when a volunteer it told
// "no work" could now get some.
//
// Batches, for shards so small that a message per shard is most of their cost: lease-batch { max }
// → leases (1 to max) | no-work, and results { results } → acks (one per result, in order, each an
// outcome or that result's own refusal). They are an addition to version 2, not a new version:
// the hub sends `leases` and `acks` only in answer to them, so an older volunteer never sees one,
// and a hub that predates them answers `error` input/invalid at `message.type`, after which a
// volunteer goes on one message per shard.
//
// Result tensors travel inside the `result` message as base64url strings. One self-contained
// text frame per message keeps the protocol stateless between frames (no "binary frame follows"
// pairing to get wrong under loss or interleaving); the cost is a third more bytes, which the
// hub's message-size limit bounds. Larger outputs belong on the data plane (by hash).
import type { HearthErrorCode } from '../../core/errors.ts';
import { type JobKind, oneKind } from '../kinds/index.ts';
import {
  array,
  exactly,
  fail,
  type Infer,
  integer,
  literal,
  nonNegative,
  object,
  record,
  refine,
  type Schema,
  sha256,
  string,
  unchecked,
} from '../schema.ts';
import {
  DTYPES,
  type OutputTensor,
  parseShape,
  SHARD_LIMITS,
  type ShardResult,
  tensorBytes,
} from '../shard.ts';
import { obj } from '../validate.ts';
import { CONTROL_LIMITS, fromBase64Url, id, time, toBase64Url } from './wire.ts';

/** An output tensor as it travels: bytes as base64url. */
export interface WireOutput {
  readonly name: string;
  readonly dtype: OutputTensor['dtype'];
  readonly shape: readonly number[];
  readonly sha256: string;
  readonly data: string;
}

const output: Schema<OutputTensor> = (v, path) => {
  const o = object({
    name: string({ max: 128 }),
    dtype: literal(DTYPES),
    shape: parseShape,
    sha256,
    data: unchecked,
  })(v, path);
  const want = tensorBytes(o.dtype, o.shape);
  const limit = Math.min(SHARD_LIMITS.maxTensorBytes, CONTROL_LIMITS.maxMessageChars);
  if (want > limit) throw fail(path, `${want} bytes is over the ${limit}-byte limit.`, { bytes: want });
  const data = fromBase64Url(o.data, `${path}.data`, limit);
  if (data.byteLength !== want) {
    throw fail(
      `${path}.data`,
      `${o.dtype}[${o.shape.join(', ')}] needs ${want} bytes, got ${data.byteLength}.`,
      {
        expected: want,
        got: data.byteLength,
      },
    );
  }
  return { name: o.name, dtype: o.dtype, shape: o.shape, sha256: o.sha256, data };
};

const result: Schema<ShardResult> = object({
  v: exactly(1),
  shard: id,
  job: id,
  kind: oneKind,
  outputs: array(output, SHARD_LIMITS.maxTensors, { min: 1 }),
  backend: literal(['webgpu', 'wasm']),
  device: string({ max: 256 }),
  ms: nonNegative,
});
const distinctOutputs: Schema<ShardResult> = refine(result, (r, path) => {
  if (new Set(r.outputs.map((o) => o.name)).size !== r.outputs.length) {
    throw fail(`${path}.outputs`, 'output names must be distinct.');
  }
});

/** The shape of a lease's work that this layer knows: its kind. */
export interface LeaseWork {
  readonly kind: JobKind;
}
/**
 * What to compute, with blobs by SHA-256 (fetched over the data plane): the hub's planned work
 * (protocol/kinds/ ShardWork) as JSON. Only its kind is checked here; the worker's parseShard
 * checks the shard it becomes.
 */
const leaseWork: Schema<LeaseWork> = (v, path) => {
  const o = obj(v, path);
  oneKind(o.kind, `${path}.kind`);
  return o as unknown as LeaseWork;
};

/** A WGSL job's kernel, which its shards' work does not repeat. */
const kernel = object(
  { source: string({ max: SHARD_LIMITS.maxSourceChars }) },
  { entryPoint: string({ max: 128, pattern: /^[A-Za-z_][A-Za-z0-9_]*$/ }) },
);
export type LeaseKernel = Infer<typeof kernel>;

export type AckOutcome = 'pending' | 'valid' | 'invalid' | 'inconclusive';
export const ACK_OUTCOMES: readonly AckOutcome[] = ['pending', 'valid', 'invalid', 'inconclusive'];

/**
 * The hub's refusals that no later try can change (the shard is gone, judged or cancelled; the
 * result is malformed or a duplicate): a volunteer drops such a result from its outbox instead of
 * resending it forever.
 */
export const FINAL_REFUSALS: ReadonlySet<string> = new Set([
  'input/invalid',
  'shard/unknown',
  'lease/unknown',
  'job/unknown',
  'job/closed',
  'result/duplicate',
] satisfies HearthErrorCode[]);

/** Results of one `results` message: each shard at most once (one volunteer, one answer). */
const resultBatch = refine(array(distinctOutputs, CONTROL_LIMITS.maxBatch, { min: 1 }), (rs, path) => {
  if (new Set(rs.map((r) => r.shard)).size !== rs.length) throw fail(path, 'each shard at most once.');
});

/** Requests a client sends in this concern, by type. */
export const LEASE_REQUESTS = {
  'lease-request': object({}),
  /** Up to `max` leases at once (the hub may give fewer: what it has for this volunteer). */
  'lease-batch': object({ max: integer(1, CONTROL_LIMITS.maxBatch) }),
  /** Several results at once; each is taken, judged and acknowledged as a `result` would be. */
  results: object({ results: resultBatch }),
  /** `lease`: the lease id from the `lease` message. */
  heartbeat: object({ lease: id }),
  result: object({ result: distinctOutputs }),
  /**
   * "I could not run this shard": the error the runner gave. The hub records deterministic errors
   * (a kernel that does not compile) like results and fails the shard once enough distinct
   * volunteers report the same one; any other error only hands the shard to someone else.
   * `code` is the HearthError code (`wgsl/compile`, `gpu/device-lost`, …).
   */
  'shard-failed': object({
    shard: id,
    code: string({ max: 64, pattern: /^[a-z0-9-]+\/[a-z0-9-]+$/ }),
    message: string({ max: CONTROL_LIMITS.maxErrorChars }),
  }),
};

/**
 * `kernel`: for WGSL work, the job's kernel (the hub includes it when it can look the job up).
 * `outputs`: for ONNX work, the outputs the job wants (all of the model's when absent).
 * `deadline`: ms since the epoch; heartbeat before it or the shard goes to someone else.
 */
const lease = object(
  { lease: id, shard: id, job: id, work: leaseWork, deadline: time },
  {
    kernel,
    outputs: array(string({ max: 128 }), SHARD_LIMITS.maxTensors),
    /** What this shard earns once validated, in base units (the job's rate × its FLOPs): shown before it runs. */
    credit: string({ max: 20, pattern: /^(0|[1-9][0-9]{0,18})$/ }),
  },
);

/** One result's answer in `acks`: its outcome, or the hub's refusal of that result alone. */
const batchAck = refine(
  object(
    { shard: id },
    {
      outcome: literal(ACK_OUTCOMES),
      error: object(
        {
          code: string({ max: 64, pattern: /^[a-z0-9-]+\/[a-z0-9-]+$/ }),
          message: string({ max: CONTROL_LIMITS.maxErrorChars }),
        },
        { details: record },
      ),
    },
  ),
  (a, path) => {
    if ((a.outcome === undefined) === (a.error === undefined))
      throw fail(path, 'expected an outcome or an error, not both or neither.');
  },
);
export type BatchAck = Infer<typeof batchAck>;

/** What the hub sends in this concern, by type. */
export const LEASE_HUB = {
  lease,
  /** The answer to `lease-batch`: each lease as a `lease` message would carry it. */
  leases: object({ leases: array(lease, CONTROL_LIMITS.maxBatch, { min: 1 }) }),
  /** `pending`: this volunteer's results still waiting for their shards to be judged. */
  'no-work': object({}, { pending: integer(0, Number.MAX_SAFE_INTEGER) }),
  extended: object({ lease: id, deadline: time }),
  ack: object({ shard: id, outcome: literal(ACK_OUTCOMES) }),
  /** The answer to `results`: one per result, in the order they came. */
  acks: object({ acks: array(batchAck, CONTROL_LIMITS.maxBatch, { min: 1 }) }),
  /** What the hub did with a `shard-failed` report (hub/scheduler.ts FailureOutcome). */
  'failure-noted': object({ shard: id, outcome: literal(['released', 'recorded', 'failed']) }),
  /**
   * A push (no `re`): work arrived (a job was submitted, leases went back) after this
   * connection was told `no-work`. Ask again now rather than after the idle back-off.
   */
  'work-available': object({}),
};

/** Which hub messages answer each request. */
export const LEASE_REPLIES = {
  'lease-request': ['lease', 'no-work'],
  'lease-batch': ['leases', 'no-work'],
  heartbeat: ['extended'],
  result: ['ack'],
  results: ['acks'],
  'shard-failed': ['failure-noted'],
} as const;

/** A ShardResult as it travels in a `result` message: output bytes as base64url. */
export type WireResult = Omit<ShardResult, 'outputs'> & { readonly outputs: readonly WireOutput[] };

/** A result as it travels: output bytes as base64url. */
export function encodeResult(r: ShardResult): WireResult {
  return {
    ...r,
    outputs: r.outputs.map((o) => ({
      name: o.name,
      dtype: o.dtype,
      shape: o.shape,
      sha256: o.sha256,
      data: toBase64Url(o.data),
    })),
  };
}
