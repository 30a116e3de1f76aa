// The ONNX cases inside a dedicated module worker, where Hearth's compute worker runs them:
// onnxruntime-web's browser build with the WebGPU EP (SwiftShader here) and the wasm EP. The
// page asks for one thing at a time and gets a plain reply (errors as name, code and message).
import type { InferenceSession } from 'onnxruntime-web';
import { isHearthError } from '../../src/core/errors.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { webgpuAvailable } from '../../src/onnx/backend.ts';
import { loadOrt } from '../../src/onnx/ort.ts';
import { runOnnx } from '../../src/onnx/run.ts';
import { getSession } from '../../src/onnx/session.ts';
import type { OnnxBackend } from '../../src/protocol/shard.ts';
import { type BackendChoice, cases, expectHearthError, host, shardFor } from './cases.ts';
import * as models from './models.ts';
import { uniform } from './reference.ts';

export type WorkerRequest =
  | { id: number; case: string; backend: BackendChoice }
  | { id: number; info: true }
  | { id: number; webgpuProof: true }
  | { id: number; budget: OnnxBackend };

export interface WorkerInfo {
  dedicatedWorker: boolean;
  webgpu: boolean;
  adapter: string;
  crossOriginIsolated: boolean;
}

export type WorkerReply =
  | {
      id: number;
      ok: true;
      backend?: OnnxBackend;
      worst?: number;
      fellBack?: string;
      info?: WorkerInfo;
      proof?: { device: boolean; outputLocation: string };
      budget?: { warmMs: number; rejectedMs: number };
    }
  | { id: number; ok: false; error: string };

async function info(): Promise<WorkerInfo> {
  const scope = globalThis as unknown as { DedicatedWorkerGlobalScope?: new () => unknown };
  const dedicated =
    scope.DedicatedWorkerGlobalScope !== undefined && self instanceof scope.DedicatedWorkerGlobalScope;
  const adapter = await navigator.gpu?.requestAdapter();
  const i = adapter?.info;
  return {
    dedicatedWorker: dedicated,
    webgpu: await webgpuAvailable(),
    adapter: i ? `${i.vendor} ${i.architecture} ${i.description}`.trim() : 'none',
    crossOriginIsolated: self.crossOriginIsolated,
  };
}

/**
 * Evidence, independent of Hearth's own report, that the WebGPU EP really computed: ORT set
 * its device, and a session asked to leave its output on the GPU hands back a GPU buffer
 * (which only happens when the last node, Softmax, ran on WebGPU).
 */
async function webgpuProof(): Promise<{ device: boolean; outputLocation: string }> {
  const ort = await loadOrt();
  const m = models.mlp();
  await getSession(await sha256Hex(m.bytes), m.bytes, 'webgpu');
  // The JSEP build types it as a Promise, the WebGPU-EP build sets the device itself: await both.
  const dev = (await (ort.env.webgpu.device as unknown)) as Partial<GPUDevice> | undefined;
  const device = typeof dev?.createBuffer === 'function';
  let s: InferenceSession | undefined;
  try {
    s = await ort.InferenceSession.create(m.bytes, {
      executionProviders: ['webgpu'],
      preferredOutputLocation: { probs: 'gpu-buffer' },
    });
    const r = await s.run({ x: new ort.Tensor('float32', uniform(1, 32), [2, 16]) });
    const loc = r.probs!.location;
    for (const t of Object.values(r)) t.dispose();
    return { device, outputLocation: loc };
  } finally {
    await s?.release();
  }
}

/**
 * A budget smaller than one run rejects with shard/timeout. The budget is 1 ms against a run of
 * ~270 MFLOP (8 MatMuls of 256³), which no CPU or GPU here finishes in 1 ms, so the outcome does
 * not depend on how busy the machine is.
 */
async function budget(backend: OnnxBackend): Promise<{ warmMs: number; rejectedMs: number }> {
  const m = models.heavy(8);
  const x = host('f32', [256, 256], uniform(4, 256 * 256));
  const warm = await shardFor(m.bytes, { x }, { backend });
  await runOnnx(warm, m.bytes);
  let t0 = performance.now();
  await runOnnx(warm, m.bytes);
  const warmMs = performance.now() - t0;
  const budgetMs = 1;
  t0 = performance.now();
  await expectHearthError(runOnnx(warm, m.bytes, { budgetMs }), 'shard/timeout', [`${budgetMs} ms`]);
  const rejectedMs = performance.now() - t0;
  // The session is still good for the next shard.
  await runOnnx(warm, m.bytes);
  return { warmMs, rejectedMs };
}

self.onmessage = async (ev: MessageEvent<WorkerRequest>) => {
  const req = ev.data;
  const reply = (r: WorkerReply) => self.postMessage(r);
  try {
    if ('info' in req) return reply({ id: req.id, ok: true, info: await info() });
    if ('webgpuProof' in req) return reply({ id: req.id, ok: true, proof: await webgpuProof() });
    if ('budget' in req) return reply({ id: req.id, ok: true, budget: await budget(req.budget) });
    const c = cases.find((k) => k.name === req.case);
    if (!c) throw new Error(`no case named "${req.case}"`);
    const r = await c.run(req.backend);
    reply({ id: req.id, ok: true, ...r });
  } catch (e) {
    const err = e as Error;
    const code = isHearthError(e) ? ` [${e.code}]` : '';
    reply({ id: req.id, ok: false, error: `${err.name}${code}: ${err.message}` });
  }
};
