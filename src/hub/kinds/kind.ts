// What one job kind is, on the hub: how a job is planned into shards, what the hub checks at
// submit with its own resources (the uploaded bytes, its device), what a result must look like,
// how the kind's honeypots are made, and how its results are validated. One module per kind in
// this folder, registered in ./index.ts. ARCHITECTURE.md sketches how `train` (rounds, groups,
// an outer step, validation by recomputation) plugs into the same interface.
import type { HearthErrorCode } from '../../core/errors.ts';
import type { WgslPassLayout } from '../../protocol/kinds/wgsl-plan.ts';
import type { ExpectedOutput } from '../../protocol/manifest.ts';
import type { OutputTensor, ShardResult } from '../../protocol/shard.ts';
import type { ShardRecord } from '../store.ts';
import type { Candidate, Decision, ReplicaRule } from '../validation.ts';

/** A shard as the planner makes it: its work, and for a honeypot its known answer. */
export interface PlannedShard<W> {
  readonly work: W;
  readonly expected?: readonly ExpectedOutput[];
}

/** What the hub offers a kind's checks at submit. */
export interface SubmitEnv {
  /** An uploaded blob's verified bytes, or undefined when it is not on the hub. */
  blob(sha256: string): Uint8Array | undefined;
  /**
   * Stores bytes the hub made (a train job's θ₀) and returns their SHA-256. Absent where the hub
   * cannot store blobs.
   */
  readonly write?: (bytes: Uint8Array) => string;
  /**
   * Compiles a WGSL kernel on the hub's own device and builds a pipeline per layout, without
   * running anything; throws 'wgsl/compile' (line and column) or 'wgsl/manifest'. Absent when the
   * hub has no device: the shader's declarations are still checked without one.
   */
  readonly checkWgsl?: (source: string, layouts: readonly WgslPassLayout[]) => Promise<void>;
}

/** Runs a shard on the hub's device (for honeypots the hub computes itself). */
export interface OracleEnv<W> {
  run(work: W, index: number): Promise<ShardResult>;
  /** The expected outputs of a result (stores their bytes as blobs for tolerance jobs). */
  expectedOf(r: ShardResult): Promise<ExpectedOutput[]>;
  blob(sha256: string): Promise<Uint8Array>;
  /** Stores bytes under their SHA-256 and resolves with it. */
  write(bytes: Uint8Array): Promise<string>;
  /** `n` distinct indices in [0, count), at random. */
  pick(count: number, n: number): number[];
}

/**
 * One job kind's hub module. M, W: the kind's manifest and work types (protocol/kinds/).
 *
 * @example
 * export const wgslHub: HubKind<WgslManifest, WgslWork> = { kind: 'wgsl', plan, prepare, … };
 */
export interface HubKind<M, W> {
  readonly kind: string;
  /**
   * Whether its shards need a WebGPU device. A volunteer without one reports
   * `maxBufferBytes: 0` (its browser has no WebGPU): such shards are never leased to it.
   */
  readonly needsGpu: boolean;
  /** The job's shards in order, followed by its honeypots. */
  plan(m: M): PlannedShard<W>[];
  /**
   * Checks at submit that need the hub's resources, so that a job every volunteer would fail is
   * refused with the reason instead of accepted: tensors against their blobs' sizes, dtypes
   * against what the kernel or model declares, a kernel compiled on the hub's device. May return
   * the manifest with fields the hub sets (ONNX: FLOPs counted from the graph). Throws a
   * HearthError naming the field.
   */
  prepare(m: M, env: SubmitEnv): Promise<M>;
  /** Throws 'input/invalid' when a result's outputs are not what the shard's work promises. */
  checkOutputs(work: W, outputs: readonly OutputTensor[]): void;
  /** The manifest with `n` of its own shards computed on the hub's device as honeypots. */
  addHoneypots(m: M, n: number, env: OracleEnv<W>): Promise<M>;
  /**
   * Decides a regular shard from its results (validation.ts decideReplicas for kinds validated
   * by replicas; a kind checked by recomputation decides from the hub's own run instead).
   */
  validate(shard: ShardRecord, results: readonly Candidate[], rule: ReplicaRule): Decision;
  /**
   * Errors that condemn the whole job, not one shard (its kernel or model is broken): once a
   * shard fails with one, the job fails at once and its other shards stop being leased.
   */
  readonly jobWideErrors: ReadonlySet<HearthErrorCode>;
  /**
   * What a judged shard does beyond being stored, in the judging transaction: nothing for kinds
   * whose shards are independent; for a kind with rounds (train), the outer step once a round's
   * shards are all judged, and the next round's shards. A job is done when no shard is open after
   * this returns.
   */
  afterJudged?(m: M, shard: ShardRecord, ops: KindOps<W>): void;
}

/** What `afterJudged` may do to its job (inside the Scheduler's transaction). */
export interface KindOps<W> {
  /** The job's shards so far (honeypots included), by index. */
  shards(): ShardRecord[];
  /** The canonical result of a validated shard. */
  canonical(shard: ShardRecord): readonly OutputTensor[] | undefined;
  /** Adds shards to the job (indices continue after the last). */
  addShards(planned: readonly PlannedShard<W>[]): void;
  /** A blob's bytes on this hub, or undefined when it is absent. */
  blob(sha256: string): Uint8Array | undefined;
  /**
   * Stores bytes (durably, before returning) and returns their SHA-256: a train job's θ and
   * momentum, named by the shards the same transaction adds.
   */
  writeBlob(bytes: Uint8Array): string;
}
