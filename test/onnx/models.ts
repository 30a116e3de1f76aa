// The test models, built with model-builder.ts from seeded weights, each with a float64
// reference of the same network where the test compares numbers.
import { type Initializer, initializer, type OnnxNode, onnxModel, value } from './model-builder.ts';
import { conv2d, geluTanh, map, matmul, meanGroups, softmaxRows, uniform } from './reference.ts';

export interface TestModel {
  readonly bytes: Uint8Array;
}

const scalar = (name: string, v: number): Initializer =>
  initializer(name, 'float', [], new Float32Array([v]));

/**
 * MLP: x[batch,16] → MatMul+Add → GELU (tanh form, from Mul/Add/Tanh) → MatMul+Add → logits
 * → Softmax → probs. Outputs: probs, logits.
 */
export function mlp(seed = 1): TestModel & {
  readonly dims: { D: number; H: number; O: number };
  reference(x: Float32Array, batch: number): { probs: Float64Array; logits: Float64Array };
} {
  const D = 16;
  const H = 32;
  const O = 10;
  const w1 = uniform(seed, D * H, -0.5, 0.5);
  const b1 = uniform(seed + 1, H, -0.1, 0.1);
  const w2 = uniform(seed + 2, H * O, -0.5, 0.5);
  const b2 = uniform(seed + 3, O, -0.1, 0.1);
  const c0 = Math.fround(0.044715);
  const c1 = Math.fround(Math.sqrt(2 / Math.PI));
  const nodes: OnnxNode[] = [
    { opType: 'MatMul', inputs: ['x', 'w1'], outputs: ['xw1'] },
    { opType: 'Add', inputs: ['xw1', 'b1'], outputs: ['h'] },
    { opType: 'Mul', inputs: ['h', 'h'], outputs: ['h2'] },
    { opType: 'Mul', inputs: ['h2', 'h'], outputs: ['h3'] },
    { opType: 'Mul', inputs: ['h3', 'c0'], outputs: ['h3c'] },
    { opType: 'Add', inputs: ['h', 'h3c'], outputs: ['inner'] },
    { opType: 'Mul', inputs: ['inner', 'c1'], outputs: ['arg'] },
    { opType: 'Tanh', inputs: ['arg'], outputs: ['t'] },
    { opType: 'Add', inputs: ['t', 'one'], outputs: ['t1'] },
    { opType: 'Mul', inputs: ['h', 'half'], outputs: ['hh'] },
    { opType: 'Mul', inputs: ['hh', 't1'], outputs: ['g'] },
    { opType: 'MatMul', inputs: ['g', 'w2'], outputs: ['gw2'] },
    { opType: 'Add', inputs: ['gw2', 'b2'], outputs: ['logits'] },
    { opType: 'Softmax', inputs: ['logits'], outputs: ['probs'], attributes: { axis: -1 } },
  ];
  const bytes = onnxModel({
    name: 'mlp',
    nodes,
    inputs: [value('x', 'float', ['batch', D])],
    outputs: [value('probs', 'float', ['batch', O]), value('logits', 'float', ['batch', O])],
    initializers: [
      initializer('w1', 'float', [D, H], w1),
      initializer('b1', 'float', [H], b1),
      initializer('w2', 'float', [H, O], w2),
      initializer('b2', 'float', [O], b2),
      scalar('c0', c0),
      scalar('c1', c1),
      scalar('one', 1),
      scalar('half', 0.5),
    ],
    opsets: { '': 17 },
  });
  return {
    bytes,
    dims: { D, H, O },
    reference(x, batch) {
      const h = map(matmul(x, w1, batch, D, H, b1), geluTanh);
      const logits = matmul(h, w2, batch, H, O, b2);
      return { logits, probs: softmaxRows(logits, batch, O) };
    },
  };
}

/** Conv 3→4 (3×3, pad 1) + Relu + GlobalAveragePool + Flatten: x[batch,3,8,8] → y[batch,4]. */
export function convNet(seed = 11): TestModel & {
  readonly dims: { C: number; H: number; W: number; O: number };
  reference(x: Float32Array, batch: number): Float64Array;
} {
  const C = 3;
  const H = 8;
  const W = 8;
  const O = 4;
  const k = 3;
  const w = uniform(seed, O * C * k * k, -0.5, 0.5);
  const b = uniform(seed + 1, O, -0.1, 0.1);
  const bytes = onnxModel({
    name: 'conv',
    nodes: [
      {
        opType: 'Conv',
        inputs: ['x', 'w', 'b'],
        outputs: ['c'],
        attributes: { kernel_shape: [k, k], pads: [1, 1, 1, 1], strides: [1, 1] },
      },
      { opType: 'Relu', inputs: ['c'], outputs: ['r'] },
      { opType: 'GlobalAveragePool', inputs: ['r'], outputs: ['p'] },
      { opType: 'Flatten', inputs: ['p'], outputs: ['y'], attributes: { axis: 1 } },
    ],
    inputs: [value('x', 'float', ['batch', C, H, W])],
    outputs: [value('y', 'float', ['batch', O])],
    initializers: [initializer('w', 'float', [O, C, k, k], w), initializer('b', 'float', [O], b)],
    opsets: { '': 17 },
  });
  return {
    bytes,
    dims: { C, H, W, O },
    reference(x, batch) {
      const c = conv2d(x, w, b, { N: batch, C, H, W, O, k, pad: 1 });
      return meanGroups(
        map(c.y, (v) => Math.max(v, 0)),
        batch * O,
        c.H * c.W,
      );
    },
  };
}

/**
 * One attention head: x[batch,T,D] → Q,K,V = x·Wq, x·Wk, x·Wv → softmax(Q·Kᵀ/√D)·V.
 * Covers batched MatMul, Transpose and a 3-D Softmax.
 */
export function attention(seed = 21): TestModel & {
  readonly dims: { T: number; D: number };
  reference(x: Float32Array, batch: number): Float64Array;
} {
  const T = 6;
  const D = 8;
  const wq = uniform(seed, D * D, -0.5, 0.5);
  const wk = uniform(seed + 1, D * D, -0.5, 0.5);
  const wv = uniform(seed + 2, D * D, -0.5, 0.5);
  const scale = Math.fround(1 / Math.sqrt(D));
  const bytes = onnxModel({
    name: 'attention',
    nodes: [
      { opType: 'MatMul', inputs: ['x', 'wq'], outputs: ['q'] },
      { opType: 'MatMul', inputs: ['x', 'wk'], outputs: ['k'] },
      { opType: 'MatMul', inputs: ['x', 'wv'], outputs: ['v'] },
      { opType: 'Transpose', inputs: ['k'], outputs: ['kt'], attributes: { perm: [0, 2, 1] } },
      { opType: 'MatMul', inputs: ['q', 'kt'], outputs: ['s'] },
      { opType: 'Mul', inputs: ['s', 'scale'], outputs: ['ss'] },
      { opType: 'Softmax', inputs: ['ss'], outputs: ['p'], attributes: { axis: -1 } },
      { opType: 'MatMul', inputs: ['p', 'v'], outputs: ['y'] },
    ],
    inputs: [value('x', 'float', ['batch', T, D])],
    outputs: [value('y', 'float', ['batch', T, D])],
    initializers: [
      initializer('wq', 'float', [D, D], wq),
      initializer('wk', 'float', [D, D], wk),
      initializer('wv', 'float', [D, D], wv),
      scalar('scale', scale),
    ],
    opsets: { '': 17 },
  });
  return {
    bytes,
    dims: { T, D },
    reference(x, batch) {
      const y = new Float64Array(batch * T * D);
      for (let b = 0; b < batch; b++) {
        const xb = x.subarray(b * T * D, (b + 1) * T * D);
        const q = matmul(xb, wq, T, D, D);
        const k = matmul(xb, wk, T, D, D);
        const v = matmul(xb, wv, T, D, D);
        const s = new Float64Array(T * T);
        for (let i = 0; i < T; i++) {
          for (let j = 0; j < T; j++) {
            let acc = 0;
            for (let d = 0; d < D; d++) acc += q[i * D + d]! * k[j * D + d]!;
            s[i * T + j] = acc * scale;
          }
        }
        y.set(matmul(softmaxRows(s, T, T), v, T, T, D), b * T * D);
      }
      return y;
    },
  };
}

/** f16 both ways: h(f16) → Cast → hf(f32); a(f32) → Cast → af(f16). */
export function castF16(n = 8): TestModel {
  return {
    bytes: onnxModel({
      name: 'cast-f16',
      nodes: [
        { opType: 'Cast', inputs: ['h'], outputs: ['hf'], attributes: { to: 1 } },
        { opType: 'Cast', inputs: ['a'], outputs: ['af'], attributes: { to: 10 } },
      ],
      inputs: [value('h', 'float16', [n]), value('a', 'float', [n])],
      outputs: [value('hf', 'float', [n]), value('af', 'float16', [n])],
      opsets: { '': 17 },
    }),
  };
}

/** int32 and uint32: i → Add(i, i) → i2; u → Identity → u2. */
export function integers(): TestModel {
  return {
    bytes: onnxModel({
      name: 'integers',
      nodes: [
        { opType: 'Add', inputs: ['i', 'i'], outputs: ['i2'] },
        { opType: 'Identity', inputs: ['u'], outputs: ['u2'] },
      ],
      inputs: [value('i', 'int32', ['n']), value('u', 'uint32', ['n'])],
      outputs: [value('i2', 'int32', ['n']), value('u2', 'uint32', ['n'])],
      opsets: { '': 17 },
    }),
  };
}

/** int64 token ids: ids → ids + 1 (out, fits in i32) and ids · 2³³ (big, does not). */
export function int64Ids(): TestModel {
  return {
    bytes: onnxModel({
      name: 'int64',
      nodes: [
        { opType: 'Add', inputs: ['ids', 'one'], outputs: ['out'] },
        { opType: 'Mul', inputs: ['ids', 'big_scale'], outputs: ['big'] },
      ],
      inputs: [value('ids', 'int64', ['n'])],
      outputs: [value('out', 'int64', ['n']), value('big', 'int64', ['n'])],
      initializers: [
        initializer('one', 'int64', [], new BigInt64Array([1n])),
        initializer('big_scale', 'int64', [], new BigInt64Array([2n ** 33n])),
      ],
      opsets: { '': 17 },
    }),
  };
}

/** A float64 input (a dtype Hearth has not): x → Identity → y (Identity: every build has it). */
export function float64Input(): TestModel {
  return {
    bytes: onnxModel({
      nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
      inputs: [value('x', 'double', [4])],
      outputs: [value('y', 'double', [4])],
      opsets: { '': 17 },
    }),
  };
}

/** A bool output: x → Greater(x, 0) → pos. */
export function boolOutput(): TestModel {
  return {
    bytes: onnxModel({
      nodes: [{ opType: 'Greater', inputs: ['x', 'zero'], outputs: ['pos'] }],
      inputs: [value('x', 'float', [4])],
      outputs: [value('pos', 'bool', [4])],
      initializers: [scalar('zero', 0)],
      opsets: { '': 17 },
    }),
  };
}

/** A node whose operator does not exist. */
export function unknownOp(): TestModel {
  return {
    bytes: onnxModel({
      nodes: [
        { opType: 'Relu', inputs: ['x'], outputs: ['r'] },
        { opType: 'NoSuchOp', inputs: ['r'], outputs: ['y'] },
      ],
      inputs: [value('x', 'float', [4])],
      outputs: [value('y', 'float', [4])],
      opsets: { '': 17 },
    }),
  };
}

/**
 * MatMul of a[n,k] and b[m,4] with independent symbolic sizes: k ≠ m passes every declared
 * shape and fails inside ORT at run time.
 */
export function symbolicMatmul(): TestModel {
  return {
    bytes: onnxModel({
      nodes: [{ opType: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
      inputs: [value('a', 'float', ['n', 'k']), value('b', 'float', ['m', 4])],
      outputs: [value('y', 'float', ['n', 4])],
      opsets: { '': 17 },
    }),
  };
}

/** `layers` chained 256×256 MatMuls over x[rows,256]: slow enough to run past a small budget. */
export function heavy(layers = 8, size = 256): TestModel {
  const nodes: OnnxNode[] = [];
  const inits: Initializer[] = [];
  let prev = 'x';
  for (let i = 0; i < layers; i++) {
    inits.push(initializer(`w${i}`, 'float', [size, size], uniform(100 + i, size * size, -0.05, 0.05)));
    const out = i === layers - 1 ? 'y' : `h${i}`;
    nodes.push({ opType: 'MatMul', inputs: [prev, `w${i}`], outputs: [out] });
    prev = out;
  }
  return {
    bytes: onnxModel({
      name: 'heavy',
      nodes,
      inputs: [value('x', 'float', ['rows', size])],
      outputs: [value('y', 'float', ['rows', size])],
      initializers: inits,
      opsets: { '': 17 },
    }),
  };
}
