// onnxruntime-web in Node: its Node build, wasm EP, one thread. The shared cases, then what only
// needs one environment: the session cache, serialised runs, cancellation, budgets, limits.
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError, isHearthError } from '../../src/core/errors.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import { webgpuAvailable } from '../../src/onnx/backend.ts';
import { runOnnx } from '../../src/onnx/run.ts';
import { getSession, MAX_CACHED_SESSIONS, MAX_MODEL_BYTES, releaseSessions } from '../../src/onnx/session.ts';
import type { ShardProgress } from '../../src/protocol/shard.ts';
import { cases, expectHearthError, host, shardFor } from './cases.ts';
import * as models from './models.ts';
import { uniform } from './reference.ts';

afterEach(async () => {
  await releaseSessions();
});

describe('ONNX shards in Node (wasm EP)', () => {
  it('has no WebGPU here, so auto means wasm', async () => {
    expect(await webgpuAvailable()).toBe(false);
  });

  for (const c of cases) {
    it(c.name, async () => {
      const r = await c.run(c.on === 'each' ? 'wasm' : 'auto');
      if (r.backend) expect(r.backend).toBe('wasm');
    });
  }

  it("'auto' runs the MLP on wasm and says so", async () => {
    const m = models.mlp();
    const shard = await shardFor(m.bytes, { x: host('f32', [1, 16], uniform(1, 16)) });
    expect((await runOnnx(shard, m.bytes)).backend).toBe('wasm');
  });

  it("'webgpu' without WebGPU: gpu/unavailable", async () => {
    const m = models.mlp();
    const shard = await shardFor(m.bytes, { x: host('f32', [1, 16], uniform(1, 16)) }, { backend: 'webgpu' });
    await expectHearthError(runOnnx(shard, m.bytes), 'gpu/unavailable', [shard.id, 'WebGPU']);
  });
});

describe('session cache', () => {
  it('gives the same session for the same hash and backend, and makes it once', async () => {
    const m = models.mlp();
    const hash = await sha256Hex(m.bytes);
    const [a, b] = await Promise.all([getSession(hash, m.bytes, 'wasm'), getSession(hash, m.bytes, 'wasm')]);
    expect(a).toBe(b);
    // A hit does not read the bytes again.
    expect(await getSession(hash, new Uint8Array(0), 'wasm')).toBe(a);
    expect(a.inputs).toEqual([{ name: 'x', type: 'float32', shape: ['batch', 16] }]);
    expect(a.outputs.map((o) => o.name)).toEqual(['probs', 'logits']);
  });

  it('evicts the least recently used session past its size', async () => {
    const ms = Array.from({ length: MAX_CACHED_SESSIONS + 1 }, (_, i) => models.convNet(100 + i).bytes);
    const hashes = await Promise.all(ms.map((b) => sha256Hex(b)));
    const first = await getSession(hashes[0]!, ms[0]!, 'wasm');
    const second = await getSession(hashes[1]!, ms[1]!, 'wasm');
    for (let i = 2; i < ms.length; i++) await getSession(hashes[i]!, ms[i]!, 'wasm');
    // The second was used least recently once the first was asked for again before the last one.
    expect(await getSession(hashes[0]!, ms[0]!, 'wasm')).not.toBe(first);
    expect(await getSession(hashes[2]!, ms[2]!, 'wasm')).not.toBe(second);
    // An evicted session refuses new work instead of running on freed memory.
    await expectHearthError(
      first.exclusive(async () => 1),
      'onnx/run',
      ['released'],
    );
  });

  it('runs one call into onnxruntime at a time, across sessions, in order', async () => {
    const m = models.mlp();
    const c = models.convNet();
    const s = await getSession(await sha256Hex(m.bytes), m.bytes, 'wasm');
    const t = await getSession(await sha256Hex(c.bytes), c.bytes, 'wasm');
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const one = s.exclusive(async () => {
      log.push('one start');
      await gate;
      log.push('one end');
    });
    const two = t.exclusive(async () => {
      log.push('two (other session)');
      throw new Error('two fails');
    });
    const three = s.exclusive(async () => {
      log.push('three');
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(log).toEqual(['one start']);
    release();
    await one;
    await expect(two).rejects.toThrow('two fails');
    await three;
    expect(log).toEqual(['one start', 'one end', 'two (other session)', 'three']);
  });

  it('refuses a model over the size limit before hashing it', async () => {
    const big = new Uint8Array(MAX_MODEL_BYTES + 1);
    const fake = 'ab'.repeat(32);
    await expectHearthError(getSession(fake, big, 'wasm'), 'onnx/model', [`${MAX_MODEL_BYTES}-byte limit`]);
    await expectHearthError(getSession('not-a-hash', new Uint8Array(4), 'wasm'), 'input/invalid', [
      'SHA-256',
    ]);
  });

  it('a failed creation is not cached: the right bytes work afterwards', async () => {
    const m = models.mlp();
    const hash = await sha256Hex(m.bytes);
    await expectHearthError(getSession(hash, models.mlp(5).bytes, 'wasm'), 'blob/corrupt', [hash]);
    expect((await getSession(hash, m.bytes, 'wasm')).modelHash).toBe(hash);
  });
});

describe('cancellation and budgets', () => {
  it('reports progress in phase order', async () => {
    const m = models.mlp();
    const seen: ShardProgress[] = [];
    const shard = await shardFor(m.bytes, { x: host('f32', [1, 16], uniform(1, 16)) });
    await runOnnx(shard, m.bytes, { onProgress: (p) => seen.push(p) });
    expect(seen.map((p) => `${p.phase} ${p.done}/${p.total}`)).toEqual([
      'compile 0/1',
      'compile 1/1',
      'run 0/1',
      'run 1/1',
      'read 0/2',
      'read 1/2',
      'read 2/2',
    ]);
    expect(seen.every((p) => p.shard === shard.id)).toBe(true);
  });

  it('cancelled while the session is being made: shard/cancelled, before any run', async () => {
    const m = models.heavy(4);
    const shard = await shardFor(m.bytes, { x: host('f32', [4, 256], uniform(2, 1024)) });
    const ac = new AbortController();
    const phases: string[] = [];
    const p = runOnnx(shard, m.bytes, {
      signal: ac.signal,
      onProgress: (pr) => {
        phases.push(pr.phase);
        if (pr.phase === 'compile' && pr.done === 0) queueMicrotask(() => ac.abort());
      },
    });
    await expectHearthError(p, 'shard/cancelled', [shard.id]);
    expect(phases).not.toContain('run');
    // The session made meanwhile stays usable for the next shard.
    expect((await runOnnx(shard, m.bytes)).outputs[0]!.tensor.shape).toEqual([4, 256]);
  });

  it("passes the signal's HearthError reason through (the engine's timeout)", async () => {
    const m = models.mlp();
    const shard = await shardFor(m.bytes, { x: host('f32', [1, 16], uniform(1, 16)) });
    const ac = new AbortController();
    ac.abort(new HearthError('shard/timeout', 'Shard test/1 ran past its budget of 5 ms and was stopped.'));
    await expectHearthError(runOnnx(shard, m.bytes, { signal: ac.signal }), 'shard/timeout', ['5 ms']);
  });

  it('a queued run whose shard was cancelled never starts', async () => {
    const m = models.mlp();
    const hash = await sha256Hex(m.bytes);
    const s = await getSession(hash, m.bytes, 'wasm');
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const blocker = s.exclusive(() => gate);
    const ac = new AbortController();
    const p = runOnnx(await shardFor(m.bytes, { x: host('f32', [1, 16], uniform(1, 16)) }), m.bytes, {
      signal: ac.signal,
    });
    await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    // Rejects at once, while the session is still busy with the blocker.
    await expectHearthError(p, 'shard/cancelled', []);
    let ran = false;
    const probe = s.exclusive(async () => {
      ran = true;
    });
    release();
    await blocker;
    await probe;
    expect(ran).toBe(true);
  });

  it('over budget: shard/timeout, and the session still works afterwards', async () => {
    const m = models.heavy(8);
    const x = host('f32', [256, 256], uniform(3, 256 * 256));
    const warm = await shardFor(m.bytes, { x });
    await runOnnx(warm, m.bytes);
    const t0 = performance.now();
    await runOnnx(warm, m.bytes);
    const runMs = performance.now() - t0;
    // The session is cached now, so the run itself (~268 MFLOP) is what spends the budget.
    const budgetMs = 1;
    expect(runMs).toBeGreaterThan(5 * budgetMs);
    const shard = await shardFor(m.bytes, { x }, { budgetMs });
    await expectHearthError(runOnnx(shard, m.bytes), 'shard/timeout', [shard.id, `${budgetMs} ms`]);
    // The caller's budget counts too; the smaller of the two holds.
    await expectHearthError(runOnnx(warm, m.bytes, { budgetMs }), 'shard/timeout', []);
    const r = await runOnnx(shard, m.bytes, { budgetMs: 60_000 }).catch((e: unknown) => e);
    expect(isHearthError(r, 'shard/timeout')).toBe(true);
    const ok = await runOnnx(warm, m.bytes, { budgetMs: 60_000 });
    expect(ok.outputs[0]!.tensor.shape).toEqual([256, 256]);
  });
});
