// Credit from counted FLOPs, end to end on a real hub (SQLite file, loopback HTTP): an ONNX job's
// FLOPs are counted from its uploaded model at submit, stored with the job, and each validated
// shard is credited the FLOPs of its own rows; a malformed or uncountable model is refused.
import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { creditUnits } from '../../src/protocol/credit.ts';
import { initializer, onnxModel, value } from '../onnx/model-builder.ts';
import { mlp } from '../onnx/models.ts';
import { sha, type TestHub, testHub, upload } from './hub-helpers.ts';

const open: TestHub[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.dispose();
});

/** A custom-domain op feeding a MatMul, with no declared shape: its FLOPs cannot be counted. */
const blind = onnxModel({
  nodes: [
    { opType: 'Mystery', domain: 'com.example', inputs: ['x'], outputs: ['h'] },
    { opType: 'MatMul', inputs: ['h', 'w'], outputs: ['y'] },
  ],
  inputs: [value('x', 'float', ['n', 16])],
  outputs: [value('y', 'float', ['n', 2])],
  initializers: [initializer('w', 'float', [16, 2], new Float32Array(32))],
  opsets: { '': 17, 'com.example': 1 },
});

describe('credit from the ONNX graph', () => {
  it('counts FLOPs at submit, credits each shard by its rows, refuses bad models', async () => {
    const h = await testHub({ maxBlobBytes: 1 << 20 });
    open.push(h);
    const { token } = createToken(h.hub.store, 'alice');
    const model = mlp().bytes;
    const x = new Uint8Array(10 * 16 * 4);
    const junk = new Uint8Array([0x3a, 0x7f, 1, 2, 3]);
    await upload(h.hub.url, token, [model.slice(), x, junk, blind.slice()]);
    const manifest = (modelSha: string, over: Record<string, unknown> = {}) => ({
      v: 1,
      kind: 'onnx',
      model: modelSha,
      inputs: { x: { sha256: sha(x), dtype: 'f32', shape: [10, 16] } },
      batchInput: 'x',
      shardSize: 4,
      replication: 1,
      tolerance: { rtol: 1e-4, atol: 1e-6 },
      deadlineMs: 60_000,
      creditRate: 0.5,
      ...over,
    });
    const post = (m: unknown) =>
      fetch(`${h.hub.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(m),
      });

    // A malformed model, and an uncountable one without a declared fallback, are refused.
    let r = await post(manifest(sha(junk)));
    expect(r.status).toBe(400);
    let e = ((await r.json()) as { error: { code: string; message: string } }).error;
    expect(e.code).toBe('onnx/model');
    expect(e.message).toMatch(/^manifest\.model: ONNX model: /);
    r = await post(manifest(sha(blind)));
    expect(r.status).toBe(400);
    e = ((await r.json()) as { error: { code: string; message: string } }).error;
    expect(e.code).toBe('onnx/unsupported');
    expect(e.message).toMatch(/MatMul.*flopsPerShard/);
    expect(h.hub.store.listJobs()).toHaveLength(0);

    // Counted: the declared value (deliberately wrong here) is ignored for credit.
    r = await post(manifest(sha(model), { flopsPerShard: 1 }));
    expect(r.status).toBe(201);
    const job = ((await r.json()) as { job: string }).job;
    const stored = h.hub.store.getJob(job)?.manifest;
    // 2044 FLOPs per row (test/protocol/onnx-graph.node.test.ts has the hand count).
    expect(stored?.kind === 'onnx' && stored.flopsByRows).toEqual({
      formula: 'onnx-graph/1',
      byRows: { 4: 2044 * 4, 2: 2044 * 2 },
    });

    // Three shards (4, 4 and 2 rows), each validated by one volunteer: credit = FLOPs × 0.5.
    const caps = { maxBufferBytes: 1 << 30, features: [] };
    const credited: number[] = [];
    for (let i = 0; i < 3; i++) {
      const v = `vol-${i}`;
      const g = h.hub.scheduler.lease(v, caps, Date.now());
      if (!g || g.job !== job) throw new Error(`expected a lease of ${job}, got ${JSON.stringify(g)}`);
      const data = new Float32Array(4).buffer;
      const outcome = await h.hub.scheduler.submitResult(
        v,
        {
          v: 1,
          shard: g.shard,
          job,
          kind: 'onnx',
          outputs: [{ name: 'probs', dtype: 'f32', shape: [4], data, sha256: await sha256Hex(data) }],
          backend: 'wasm',
          device: 'test',
          ms: 1,
        },
        Date.now(),
      );
      expect(outcome.status).toBe('valid');
      const rows = g.work.kind === 'onnx' && g.work.rows ? g.work.rows[1] - g.work.rows[0] : -1;
      const entry = h.hub.store.ledger(v).find((x) => x.shard === g.shard);
      expect(entry?.status).toBe('granted');
      expect(entry?.credits).toBe(creditUnits(2044 * rows, 0.5));
      credited.push(rows);
    }
    expect(credited.sort()).toEqual([2, 4, 4]);

    // Declared FLOPs are the fallback for a graph that cannot be counted.
    r = await post(manifest(sha(blind), { flopsPerShard: 1000 }));
    expect(r.status).toBe(201);
    const fallback = ((await r.json()) as { job: string }).job;
    expect(h.hub.store.getJob(fallback)?.manifest).not.toHaveProperty('flopsByRows');
  });
});
