// Shape inference over a graph read by onnx-graph.ts: from the graph inputs' concrete shapes,
// each node's output shapes, for the operators whose FLOPs flops.ts counts. An operator it does
// not know leaves its outputs unknown (absent from the map); a node whose inputs contradict its
// operator is a HearthError('onnx/model') naming the node.
import { HearthError } from '../core/errors.ts';
import type { OnnxGraph, OnnxGraphNode } from './onnx-graph.ts';

/** Shapes known after inference: name → concrete dims (unknown names are absent). */
export type ShapeMap = ReadonlyMap<string, readonly number[]>;

const shapeFail = (node: OnnxGraphNode, message: string): HearthError =>
  new HearthError('onnx/model', `ONNX model: node ${node.name} (${node.opType}): ${message}`, {
    details: { node: node.name, opType: node.opType },
  });

/**
 * Element `i` of a list the node's own checks sized (a shape of a checked rank, an attribute of
 * a checked length); an 'onnx/model' error naming the node if it is not there.
 */
function item(node: OnnxGraphNode, xs: readonly number[], i: number, what: string): number {
  const v = xs[i];
  if (v === undefined) throw shapeFail(node, `${what} [${xs.join(', ')}] has no index ${i}.`);
  return v;
}

/** Both dims of a 2-D shape; an 'onnx/model' error naming the node for any other rank. */
function matrixDims(node: OnnxGraphNode, s: readonly number[], message: string): [number, number] {
  const [rows, cols] = s;
  if (s.length !== 2 || rows === undefined || cols === undefined) throw shapeFail(node, message);
  return [rows, cols];
}

/** The shapes when every one is known, else undefined. */
function allKnown(ins: readonly (readonly number[] | undefined)[]): (readonly number[])[] | undefined {
  const known = ins.filter((s): s is readonly number[] => s !== undefined);
  return known.length === ins.length ? known : undefined;
}

/** numpy broadcasting of two shapes; undefined when either is unknown. */
function broadcast(node: OnnxGraphNode, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw shapeFail(node, `shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast.`);
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

const axisOf = (node: OnnxGraphNode, axis: number, rank: number): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw shapeFail(node, `axis ${axis} is outside a rank-${rank} tensor.`);
  return a;
};

/** Output spatial size of a sliding window (Conv, pools), per the ONNX operator spec. */
function windowOut(
  node: OnnxGraphNode,
  spatial: readonly number[],
  kernel: readonly number[],
  ceil: boolean,
): number[] {
  const n = spatial.length;
  const at = (name: string, def: number, len: number) => {
    const v = node.attributes.get(name)?.ints ?? Array.from({ length: len }, () => def);
    if (v.length !== len) throw shapeFail(node, `${name} has ${v.length} values, expected ${len}.`);
    return v;
  };
  const strides = at('strides', 1, n);
  const dil = at('dilations', 1, n);
  const pads = at('pads', 0, 2 * n);
  const autoPad = node.attributes.get('auto_pad')?.s ?? 'NOTSET';
  return spatial.map((size, i) => {
    const s = item(node, strides, i, 'strides');
    const kernelSize = item(node, kernel, i, 'kernel_shape');
    const d = item(node, dil, i, 'dilations');
    const k = (kernelSize - 1) * d + 1;
    if (s < 1 || kernelSize < 1 || d < 1) throw shapeFail(node, 'strides, kernel and dilations must be ≥ 1.');
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(size / s);
    const padded =
      autoPad === 'VALID' ? size : size + item(node, pads, i, 'pads') + item(node, pads, i + n, 'pads');
    const span = padded - k;
    if (span < 0) throw shapeFail(node, `a kernel of ${k} does not fit a padded size of ${padded}.`);
    return (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  });
}

function matmulShape(node: OnnxGraphNode, a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0 || b.length === 0) throw shapeFail(node, 'MatMul of a scalar.');
  const a2 = a.length === 1 ? [1, ...a] : a;
  const b2 = b.length === 1 ? [...b, 1] : b;
  const k = item(node, a2, a2.length - 1, 'A');
  if (b2[b2.length - 2] !== k) {
    throw shapeFail(node, `inner dims differ: [${a.join(', ')}] × [${b.join(', ')}].`);
  }
  const batch = broadcast(node, a2.slice(0, -2), b2.slice(0, -2));
  return [
    ...batch,
    // a2 and b2 have rank ≥ 2: their last two dims are M × K and K × N.
    ...(a.length === 1 ? [] : a2.slice(-2, -1)),
    ...(b.length === 1 ? [] : b2.slice(-1)),
  ];
}

/** Output shape of one node from its inputs' shapes (and constant values), or undefined. */
function inferNode(
  node: OnnxGraphNode,
  shape: (name: string) => readonly number[] | undefined,
  ints: (name: string) => readonly number[] | undefined,
): number[] | undefined {
  const ins = node.inputs.map((n) => (n === '' ? undefined : shape(n)));
  const x = ins[0];
  const attr = node.attributes;
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined;
  if (SAME_SHAPE.has(node.opType)) return x ? [...x] : undefined;
  if (BROADCAST.has(node.opType)) {
    const known = allKnown(ins);
    if (ins.length === 0 || !known) return undefined;
    return known.reduce<number[]>((acc, s) => broadcast(node, acc, s), []);
  }
  switch (node.opType) {
    case 'MatMul':
      return x && ins[1] ? matmulShape(node, x, ins[1]) : undefined;
    case 'Gemm': {
      const b = ins[1];
      if (!x || !b) return undefined;
      const [x0, x1] = matrixDims(node, x, 'Gemm takes 2-D A and B.');
      const [b0, b1] = matrixDims(node, b, 'Gemm takes 2-D A and B.');
      const [m, ka] = attr.get('transA')?.i ? [x1, x0] : [x0, x1];
      const [kb, n] = attr.get('transB')?.i ? [b1, b0] : [b0, b1];
      if (ka !== kb) throw shapeFail(node, `inner dims differ: ${ka} and ${kb}.`);
      return [m, n];
    }
    case 'Conv': {
      const w = ins[1];
      if (!x || !w) return undefined;
      if (x.length < 3 || w.length !== x.length)
        throw shapeFail(node, 'Conv needs X and W of equal rank ≥ 3.');
      const group = attr.get('group')?.i ?? 1;
      if (group < 1 || item(node, x, 1, 'X') !== item(node, w, 1, 'W') * group) {
        throw shapeFail(node, `X has ${x[1]} channels; W expects ${w[1]} × group ${group}.`);
      }
      const kernel = attr.get('kernel_shape')?.ints ?? w.slice(2);
      if (kernel.length !== x.length - 2)
        throw shapeFail(node, 'kernel_shape does not match the spatial rank.');
      return [item(node, x, 0, 'X'), item(node, w, 0, 'W'), ...windowOut(node, x.slice(2), kernel, false)];
    }
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool': {
      if (!x) return undefined;
      const kernel = attr.get('kernel_shape')?.ints;
      if (!kernel || kernel.length !== x.length - 2)
        throw shapeFail(node, 'kernel_shape does not match the spatial rank.');
      const ceil = (attr.get('ceil_mode')?.i ?? 0) === 1;
      return [item(node, x, 0, 'X'), item(node, x, 1, 'X'), ...windowOut(node, x.slice(2), kernel, ceil)];
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool':
      if (!x) return undefined;
      if (x.length < 2) throw shapeFail(node, 'expects [N, C, …].');
      return [item(node, x, 0, 'X'), item(node, x, 1, 'X'), ...x.slice(2).map(() => 1)];
    case 'Transpose': {
      if (!x) return undefined;
      const perm = attr.get('perm')?.ints ?? x.map((_, i) => x.length - 1 - i);
      if (perm.length !== x.length || new Set(perm).size !== perm.length) {
        throw shapeFail(node, `perm [${perm.join(', ')}] is not a permutation of ${x.length} axes.`);
      }
      return perm.map((p) => item(node, x, axisOf(node, p, x.length), 'input'));
    }
    case 'Flatten': {
      if (!x) return undefined;
      const a = attr.get('axis')?.i ?? 1;
      const axis = a < 0 ? a + x.length : a;
      if (axis < 0 || axis > x.length) throw shapeFail(node, `axis ${a} is outside rank ${x.length}.`);
      const prod = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
      return [prod(x.slice(0, axis)), prod(x.slice(axis))];
    }
    case 'Reshape': {
      const target = node.inputs[1] ? ints(node.inputs[1]) : undefined;
      if (!x || !target) return undefined;
      const total = x.reduce((p, d) => p * d, 1);
      const allowZero = (attr.get('allowzero')?.i ?? 0) === 1;
      const out = target.map((d, i) => (d === 0 && !allowZero ? x[i] : d));
      if (out.some((d) => d === undefined || d < -1) || out.filter((d) => d === -1).length > 1) {
        throw shapeFail(node, `shape [${target.join(', ')}] is not a valid Reshape target.`);
      }
      const known = (out as number[]).reduce((p, d) => (d === -1 ? p : p * d), 1);
      const filled = (out as number[]).map((d) => (d === -1 ? (known === 0 ? 0 : total / known) : d));
      if (filled.some((d) => !Number.isInteger(d)) || filled.reduce((p, d) => p * d, 1) !== total) {
        throw shapeFail(node, `cannot reshape [${x.join(', ')}] to [${target.join(', ')}].`);
      }
      return filled;
    }
    case 'Concat': {
      const [first, ...rest] = allKnown(ins) ?? [];
      if (!first) return undefined;
      const axis = axisOf(node, attr.get('axis')?.i ?? 0, first.length);
      const out = [...first];
      for (const s of rest) {
        if (s.length !== first.length || s.some((d, i) => i !== axis && d !== first[i])) {
          throw shapeFail(node, 'inputs differ outside the concatenation axis.');
        }
        out[axis] = item(node, out, axis, 'output') + item(node, s, axis, 'input');
      }
      return out;
    }
    case 'Squeeze':
    case 'Unsqueeze': {
      if (!x) return undefined;
      const axes = attr.get('axes')?.ints ?? (node.inputs[1] ? ints(node.inputs[1]) : undefined);
      if (node.opType === 'Squeeze') {
        if (!axes) return x.filter((d) => d !== 1);
        const drop = new Set(axes.map((a) => axisOf(node, a, x.length)));
        return x.filter((_, i) => !drop.has(i));
      }
      if (!axes) return undefined;
      const rank = x.length + axes.length;
      const add = new Set(axes.map((a) => axisOf(node, a, rank)));
      if (add.size !== axes.length) throw shapeFail(node, `axes [${axes.join(', ')}] name an axis twice.`);
      const out: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(add.has(i) ? 1 : item(node, x, j++, 'input'));
      return out;
    }
    case 'ReduceMean':
    case 'ReduceSum':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceProd': {
      if (!x) return undefined;
      const axes = attr.get('axes')?.ints ?? (node.inputs[1] ? ints(node.inputs[1]) : undefined);
      const keep = (attr.get('keepdims')?.i ?? 1) === 1;
      const set = new Set((axes ?? x.map((_, i) => i)).map((a) => axisOf(node, a, x.length)));
      return keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i));
    }
    case 'Constant': {
      const t = attr.get('value')?.t;
      if (t) return [...t.dims];
      const ints = attr.get('value_ints')?.ints;
      if (ints) return [ints.length];
      return attr.get('value_int') ? [] : undefined;
    }
    default:
      return undefined;
  }
}

/** One-input element-wise functions: the output has the input's shape (flops.ts counts one FLOP per element). */
export const UNARY_ELEMENTWISE_OPS: readonly string[] = [
  'Relu',
  'LeakyRelu',
  'Sigmoid',
  'HardSigmoid',
  'Tanh',
  'Gelu',
  'Erf',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Neg',
  'Abs',
  'Elu',
  'Selu',
  'Celu',
  'Softplus',
  'Softsign',
  'HardSwish',
  'Mish',
  'Sin',
  'Cos',
];

/** Operators whose (first) output has the shape of their first input. */
const SAME_SHAPE = new Set([
  ...UNARY_ELEMENTWISE_OPS,
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Not',
  'Clip',
  'Cast',
  'Identity',
  'Dropout',
  'Softmax',
  'LogSoftmax',
  'LayerNormalization',
  'BatchNormalization',
  'InstanceNormalization',
  'IsNaN',
  'IsInf',
  'CastLike',
]);
/** Operators whose output is the numpy broadcast of all their inputs. */
const BROADCAST = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'PRelu',
  'Max',
  'Min',
  'Sum',
  'Mean',
  'Equal',
  'Greater',
  'Less',
  'GreaterOrEqual',
  'LessOrEqual',
  'And',
  'Or',
  'Xor',
  'Where',
  'Mod',
]);

/**
 * Shapes of the graph's values for concrete input shapes, in node order. Symbolic dims of the
 * graph's declared inputs are bound by `inputs`, so a declared value_info like ['batch', 10]
 * resolves where inference has no rule. A shape no rule or declaration gives stays unknown (the
 * FLOP count says which node it needed). Throws HearthError('onnx/model') for shapes that
 * contradict each other (MatMul inner dims, broadcasting, a Conv's channels).
 *
 * @example
 * const shapes = inferShapes(readOnnxGraph(bytes), { x: [8, 16] });
 * shapes.get('logits'); // [8, 10]
 */
export function inferShapes(graph: OnnxGraph, inputs: Readonly<Record<string, readonly number[]>>): ShapeMap {
  const shapes = new Map<string, readonly number[]>();
  const consts = new Map<string, readonly number[]>();
  const symbols = new Map<string, number>();
  for (const v of graph.inputs) {
    const given = inputs[v.name];
    if (!given || !v.shape) continue;
    if (v.shape.length !== given.length) {
      throw new HearthError(
        'onnx/model',
        `ONNX model: input ${v.name} is declared with rank ${v.shape.length}, the job gives rank ${given.length}.`,
        { details: { input: v.name } },
      );
    }
    v.shape.forEach((d, i) => {
      const size = given[i]; // same rank: checked above
      if (typeof d === 'string' && size !== undefined && !symbols.has(d)) symbols.set(d, size);
    });
  }
  const declared = new Map<string, readonly number[]>();
  for (const v of [...graph.valueInfo, ...graph.outputs]) {
    if (!v.shape) continue;
    const dims = v.shape.map((d) => (typeof d === 'number' ? d : d === null ? undefined : symbols.get(d)));
    if (dims.every((d) => d !== undefined)) declared.set(v.name, dims as number[]);
  }
  for (const [name, t] of graph.initializers) {
    shapes.set(name, t.dims);
    if (t.ints) consts.set(name, t.ints);
  }
  for (const [name, dims] of Object.entries(inputs)) shapes.set(name, dims);
  for (const v of graph.inputs) {
    if (shapes.has(v.name) || !v.shape) continue;
    const dims = v.shape.map((d) => (typeof d === 'number' ? d : d === null ? undefined : symbols.get(d)));
    if (dims.every((d) => d !== undefined)) shapes.set(v.name, dims as number[]);
  }
  for (const node of graph.nodes) {
    const out = inferNode(
      node,
      (n) => shapes.get(n),
      (n) => consts.get(n),
    );
    const first = node.outputs[0];
    if (first === undefined || first === '') continue;
    const shape = out ?? declared.get(first);
    if (shape) shapes.set(first, shape);
    if (node.opType === 'Constant') {
      const a = node.attributes;
      const ints = a.get('value')?.t?.ints ?? a.get('value_ints')?.ints;
      const one = a.get('value_int')?.i;
      if (ints) consts.set(first, ints);
      else if (one !== undefined) consts.set(first, [one]);
    }
    for (const extra of node.outputs.slice(1)) {
      const d = declared.get(extra);
      if (d) shapes.set(extra, d);
    }
  }
  return shapes;
}
