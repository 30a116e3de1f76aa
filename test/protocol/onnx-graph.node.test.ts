// The hub's ONNX graph reader and FLOP count: test models built in TypeScript
// (test/onnx/model-builder.ts) against FLOPs worked out by hand from the published table in
// src/protocol/flops.ts, and malformed bytes (every truncation, seeded bit flips) that must give a
// typed error or a valid parse — never another kind of throw.
import { describe, expect, it } from 'vitest';
import { HearthError, isHearthError } from '../../src/core/errors.ts';
import { CREDIT_UNITS } from '../../src/protocol/credit.ts';
import { countJobFlops, countOnnxFlops, flopsPerShard, shardCredit } from '../../src/protocol/flops.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';
import type { OnnxManifest } from '../../src/protocol/manifest.ts';
import { ONNX_GRAPH_LIMITS, readOnnxGraph } from '../../src/protocol/onnx-graph.ts';
import { inferShapes } from '../../src/protocol/onnx-shapes.ts';
import { seededRng } from '../hub/fixtures.ts';
import { initializer, onnxModel, value } from '../onnx/model-builder.ts';
import { attention, convNet, heavy, mlp, symbolicMatmul, unknownOp } from '../onnx/models.ts';

/** Grouped, strided Conv → Reshape (by a constant) → Gemm → LayerNormalization → Sigmoid. */
function convGemm(): Uint8Array {
  return onnxModel({
    nodes: [
      {
        opType: 'Conv',
        inputs: ['x', 'w'],
        outputs: ['c'],
        attributes: { group: 2, strides: [2, 2], pads: [1, 1, 1, 1] },
      },
      { opType: 'Reshape', inputs: ['c', 'flat'], outputs: ['f'] },
      { opType: 'Gemm', inputs: ['f', 'g', 'gb'], outputs: ['y'], attributes: { transB: 1 } },
      { opType: 'LayerNormalization', inputs: ['y', 'ln', 'lb'], outputs: ['n'], attributes: { axis: -1 } },
      { opType: 'Sigmoid', inputs: ['n'], outputs: ['out'] },
    ],
    inputs: [value('x', 'float', ['N', 4, 9, 9])],
    outputs: [value('out', 'float', ['N', 3])],
    initializers: [
      initializer('w', 'float', [6, 2, 3, 3], new Float32Array(108)),
      initializer('flat', 'int64', [2], new BigInt64Array([0n, -1n])),
      initializer('g', 'float', [3, 150], new Float32Array(450)),
      initializer('gb', 'float', [3], new Float32Array(3)),
      initializer('ln', 'float', [3], new Float32Array(3)),
      initializer('lb', 'float', [3], new Float32Array(3)),
    ],
    opsets: { '': 17 },
  });
}

function typedOrValid(run: () => void): 'ok' | string {
  try {
    run();
    return 'ok';
  } catch (e) {
    if (!isHearthError(e)) throw e;
    expect(['onnx/model', 'onnx/unsupported']).toContain(e.code);
    expect(e.message.length).toBeGreaterThan(10);
    return e.code;
  }
}

describe('readOnnxGraph', () => {
  it('reads nodes, attributes, initializer dims and declared shapes', () => {
    const g = readOnnxGraph(mlp().bytes);
    expect(g.nodes.map((n) => n.opType)).toEqual([
      'MatMul',
      'Add',
      'Mul',
      'Mul',
      'Mul',
      'Add',
      'Mul',
      'Tanh',
      'Add',
      'Mul',
      'Mul',
      'MatMul',
      'Add',
      'Softmax',
    ]);
    expect(g.nodes[13]!.attributes.get('axis')).toEqual({ i: -1 });
    expect(g.initializers.get('w1')?.dims).toEqual([16, 32]);
    expect(g.initializers.get('c0')?.dims).toEqual([]);
    expect(g.inputs).toEqual([{ name: 'x', shape: ['batch', 16], elemType: 1 }]);
    expect(g.outputs.map((o) => o.name)).toEqual(['probs', 'logits']);
    const c = readOnnxGraph(convGemm());
    expect(c.initializers.get('flat')?.ints).toEqual([0, -1]);
    expect(c.nodes[0]!.attributes.get('pads')).toEqual({ ints: [1, 1, 1, 1] });
  });

  it('infers shapes through Conv, Reshape, Gemm and broadcasting', () => {
    const s = inferShapes(readOnnxGraph(convGemm()), { x: [5, 4, 9, 9] });
    expect(s.get('c')).toEqual([5, 6, 5, 5]);
    expect(s.get('f')).toEqual([5, 150]);
    expect(s.get('out')).toEqual([5, 3]);
    const a = inferShapes(readOnnxGraph(attention().bytes), { x: [2, 6, 8] });
    expect(a.get('kt')).toEqual([2, 8, 6]);
    expect(a.get('y')).toEqual([2, 6, 8]);
  });
});

describe('countOnnxFlops: the published table against hand counts', () => {
  const count = (bytes: Uint8Array, inputs: Record<string, number[]>) =>
    countOnnxFlops(readOnnxGraph(bytes), inputs);

  it('MLP: 2·B·16·32 + 2·B·32·10 (MatMuls) + 10·32·B + 10·B (elementwise) + 5·10·B (Softmax)', () => {
    for (const b of [1, 3, 64]) expect(count(mlp().bytes, { x: [b, 16] })).toBe(2044 * b);
  });

  it('Conv: 2·Cout·Cin·kH·kW·Hout·Wout per item, plus Relu; pools and reshapes are free', () => {
    // 2·4·3·3·3·8·8 = 13824, Relu 4·8·8 = 256.
    for (const b of [1, 7]) expect(count(convNet().bytes, { x: [b, 3, 8, 8] })).toBe(14080 * b);
  });

  it('attention: batched MatMuls, a scale and a 3-D Softmax; Transpose is free', () => {
    // 3·(2·6·8·8) + 2·6·6·8 + 6·6 + 5·6·6 + 2·6·8·6 = 3672 per batch item.
    expect(count(attention().bytes, { x: [4, 6, 8] })).toBe(3672 * 4);
  });

  it('grouped strided Conv, Gemm with transB, LayerNormalization (8/element), Sigmoid', () => {
    // Conv: 2·6·(4/2)·3·3·5·5 = 5400; Gemm 2·3·150 = 900; LayerNorm 8·3; Sigmoid 3.
    expect(count(convGemm(), { x: [2, 4, 9, 9] })).toBe(2 * (5400 + 900 + 24 + 3));
  });

  it('Reshape by a Constant (value_ints) feeds Softmax; a long string attribute is no error', () => {
    const bytes = onnxModel({
      nodes: [
        { opType: 'Constant', inputs: [], outputs: ['to'], attributes: { value_ints: [0, 2, 3] } },
        { opType: 'Reshape', inputs: ['x', 'to'], outputs: ['r'] },
        {
          opType: 'Softmax',
          inputs: ['r'],
          outputs: ['y'],
          attributes: { axis: -1, note: 'n'.repeat(5000) },
        },
      ],
      inputs: [value('x', 'float', ['b', 6])],
      // Declared wrongly on purpose: inference, not the declaration, gives r's shape.
      outputs: [value('y', 'float', ['b', 99])],
      opsets: { '': 17 },
    });
    expect(inferShapes(readOnnxGraph(bytes), { x: [4, 6] }).get('r')).toEqual([4, 2, 3]);
    expect(count(bytes, { x: [4, 6] })).toBe(5 * 4 * 6);
  });

  it('chained 256×256 MatMuls scale with the rows', () => {
    expect(count(heavy(8, 256).bytes, { x: [10, 256] })).toBe(8 * 2 * 10 * 256 * 256);
  });

  it('an unknown operator costs 0, but a counted node after it needs a known shape', () => {
    // NoSuchOp's output is a declared graph output ([4]): Relu before it counts 4.
    expect(count(unknownOp().bytes, { x: [4] })).toBe(4);
    const blind = onnxModel({
      nodes: [
        { opType: 'Mystery', domain: 'com.example', inputs: ['x'], outputs: ['h'] },
        { opType: 'MatMul', inputs: ['h', 'w'], outputs: ['y'] },
      ],
      inputs: [value('x', 'float', ['n', 4])],
      outputs: [value('y', 'float', ['n', 2])],
      initializers: [initializer('w', 'float', [4, 2], new Float32Array(8))],
      opsets: { '': 17, 'com.example': 1 },
    });
    let err: unknown;
    try {
      count(blind, { x: [3, 4] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HearthError);
    expect((err as HearthError).code).toBe('onnx/unsupported');
    expect((err as HearthError).message).toMatch(/MatMul.*"h".*flopsPerShard/);
  });

  it('refuses shapes that contradict each other, naming the node', () => {
    expect(() => count(symbolicMatmul().bytes, { a: [2, 3], b: [5, 4] })).toThrow(/MatMul_0.*inner dims/);
    expect(() => count(mlp().bytes, { x: [2, 16, 1] })).toThrow(/declared with rank 2/);
  });

  it('Unsqueeze inserts its axes; axes that name one axis twice are a model error naming the node', () => {
    const unsqueeze = (axes: number[]) =>
      readOnnxGraph(
        onnxModel({
          nodes: [{ opType: 'Unsqueeze', inputs: ['x'], outputs: ['y'], attributes: { axes } }],
          inputs: [value('x', 'float', [2, 3])],
          outputs: [value('y', 'float', ['p', 'q', 'r', 's'])],
          opsets: { '': 11 },
        }),
      );
    expect(inferShapes(unsqueeze([0, 3]), { x: [2, 3] }).get('y')).toEqual([1, 2, 3, 1]);
    let err: unknown;
    try {
      inferShapes(unsqueeze([1, 1]), { x: [2, 3] });
    } catch (e) {
      err = e;
    }
    expect(isHearthError(err, 'onnx/model')).toBe(true);
    expect((err as HearthError).message).toMatch(/Unsqueeze.*axes \[1, 1\] name an axis twice/);
  });
});

describe('FLOPs per shard of an ONNX job', () => {
  const H = (c: string) => c.repeat(64);
  const manifest = (over: Record<string, unknown> = {}) =>
    parseManifest({
      v: 1,
      kind: 'onnx',
      model: H('a'),
      inputs: { x: { sha256: H('b'), dtype: 'f32', shape: [10, 16] } },
      batchInput: 'x',
      shardSize: 4,
      replication: 2,
      tolerance: { rtol: 1e-4, atol: 1e-6 },
      deadlineMs: 60_000,
      creditRate: 0.5,
      honeypots: [
        {
          inputs: { x: { sha256: H('c'), dtype: 'f32', shape: [3, 16] } },
          expected: [{ name: 'probs', sha256: H('d'), dtype: 'f32', shape: [3, 10] }],
        },
      ],
      ...over,
    }) as OnnxManifest;

  it('counts every batch size the job has; credit follows the shard rows; counted beats declared', () => {
    const m = manifest({ flopsPerShard: 1 });
    const counted = countJobFlops(m, mlp().bytes);
    // Shards of 4, 4 and 2 rows; one honeypot of 3.
    expect(counted).toEqual({
      formula: 'onnx-graph/1',
      byRows: { 4: 2044 * 4, 2: 2044 * 2, 3: 2044 * 3 },
    });
    const job: OnnxManifest = { ...m, flopsByRows: counted };
    const work = (rows?: [number, number], n = 10) => ({
      kind: 'onnx' as const,
      model: m.model,
      inputs: { x: { sha256: H('b'), dtype: 'f32' as const, shape: [n, 16] } },
      batchInput: 'x',
      ...(rows ? { rows } : {}),
    });
    expect(flopsPerShard(job, work([0, 4]))).toBe(2044 * 4);
    expect(flopsPerShard(job, work([8, 10]))).toBe(2044 * 2);
    expect(flopsPerShard(job, work(undefined, 3))).toBe(2044 * 3);
    expect(flopsPerShard(job)).toBe(2044 * 4);
    expect(shardCredit(job, work([8, 10]))).toBe(2044n * CREDIT_UNITS); // 2 rows × 2044 FLOPs × 0.5, in base units
    // The declared value is only what a job without a count falls back to.
    expect(flopsPerShard(m)).toBe(1);
  });

  it('refuses a malformed model and a model whose inputs do not fit the job', () => {
    expect(() => countJobFlops(manifest(), new Uint8Array([0x3a, 0x05, 1]))).toThrow(/ONNX model/);
    const wide = manifest({
      inputs: { x: { sha256: H('b'), dtype: 'f32', shape: [10, 17] } },
      honeypots: undefined,
    });
    expect(() => countJobFlops(wide, mlp().bytes)).toThrow(/MatMul.*inner dims/);
  });
});

describe('malformed model bytes', () => {
  const bytes = mlp().bytes;
  const tryAll = (b: Uint8Array) =>
    typedOrValid(() => {
      const g = readOnnxGraph(b);
      countOnnxFlops(g, { x: [2, 16] });
    });

  it(`every truncation of a ${bytes.length}-byte model is a typed error or a valid parse`, () => {
    const seen = new Map<string, number>();
    for (let n = 0; n < bytes.length; n++) {
      const outcome = tryAll(bytes.subarray(0, n));
      seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
    }
    // Truncating inside the graph always breaks a length: most prefixes must be refused.
    expect(seen.get('onnx/model') ?? 0).toBeGreaterThan(bytes.length * 0.9);
    expect(tryAll(bytes)).toBe('ok');
  });

  it('3,000 seeded bit flips: a typed error or a valid parse, never another throw', () => {
    const rng = seededRng(2026);
    const seen = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const b = bytes.slice();
      const flips = 1 + Math.floor(rng() * 3);
      for (let f = 0; f < flips; f++) b[Math.floor(rng() * b.length)]! ^= 1 << Math.floor(rng() * 8);
      const outcome = tryAll(b);
      seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
    }
    // Most flips land in weights (still valid); some in lengths and tags (refused).
    expect(seen.get('ok') ?? 0).toBeGreaterThan(0);
    expect(seen.get('onnx/model') ?? 0).toBeGreaterThan(0);
  });

  it('hostile encodings: lengths past the end, overlong varints, bad wire types, huge lists, not bytes', () => {
    const cases: [number[], RegExp][] = [
      [[0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f], /runs past the end/],
      [[0x08, ...Array(11).fill(0xff)], /longer than 10 bytes/],
      [[0x3b], /model.graph: expected wire type 2, got 3/],
      [[0x0b], /wire type 3 is not one ONNX uses/],
      [[0x00], /field number 0/],
      [[0x08, 0x01], /no graph/],
      [[0x3a, 0x02, 0x0a, 0x00], /no op_type/],
    ];
    for (const [b, re] of cases) expect(() => readOnnxGraph(Uint8Array.from(b))).toThrow(re);
    // An INTS attribute over the limit, packed.
    const packed: number[] = [];
    for (let i = 0; i <= ONNX_GRAPH_LIMITS.maxInts; i++) packed.push(1);
    const attr = [0x0a, 0x01, 0x61, 0x42, ...varint(packed.length), ...packed];
    const node = [0x22, 0x01, 0x41, 0x2a, ...varint(attr.length), ...attr];
    const graph = [0x0a, ...varint(node.length), ...node];
    expect(() => readOnnxGraph(Uint8Array.from([0x3a, ...varint(graph.length), ...graph]))).toThrow(
      /more than 4096 values/,
    );
    expect(() => readOnnxGraph('model' as unknown as Uint8Array)).toThrow(/Uint8Array or ArrayBuffer/);
  });
});

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
