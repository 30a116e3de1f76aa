// The kernel suite inside a dedicated module worker: Chromium's WebGPU (SwiftShader here), the
// same cases as the Node run. The page asks for one case at a time by name.
import { acquireGpu, type GpuContext } from '../../src/gpu/context.ts';
import { suite } from '../../src/kernels/selftest/suite.ts';

export type WorkerRequest = { id: number; name: string } | { id: number; info: true };
export type WorkerReply =
  | { id: number; ok: true; skip?: string; info?: { dedicatedWorker: boolean; adapter: string } }
  | { id: number; ok: false; error: string };

const uncaptured: string[] = [];
let ctx: Promise<GpuContext> | null = null;
function context(): Promise<GpuContext> {
  ctx ??= acquireGpu({ onUncapturedError: (e) => uncaptured.push(e.message) }).then((c) => {
    c.pool.poison = true;
    return c;
  });
  return ctx;
}

self.onmessage = async (ev: MessageEvent<WorkerRequest>) => {
  const req = ev.data;
  const reply = (r: WorkerReply) => self.postMessage(r);
  try {
    const c = await context();
    if ('info' in req) {
      const scope = globalThis as unknown as { DedicatedWorkerGlobalScope?: new () => unknown };
      const dedicated =
        scope.DedicatedWorkerGlobalScope !== undefined && self instanceof scope.DedicatedWorkerGlobalScope;
      reply({ id: req.id, ok: true, info: { dedicatedWorker: dedicated, adapter: c.adapter.summary } });
      return;
    }
    const kc = suite.find((k) => k.name === req.name);
    if (!kc) throw new Error(`no case named "${req.name}"`);
    const r = await kc.run(c);
    if (uncaptured.length) throw new Error(`uncaptured GPU errors: ${uncaptured.splice(0).join('; ')}`);
    reply(r && 'skip' in r ? { id: req.id, ok: true, skip: r.skip } : { id: req.id, ok: true });
  } catch (e) {
    const err = e as Error;
    reply({ id: req.id, ok: false, error: `${err.name}: ${err.message}` });
  }
};
