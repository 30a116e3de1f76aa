// The `onnx` kind in the worker: the model's bytes from the blob cache (read only when no session
// for it is cached), one batch through onnxruntime-web (the injected OnnxRunner).
import { HearthError } from '../../core/errors.ts';
import type { OnnxShard } from '../../protocol/shard.ts';
import type { KindRunner } from './runner.ts';

export const runOnnxShard: KindRunner<OnnxShard> = async (shard, env) => {
  if (!env.onnx) throw new HearthError('onnx/unsupported', 'This worker was built without ONNX support.');
  const { onProgress } = env;
  const load = async () => {
    onProgress?.({ shard: shard.id, phase: 'load', done: 0, total: 1 });
    const model = await env.blobs.get(shard.model);
    if (!model) {
      throw new HearthError(
        'blob/missing',
        `Shard ${shard.id}: model ${shard.model.slice(0, 12)}… is not in the blob cache.`,
        {
          details: { shard: shard.id, sha256: shard.model },
        },
      );
    }
    onProgress?.({ shard: shard.id, phase: 'load', done: 1, total: 1 });
    return model;
  };
  const r = await env.onnx(shard, load, { signal: env.signal, ...(onProgress ? { onProgress } : {}) });
  const device =
    r.backend === 'webgpu' ? ((await env.runtime.context()).adapter.summary ?? 'webgpu') : 'wasm';
  return { outputs: r.outputs, backend: r.backend, device };
};
