import { HearthError, isHearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import type { GpuRuntime } from '../gpu/context.ts';
import { parseShard } from '../protocol/kinds/index.ts';
import type { OutputTensor, ShardProgress, ShardResult } from '../protocol/shard.ts';
import { type CapabilityReport, noGpuReport, probeDevice } from './probe.ts';
import { runnerOf } from './runners/index.ts';
import type { BlobSource, OnnxRunner, ShardCheckpoints } from './runners/runner.ts';

export type { BlobSource, OnnxRunner, ShardCheckpoints } from './runners/runner.ts';

export interface EngineOptions {
  readonly runtime: GpuRuntime;
  readonly blobs: BlobSource;
  readonly onnx?: OnnxRunner;
  /** Budget for shards that name none, ms. */
  readonly defaultBudgetMs?: number;
  /** Where training shards keep checkpoints (the tab's IndexedDB); none: a reload restarts them. */
  readonly checkpoints?: ShardCheckpoints;
  /** Least time between two checkpoints of a shard, ms (default CHECKPOINT_EVERY_MS). */
  readonly checkpointEveryMs?: number;
}

/**
 * The compute worker's logic, free of comlink so Node tests drive it directly: probe the
 * device (the only way to start GPU work), run shards with cancellation and a time budget,
 * hash every output, recover from a lost device on the next shard.
 */
export class ComputeEngine {
  private readonly opts: EngineOptions;
  private readonly running = new Map<string, AbortController>();
  private probed: CapabilityReport | null = null;

  constructor(opts: EngineOptions) {
    this.opts = opts;
  }

  /**
   * Acquires the device and measures it. Nothing touches the GPU before this call, and the
   * page makes it only after the volunteer said yes.
   */
  async probe(): Promise<CapabilityReport> {
    let ctx: Awaited<ReturnType<GpuRuntime['context']>>;
    try {
      ctx = await this.opts.runtime.context();
    } catch (e) {
      // No WebGPU here: ONNX shards still run (onnxruntime-web's WebAssembly backend); the
      // report's zero buffers tell the hub to lease this device no WGSL shards.
      if (!isHearthError(e, 'gpu/unavailable')) throw e;
      this.probed = noGpuReport(e.message);
      return this.probed;
    }
    this.probed = await probeDevice(ctx);
    return this.probed;
  }

  /** Runs a shard (validated here: it came from the network) and returns its hashed result. */
  async runShard(raw: unknown, onProgress?: (p: ShardProgress) => void): Promise<ShardResult> {
    const shard = parseShard(raw);
    if (!this.probed) {
      throw new HearthError(
        'input/invalid',
        'runShard before probe(): the page must probe the device (after consent) first.',
      );
    }
    if (this.running.has(shard.id)) {
      throw new HearthError('input/invalid', `Shard ${shard.id} is already running in this worker.`, {
        details: { shard: shard.id },
      });
    }
    const ac = new AbortController();
    const budgetMs = shard.budgetMs ?? this.opts.defaultBudgetMs ?? 10 * 60 * 1000;
    const timer = setTimeout(
      () =>
        ac.abort(
          new HearthError(
            'shard/timeout',
            `Shard ${shard.id} ran past its budget of ${budgetMs} ms and was stopped.`,
            {
              details: { shard: shard.id, budgetMs },
            },
          ),
        ),
      budgetMs,
    );
    this.running.set(shard.id, ac);
    const t0 = performance.now();
    try {
      const { outputs, backend, device } = await runnerOf(shard)(shard, {
        runtime: this.opts.runtime,
        blobs: this.opts.blobs,
        ...(this.opts.onnx ? { onnx: this.opts.onnx } : {}),
        signal: ac.signal,
        ...(onProgress ? { onProgress } : {}),
        ...(this.opts.checkpoints ? { checkpoints: this.opts.checkpoints } : {}),
        ...(this.opts.checkpointEveryMs === undefined
          ? {}
          : { checkpointEveryMs: this.opts.checkpointEveryMs }),
      });
      const hashed: OutputTensor[] = [];
      for (const [i, o] of outputs.entries()) {
        onProgress?.({ shard: shard.id, phase: 'hash', done: i, total: outputs.length });
        hashed.push({
          name: o.name,
          dtype: o.tensor.dtype,
          shape: o.tensor.shape,
          data: o.tensor.data,
          sha256: await sha256Hex(o.tensor.data),
        });
      }
      if (ac.signal.aborted) throw ac.signal.reason;
      return {
        v: 1,
        shard: shard.id,
        job: shard.job,
        kind: shard.kind,
        outputs: hashed,
        backend,
        device,
        ms: Math.round(performance.now() - t0),
      };
    } finally {
      clearTimeout(timer);
      this.running.delete(shard.id);
    }
  }

  /** Stops a running shard at its next step; it rejects with 'shard/cancelled'. False when not running. */
  cancel(shardId: string): boolean {
    const ac = this.running.get(shardId);
    if (!ac) return false;
    ac.abort(
      new HearthError('shard/cancelled', `Shard ${shardId} was cancelled.`, { details: { shard: shardId } }),
    );
    return true;
  }

  async dispose(): Promise<void> {
    for (const id of [...this.running.keys()]) this.cancel(id);
    await this.opts.runtime.dispose();
    this.probed = null;
  }
}
