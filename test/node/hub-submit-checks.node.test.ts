// What the hub checks at submit (issue 10): jobs that every volunteer would fail are refused with
// the reason — a WGSL syntax error with its line and column (compiled on the hub's own Dawn
// device), tensors whose blobs are the wrong size, zero-size shapes, dtypes the kernel or model
// does not declare, ONNX weights kept in an external file — and a failure of the hub's own device
// while it computes honeypots is the hub's (503), not the researcher's (400).
import { afterEach, describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { EXAMPLE_KERNEL, heatJob } from '../../src/node/example.ts';
import { initializer, onnxModel, value } from '../../src/onnx/model-builder.ts';
import { sha, type TestHub, testHub, upload } from './hub-helpers.ts';

let t: TestHub | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

async function hub(over: Parameters<typeof testHub>[0] = {}) {
  t = await testHub({ maxBlobBytes: 1 << 20, ...over });
  const { token } = createToken(t.hub.store, 'alice');
  const submit = async (manifest: unknown) => {
    const r = await fetch(`${t!.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify(manifest),
    });
    const body = (await r.json()) as { job?: string; error?: { code: string; message: string } };
    return { status: r.status, ...body };
  };
  return { url: t.hub.url, token, submit };
}

const f32 = (n: number, fill = 1) => new Uint8Array(new Float32Array(n).fill(fill).buffer);

/** The example saxpy job (uniform, x: f32[n], y: f32[n]) with its blobs, to break one way at a time. */
function saxpy(n = 64) {
  const params = new Uint8Array(16);
  new DataView(params.buffer).setUint32(8, n, true);
  const x = f32(n);
  const job = {
    v: 1,
    kind: 'wgsl',
    source: EXAMPLE_KERNEL,
    shards: [
      {
        dispatch: [1, 1, 1],
        bindings: [
          { binding: 0, role: 'uniform', name: 'params', sha256: sha(params) },
          { binding: 1, role: 'input', name: 'x', tensor: { sha256: sha(x), dtype: 'f32', shape: [n] } },
          { binding: 2, role: 'output', name: 'y', dtype: 'f32', shape: [n] },
        ],
      },
    ],
    replication: 2,
    tolerance: 'exact',
    deadlineMs: 10_000,
    creditRate: 1,
    flopsPerShard: 2 * n,
  };
  return { job, blobs: [params, x] };
}

describe('checks at submit', () => {
  it('refuses a WGSL syntax error with its line and column, compiled on the hub’s device', async () => {
    const h = await hub();
    const { job, blobs } = saxpy();
    await upload(h.url, h.token, blobs);
    expect((await h.submit(job)).status).toBe(201);
    const broken = { ...job, source: EXAMPLE_KERNEL.replace('params.a * x[g.x]', 'params.a * x[g.x') };
    const r = await h.submit(broken);
    expect(r.status).toBe(400);
    expect(r.error?.code).toBe('wgsl/compile');
    expect(r.error?.message).toMatch(/at line 7, column \d+/);
    expect(r.error?.message).toMatch(/7 \| .*x\[g\.x/);
  });

  it('refuses a program whose pass uses a slot it does not bind (the hub builds every pipeline)', async () => {
    const h = await hub();
    const heat = heatJob({ size: 16, steps: 2, bands: 1 });
    await upload(h.url, h.token, [...heat.blobs.values()] as Uint8Array<ArrayBuffer>[]);
    expect((await h.submit(heat.manifest)).status).toBe(201);
    const m = heat.manifest as { shards: { program: { bind?: { binding: number }[] }[] }[] };
    const program = m.shards[0]!.program.map((p) =>
      p.bind ? { ...p, bind: p.bind.filter((b) => b.binding !== 3) } : p,
    );
    const r = await h.submit({ ...heat.manifest, shards: [{ ...m.shards[0], program }] });
    expect(r.status).toBe(400);
    expect(r.error?.code).toBe('wgsl/manifest');
    expect(r.error?.message).toMatch(/"band"/);
  });

  it('without a device, checks the shader’s declarations still — and lets the volunteers find a syntax error', async () => {
    const h = await hub({ compileWgsl: false });
    const { job, blobs } = saxpy();
    await upload(h.url, h.token, blobs);
    const broken = { ...job, source: EXAMPLE_KERNEL.replace('params.a * x[g.x]', 'params.a * x[g.x') };
    expect((await h.submit(broken)).status).toBe(201);
    const readOnlyOut = { ...job, source: EXAMPLE_KERNEL.replace('read_write> y', 'read> y') };
    const r = await h.submit(readOnlyOut);
    expect(r.status).toBe(400);
    expect(r.error?.message).toMatch(/binding 2 \(output "y"\) needs var<storage, read_write>, but line 4/);
  });

  it('refuses tensors whose blob is not the size dtype × shape say, naming the field', async () => {
    const h = await hub();
    const { job, blobs } = saxpy(512);
    await upload(h.url, h.token, blobs);
    const short = f32(256); // 1,024 bytes for an f32[512]
    await upload(h.url, h.token, [short]);
    const shards = [
      {
        ...job.shards[0]!,
        bindings: job.shards[0]!.bindings.map((b) =>
          b.role === 'input' ? { ...b, tensor: { sha256: sha(short), dtype: 'f32', shape: [512] } } : b,
        ),
      },
    ];
    const r = await h.submit({ ...job, shards });
    expect(r.status).toBe(400);
    expect(r.error?.code).toBe('input/invalid');
    expect(r.error?.message).toMatch(
      /^manifest\.shards\[0\]\.bindings\[1\]\.tensor: f32\[512\] needs 2048 bytes, but blob [0-9a-f]{64} has 1024/,
    );
  });

  it('refuses a zero-size shape, and a dtype the kernel does not declare', async () => {
    const h = await hub();
    const { job, blobs } = saxpy();
    await upload(h.url, h.token, blobs);
    const withY = (y: Record<string, unknown>) => ({
      ...job,
      shards: [
        {
          ...job.shards[0]!,
          bindings: [...job.shards[0]!.bindings.slice(0, 2), { ...job.shards[0]!.bindings[2], ...y }],
        },
      ],
    });
    const zero = await h.submit(withY({ shape: [0] }));
    expect(zero.status).toBe(400);
    expect(zero.error?.message).toMatch(
      /^manifest\.shards\[0\]\.bindings\[2\]\.shape: \[0\] has no elements/,
    );
    const i32 = await h.submit(withY({ dtype: 'i32' }));
    expect(i32.status).toBe(400);
    expect(i32.error?.code).toBe('wgsl/manifest');
    expect(i32.error?.message).toMatch(
      /binding 2 \(output "y"\) is i32, but line 4 declares "y: array<f32>"/,
    );
  });

  it('checks an ONNX job’s inputs against the model: names, dtypes, fixed dims; and refuses external weights', async () => {
    const h = await hub();
    const w = new Float32Array(16 * 4).fill(0.5);
    const model = (external?: string) =>
      onnxModel({
        name: 'linear',
        nodes: [{ opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
        inputs: [value('x', 'float', ['batch', 16])],
        outputs: [value('y', 'float', ['batch', 4])],
        initializers: [{ ...initializer('w', 'float', [16, 4], w), ...(external ? { external } : {}) }],
        opsets: { '': 17 },
      }) as Uint8Array<ArrayBuffer>;
    const good = model();
    const ext = model('weights.bin');
    const x = f32(8 * 16);
    await upload(h.url, h.token, [good, ext, x]);
    const job = (over: Record<string, unknown> = {}) => ({
      v: 1,
      kind: 'onnx',
      model: sha(good),
      inputs: { x: { sha256: sha(x), dtype: 'f32', shape: [8, 16] } },
      batchInput: 'x',
      shardSize: 4,
      replication: 2,
      tolerance: { rtol: 1e-4, atol: 1e-6 },
      deadlineMs: 10_000,
      creditRate: 1,
      ...over,
    });
    expect((await h.submit(job())).status).toBe(201);
    const e = await h.submit(job({ model: sha(ext) }));
    expect(e.status).toBe(400);
    expect(e.error?.code).toBe('onnx/unsupported');
    expect(e.error?.message).toMatch(/initializer "w" keeps its data in an external file/);
    const dt = await h.submit(job({ inputs: { x: { sha256: sha(x), dtype: 'i32', shape: [8, 16] } } }));
    expect(dt.status).toBe(400);
    expect(dt.error?.message).toMatch(
      /^manifest\.inputs\.x\.dtype: the model declares "x" as float, the manifest gives i32/,
    );
    const x2 = f32(8 * 8);
    await upload(h.url, h.token, [x2]);
    const dim = await h.submit(job({ inputs: { x: { sha256: sha(x2), dtype: 'f32', shape: [8, 8] } } }));
    expect(dim.status).toBe(400);
    expect(dim.error?.message).toMatch(/manifest\.inputs\.x\.shape\[1\]: the model declares "x" dim 1 as 16/);
    const name = await h.submit(
      job({ inputs: { z: { sha256: sha(x), dtype: 'f32', shape: [8, 16] } }, batchInput: 'z' }),
    );
    expect(name.status).toBe(400);
    expect(name.error?.message).toMatch(/the model has no input "z"/);
  });

  it('answers a failure of the hub’s own device while computing honeypots with 503, the job’s own with 400', async () => {
    let fail: HearthError = new HearthError('gpu/device-lost', 'the hub’s GPU was reset');
    const h = await hub({
      oracle: async () => ({
        runShard: async () => {
          throw fail;
        },
      }),
    });
    const { job, blobs } = saxpy();
    await upload(h.url, h.token, blobs);
    const hub503 = await h.submit({ ...job, autoHoneypots: 1 });
    expect(hub503.status).toBe(503);
    expect(hub503.error?.message).toMatch(/the hub's device failed while computing honeypots/);
    fail = new HearthError('wgsl/manifest', 'binding 9 is wrong');
    const job400 = await h.submit({ ...job, autoHoneypots: 1 });
    expect(job400.status).toBe(400);
    expect(job400.error?.code).toBe('wgsl/manifest');
  });
});
