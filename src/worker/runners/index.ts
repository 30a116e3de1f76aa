// The worker's job kinds, one runner each, registered once and keyed by JobKind.
import type { JobKind, KindTypes, Shard } from '../../protocol/kinds/index.ts';
import { runOnnxShard } from './onnx.ts';
import type { KindRunner } from './runner.ts';
import { runTrainShard } from './train.ts';
import { runWgslShard } from './wgsl.ts';

export type KindRunners = { readonly [K in JobKind]: KindRunner<KindTypes[K]['shard']> };

export const KIND_RUNNERS: KindRunners = {
  onnx: runOnnxShard,
  train: runTrainShard,
  wgsl: async (shard, env) => {
    const ctx = await env.runtime.context();
    const outputs = await runWgslShard(ctx, shard, {
      signal: env.signal,
      ...(env.onProgress ? { onProgress: env.onProgress } : {}),
    });
    return { outputs, backend: 'webgpu', device: ctx.adapter.summary };
  },
};

/** The runner of a shard's kind (the one cast of the correlated union). */
export const runnerOf = (shard: Shard): KindRunner<Shard> => KIND_RUNNERS[shard.kind] as KindRunner<Shard>;
