import { afterAll, describe, expect, it } from 'vitest';
import { suite } from '../../src/kernels/selftest/suite.ts';
import type { WorkerReply, WorkerRequest } from './suite.worker.ts';

const worker = new Worker(new URL('./suite.worker.ts', import.meta.url), { type: 'module' });
const waiting = new Map<number, (r: WorkerReply) => void>();
let nextId = 1;
worker.onmessage = (ev: MessageEvent<WorkerReply>) => waiting.get(ev.data.id)?.(ev.data);

function ask(req: Omit<WorkerRequest, 'id'>): Promise<WorkerReply> {
  const id = nextId++;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    worker.postMessage({ ...req, id });
  });
}

afterAll(() => worker.terminate());

describe('kernels in a Chromium dedicated worker', () => {
  it('runs in a dedicated worker with a WebGPU adapter', async () => {
    const r = await ask({ info: true });
    if (!r.ok) throw new Error(r.error);
    expect(r.info?.dedicatedWorker).toBe(true);
    expect(r.info?.adapter).toBeTruthy();
  });

  for (const c of suite) {
    it(c.name, async (t) => {
      const r = await ask({ name: c.name });
      if (!r.ok) throw new Error(r.error);
      if (r.skip) {
        console.log(`skipped "${c.name}": ${r.skip}`);
        t.skip(r.skip);
      }
    });
  }
});
