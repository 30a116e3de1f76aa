// ONNX cases shared by the Node run (wasm EP) and the Chromium worker run (WebGPU and wasm EPs):
// plain async functions that throw on failure, so the same code runs under both.
import { HearthError, type HearthErrorCode } from '../../src/core/errors.ts';
import { f16BitsToF32, f32ToF16Bits, toF16Array } from '../../src/core/f16.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import type { DType } from '../../src/core/tensor.ts';
import { type OnnxRunResult, runOnnx } from '../../src/onnx/run.ts';
import type { HostTensor, OnnxBackend, OnnxShard } from '../../src/protocol/shard.ts';
import * as models from './models.ts';
import { assertClose, type Tolerance, uniform } from './reference.ts';

export type BackendChoice = 'auto' | OnnxBackend;

/**
 * f32 network outputs against the float64 reference. The wasm EP accumulates in f32 in order;
 * WebGPU kernels tile and reorder sums and use their own exp/tanh.
 */
export const TOL: Readonly<Record<OnnxBackend, Tolerance>> = {
  wasm: { rtol: 1e-5, atol: 1e-6 },
  webgpu: { rtol: 2e-4, atol: 2e-5 },
};

export interface CaseResult {
  /** The backend that ran, when the case ran a model to the end. */
  readonly backend?: OnnxBackend;
  /** Worst absolute error against the reference, for the log. */
  readonly worst?: number;
  /** Why the case checked a fallback to wasm instead of a result from the backend asked for. */
  readonly fellBack?: string;
}

async function hasShaderF16(): Promise<boolean> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  return (await gpu?.requestAdapter())?.features.has('shader-f16') ?? false;
}

export interface OnnxCase {
  readonly name: string;
  /** 'each': run on every backend; 'once': on the default choice only (errors come before any run). */
  readonly on: 'each' | 'once';
  readonly run: (backend: BackendChoice) => Promise<CaseResult>;
}

export function host(dtype: DType, shape: number[], data: ArrayBufferView): HostTensor {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return { dtype, shape, data: bytes.buffer };
}

export async function shardFor(
  bytes: Uint8Array,
  inputs: Record<string, HostTensor>,
  extra: Partial<Pick<OnnxShard, 'outputs' | 'backend' | 'budgetMs' | 'id'>> = {},
): Promise<OnnxShard> {
  return { v: 1, kind: 'onnx', id: 'test/1', job: 'test', model: await sha256Hex(bytes), inputs, ...extra };
}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

function out(r: OnnxRunResult, name: string): HostTensor {
  const o = r.outputs.find((x) => x.name === name);
  check(o, `no output "${name}" in [${r.outputs.map((x) => x.name).join(', ')}]`);
  return o.tensor;
}

function expectShape(t: HostTensor, dtype: DType, shape: number[], what: string): void {
  check(
    t.dtype === dtype && t.shape.join() === shape.join(),
    `${what}: got ${t.dtype}[${t.shape.join(', ')}], expected ${dtype}[${shape.join(', ')}]`,
  );
}

/** Awaits `p` and checks that it rejected with a HearthError of `code` whose message has every one of `words`. */
export async function expectHearthError(
  p: Promise<unknown>,
  code: HearthErrorCode,
  words: readonly string[],
): Promise<HearthError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  check(err !== undefined, `expected a HearthError ${code}, and it resolved`);
  check(
    err instanceof HearthError,
    `expected a HearthError ${code}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
  );
  check(err.code === code, `expected code ${code}, got ${err.code}: ${err.message}`);
  for (const w of words) check(err.message.includes(w), `message lacks "${w}": ${err.message}`);
  return err;
}

function tolFor(r: OnnxRunResult): Tolerance {
  return TOL[r.backend];
}

const values: OnnxCase[] = [
  {
    name: 'mlp (MatMul, Add, GELU, Softmax) matches the float64 reference',
    on: 'each',
    async run(backend) {
      const m = models.mlp();
      const batch = 5;
      const x = uniform(7, batch * m.dims.D, -2, 2);
      const r = await runOnnx(
        await shardFor(m.bytes, { x: host('f32', [batch, m.dims.D], x) }, { backend }),
        m.bytes,
      );
      const want = m.reference(x, batch);
      check(r.outputs.map((o) => o.name).join() === 'probs,logits', 'outputs in the model order');
      const probs = out(r, 'probs');
      const logits = out(r, 'logits');
      expectShape(probs, 'f32', [batch, m.dims.O], 'probs');
      expectShape(logits, 'f32', [batch, m.dims.O], 'logits');
      const worst = Math.max(
        assertClose(new Float32Array(logits.data), want.logits, tolFor(r), 'logits'),
        assertClose(new Float32Array(probs.data), want.probs, tolFor(r), 'probs'),
      );
      return { backend: r.backend, worst };
    },
  },
  {
    name: 'mlp returns only the outputs the shard asks for',
    on: 'each',
    async run(backend) {
      const m = models.mlp();
      const x = uniform(8, 2 * m.dims.D);
      const shard = await shardFor(
        m.bytes,
        { x: host('f32', [2, m.dims.D], x) },
        { backend, outputs: ['logits'] },
      );
      const r = await runOnnx(shard, m.bytes);
      check(r.outputs.length === 1 && r.outputs[0]!.name === 'logits', 'only logits');
      const worst = assertClose(
        new Float32Array(r.outputs[0]!.tensor.data),
        m.reference(x, 2).logits,
        tolFor(r),
        'logits',
      );
      return { backend: r.backend, worst };
    },
  },
  {
    name: 'conv (Conv, Relu, GlobalAveragePool, Flatten) matches the float64 reference',
    on: 'each',
    async run(backend) {
      const m = models.convNet();
      const { C, H, W, O } = m.dims;
      const batch = 2;
      const x = uniform(9, batch * C * H * W);
      const r = await runOnnx(
        await shardFor(m.bytes, { x: host('f32', [batch, C, H, W], x) }, { backend }),
        m.bytes,
      );
      const y = out(r, 'y');
      expectShape(y, 'f32', [batch, O], 'y');
      const worst = assertClose(new Float32Array(y.data), m.reference(x, batch), tolFor(r), 'y');
      return { backend: r.backend, worst };
    },
  },
  {
    name: 'attention head (batched MatMul, Transpose, Softmax) matches the float64 reference',
    on: 'each',
    async run(backend) {
      const m = models.attention();
      const { T, D } = m.dims;
      const batch = 3;
      const x = uniform(10, batch * T * D);
      const r = await runOnnx(
        await shardFor(m.bytes, { x: host('f32', [batch, T, D], x) }, { backend }),
        m.bytes,
      );
      const y = out(r, 'y');
      expectShape(y, 'f32', [batch, T, D], 'y');
      const worst = assertClose(new Float32Array(y.data), m.reference(x, batch), tolFor(r), 'y');
      return { backend: r.backend, worst };
    },
  },
  {
    name: 'concurrent shards on two models each get their own answer',
    on: 'each',
    async run(backend) {
      const m = models.mlp();
      const c = models.convNet();
      const { C, H, W } = c.dims;
      const jobs = Array.from({ length: 6 }, async (_, i) => {
        const batch = 1 + (i % 3);
        if (i % 2 === 0) {
          const x = uniform(300 + i, batch * m.dims.D);
          const shard = await shardFor(m.bytes, { x: host('f32', [batch, m.dims.D], x) }, { backend });
          const r = await runOnnx(shard, m.bytes);
          const got = new Float32Array(out(r, 'probs').data);
          return { r, worst: assertClose(got, m.reference(x, batch).probs, tolFor(r), `mlp shard ${i}`) };
        }
        const x = uniform(300 + i, batch * C * H * W);
        const r = await runOnnx(
          await shardFor(c.bytes, { x: host('f32', [batch, C, H, W], x) }, { backend }),
          c.bytes,
        );
        const got = new Float32Array(out(r, 'y').data);
        return { r, worst: assertClose(got, c.reference(x, batch), tolFor(r), `conv shard ${i}`) };
      });
      const done = await Promise.all(jobs);
      const backends = new Set(done.map((d) => d.r.backend));
      check(backends.size === 1, `one backend for all: ${[...backends].join(', ')}`);
      return { backend: done[0]!.r.backend, worst: Math.max(...done.map((d) => d.worst)) };
    },
  },
  {
    name: 'int32 and uint32 tensors go in and out bit-exact',
    on: 'each',
    async run(backend) {
      const m = models.integers();
      const i = new Int32Array([0, 1, -1, 7, -123456, 1 << 29, -(1 << 29), 42]);
      const u = new Uint32Array([0, 1, 2 ** 31, 2 ** 32 - 1, 5, 6, 7, 123456789]);
      const r = await runOnnx(
        await shardFor(m.bytes, { i: host('i32', [8], i), u: host('u32', [8], u) }, { backend }),
        m.bytes,
      );
      const i2 = out(r, 'i2');
      const u2 = out(r, 'u2');
      expectShape(i2, 'i32', [8], 'i2');
      expectShape(u2, 'u32', [8], 'u2');
      check(new Int32Array(i2.data).join() === Array.from(i, (v) => 2 * v).join(), `i2 = 2·i`);
      check(new Uint32Array(u2.data).join() === u.join(), 'u2 = u');
      return { backend: r.backend };
    },
  },
];

const more: OnnxCase[] = [
  {
    name: 'f16 goes in and out as half bits (Cast both ways)',
    on: 'each',
    async run(backend) {
      const m = models.castF16();
      const vals = [0, 1, -2.5, 65504, 1e-7, Math.PI, -0.333, 1000.25];
      const h = toF16Array(vals);
      const a = new Float32Array([0.1, -0.2, 1 / 3, 2049, 70000, -1e-8, 6.1e-5, 0.5]);
      const shard = (b: BackendChoice) =>
        shardFor(m.bytes, { h: host('f16', [8], h), a: host('f32', [8], a) }, { backend: b });
      let fellBack: string | undefined;
      let r: OnnxRunResult;
      if (backend === 'webgpu' && !(await hasShaderF16())) {
        // Without shader-f16 (SwiftShader) the WebGPU EP refuses the f16 nodes, and 'auto'
        // falls back to wasm for the same shard.
        await expectHearthError(runOnnx(await shard('webgpu'), m.bytes), 'onnx/unsupported', ['shader-f16']);
        r = await runOnnx(await shard('auto'), m.bytes);
        fellBack = 'the adapter has no shader-f16: WebGPU refused it, auto fell back to wasm';
      } else {
        r = await runOnnx(await shard(backend), m.bytes);
      }
      const hf = out(r, 'hf');
      const af = out(r, 'af');
      expectShape(hf, 'f32', [8], 'hf');
      expectShape(af, 'f16', [8], 'af');
      check(
        new Float32Array(hf.data).join() === Array.from(h, f16BitsToF32).join(),
        `f16 → f32 exact: ${new Float32Array(hf.data).join()}`,
      );
      check(
        new Uint16Array(af.data).join() === Array.from(a, f32ToF16Bits).join(),
        `f32 → f16 rounds to nearest even: ${new Uint16Array(af.data).join()} vs ${Array.from(a, f32ToF16Bits).join()}`,
      );
      return { backend: r.backend, ...(fellBack ? { fellBack } : {}) };
    },
  },
  {
    name: 'int64 input takes i32 (widened); int64 output comes back as i32 when it fits',
    on: 'each',
    async run(backend) {
      const m = models.int64Ids();
      const ids = new Int32Array([0, 5, -3, 2 ** 30]);
      const inputs = { ids: host('i32', [4], ids) };
      const r = await runOnnx(await shardFor(m.bytes, inputs, { backend, outputs: ['out'] }), m.bytes);
      const o = out(r, 'out');
      expectShape(o, 'i32', [4], 'out');
      check(new Int32Array(o.data).join() === Array.from(ids, (v) => v + 1).join(), 'out = ids + 1');
      await expectHearthError(
        runOnnx(await shardFor(m.bytes, inputs, { backend, outputs: ['big'] }), m.bytes),
        'onnx/unsupported',
        ['"big"', 'int64', 'i32'],
      );
      return { backend: r.backend };
    },
  },
  {
    name: 'garbage bytes: onnx/model (protobuf parsing failed)',
    on: 'once',
    async run(backend) {
      const bytes = new Uint8Array(uniform(3, 256).buffer);
      const shard = await shardFor(bytes, { x: host('f32', [1], new Float32Array(1)) }, { backend });
      await expectHearthError(runOnnx(shard, bytes), 'onnx/model', ['not a valid ONNX model', 'protobuf']);
      return {};
    },
  },
  {
    name: 'truncated model: onnx/model',
    on: 'once',
    async run(backend) {
      const whole = models.mlp().bytes;
      const bytes = whole.slice(0, Math.floor(whole.length * 0.6));
      const shard = await shardFor(bytes, { x: host('f32', [1, 16], new Float32Array(16)) }, { backend });
      await expectHearthError(runOnnx(shard, bytes), 'onnx/model', [shard.model.slice(0, 12)]);
      return {};
    },
  },
  {
    name: 'unknown operator: onnx/unsupported naming it',
    on: 'once',
    async run(backend) {
      const { bytes } = models.unknownOp();
      const shard = await shardFor(bytes, { x: host('f32', [4], new Float32Array(4)) }, { backend });
      const e = await expectHearthError(runOnnx(shard, bytes), 'onnx/unsupported', ['"NoSuchOp"']);
      check(e.details.op === 'NoSuchOp', 'details.op');
      return {};
    },
  },
  {
    name: 'unknown and missing inputs: input/invalid naming them',
    on: 'once',
    async run(backend) {
      const { bytes } = models.mlp();
      const x = host('f32', [1, 16], new Float32Array(16));
      await expectHearthError(
        runOnnx(await shardFor(bytes, { x, q: x }, { backend }), bytes),
        'input/invalid',
        ['shard.inputs.q', 'no input named "q"', 'x'],
      );
      await expectHearthError(runOnnx(await shardFor(bytes, { y: x }, { backend }), bytes), 'input/invalid', [
        '"y"',
      ]);
      const { bytes: two } = models.integers();
      const i = host('i32', [8], new Int32Array(8));
      await expectHearthError(runOnnx(await shardFor(two, { i }, { backend }), two), 'input/invalid', [
        'needs input "u"',
      ]);
      return {};
    },
  },
  {
    name: 'unknown or repeated output: input/invalid naming it',
    on: 'once',
    async run(backend) {
      const { bytes } = models.mlp();
      const inputs = { x: host('f32', [1, 16], new Float32Array(16)) };
      await expectHearthError(
        runOnnx(await shardFor(bytes, inputs, { backend, outputs: ['probs', 'nope'] }), bytes),
        'input/invalid',
        ['shard.outputs[1]', '"nope"', 'probs, logits'],
      );
      await expectHearthError(
        runOnnx(await shardFor(bytes, inputs, { backend, outputs: ['probs', 'probs'] }), bytes),
        'input/invalid',
        ['twice'],
      );
      return {};
    },
  },
  {
    name: 'wrong input shape: onnx/run naming the input and the sizes',
    on: 'once',
    async run(backend) {
      const { bytes } = models.mlp();
      const bad = host('f32', [2, 15], new Float32Array(30));
      await expectHearthError(runOnnx(await shardFor(bytes, { x: bad }, { backend }), bytes), 'onnx/run', [
        'input "x"',
        '[batch, 16]',
        '[2, 15]',
        'dimension 1 is 15, not 16',
      ]);
      const flat = host('f32', [32], new Float32Array(32));
      await expectHearthError(runOnnx(await shardFor(bytes, { x: flat }, { backend }), bytes), 'onnx/run', [
        'input "x"',
        'rank 1, not 2',
      ]);
      return {};
    },
  },
  {
    name: 'shapes that fail inside ORT at run time: onnx/run naming the node',
    on: 'once',
    async run(backend) {
      const { bytes } = models.symbolicMatmul();
      const a = host('f32', [2, 3], new Float32Array(6));
      const b = host('f32', [5, 4], new Float32Array(20));
      const e = await expectHearthError(
        runOnnx(await shardFor(bytes, { a, b }, { backend }), bytes),
        'onnx/run',
        ['MatMul'],
      );
      check(e.details.op === 'MatMul', `details.op: ${JSON.stringify(e.details)}`);
      return {};
    },
  },
  {
    name: 'dtypes: a wrong one (or bytes that do not fit) is input/invalid, one Hearth lacks is onnx/unsupported',
    on: 'once',
    async run(backend) {
      const { bytes } = models.mlp();
      await expectHearthError(
        runOnnx(await shardFor(bytes, { x: host('i32', [1, 16], new Int32Array(16)) }, { backend }), bytes),
        'input/invalid',
        ['float32', 'give f32, not i32'],
      );
      const short = { dtype: 'f32', shape: [1, 16], data: new ArrayBuffer(60) } as const;
      await expectHearthError(
        runOnnx(await shardFor(bytes, { x: short }, { backend }), bytes),
        'input/invalid',
        ['needs 64 bytes of data, got 60'],
      );
      const f64 = models.float64Input().bytes;
      await expectHearthError(
        runOnnx(await shardFor(f64, { x: host('f32', [4], new Float32Array(4)) }, { backend }), f64),
        'onnx/unsupported',
        ['input "x"', 'float64'],
      );
      const bool = models.boolOutput().bytes;
      await expectHearthError(
        runOnnx(await shardFor(bool, { x: host('f32', [4], new Float32Array(4)) }, { backend }), bool),
        'onnx/unsupported',
        ['output "pos"', 'bool'],
      );
      return {};
    },
  },
  {
    name: 'model bytes that do not match the hash: blob/corrupt',
    on: 'once',
    async run(backend) {
      // A model no other case loads: a cached session is used without reading the bytes again.
      const { bytes } = models.mlp(77);
      const shard = await shardFor(bytes, { x: host('f32', [1, 16], new Float32Array(16)) }, { backend });
      const other = models.mlp(99).bytes;
      await expectHearthError(runOnnx(shard, other), 'blob/corrupt', [shard.model]);
      return {};
    },
  },
  {
    name: 'an aborted signal: shard/cancelled before anything runs',
    on: 'once',
    async run(backend) {
      const { bytes } = models.convNet(12345);
      const shard = await shardFor(
        bytes,
        { x: host('f32', [1, 3, 8, 8], new Float32Array(192)) },
        { backend },
      );
      const ac = new AbortController();
      ac.abort();
      await expectHearthError(runOnnx(shard, bytes, { signal: ac.signal }), 'shard/cancelled', [shard.id]);
      return {};
    },
  },
];

export const cases: readonly OnnxCase[] = [...values, ...more];
