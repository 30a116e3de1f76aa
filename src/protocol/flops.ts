// The published credit formula (DESIGN.md invariant 5: credits are a deterministic function of
// validated work): credit = FLOPs of the validated shard × the job's creditRate.
//
// Where the FLOPs come from:
// - `wgsl`: the kernel manifest declares them (`flopsPerShard`); a WGSL kernel's work cannot be
//   read off its source.
// - `onnx`: the hub counts them from the model's graph at submit time (`countOnnxFlops`) for
//   every batch size the job's shards and honeypots have, and stores the table in the job's
//   manifest (`flopsByRows`). A counted value always wins: a declared `flopsPerShard` is ignored
//   for credit, and is only the fallback when the graph cannot be counted (a shape that neither
//   inference nor the model's declared value_info gives).
//
// The per-node table (ONNX_FLOPS_TABLE/1), evaluated with the shard's rows as the batch input's
// dim 0 and the job's shapes for every other input:
// | operator | FLOPs |
// | MatMul | 2·M·N·K per matrix product (× broadcast batch) |
// | Gemm | 2·M·N·K |
// | Conv | 2·Cout·(Cin/group)·kH·kW·Hout·Wout per batch item (any spatial rank) |
// | Add Sub Mul Div Pow Max Min Sum Mean PRelu, Relu LeakyRelu Sigmoid HardSigmoid Tanh Gelu Erf |
// |   Exp Log Sqrt Reciprocal Neg Abs Elu Selu Celu Softplus Softsign HardSwish Mish Sin Cos Clip | 1 per output element |
// | Softmax, LogSoftmax | 5 per output element |
// | LayerNormalization | 8 per output element |
// | anything else (reshapes, pools, reductions, casts, other domains, control flow) | 0 |
import { HearthError } from '../core/errors.ts';
import { batchOf, type OnnxManifest } from './kinds/onnx.ts';
import { MANIFEST_LIMITS } from './manifest.ts';
import { type OnnxGraph, type OnnxGraphNode, readOnnxGraph } from './onnx-graph.ts';
import { inferShapes, type ShapeMap, UNARY_ELEMENTWISE_OPS } from './onnx-shapes.ts';

/** Names the formula a job's counted FLOPs were made with, so a later table never reprices them. */
export const ONNX_FLOPS_FORMULA = 'onnx-graph/1';

const ONE_PER_ELEMENT = new Set([
  'Add',
  'Sub',
  'Mul',
  'Div',
  'Pow',
  'Max',
  'Min',
  'Sum',
  'Mean',
  'PRelu',
  ...UNARY_ELEMENTWISE_OPS,
  'Clip',
]);
const PER_ELEMENT: ReadonlyMap<string, number> = new Map([
  ...[...ONE_PER_ELEMENT].map((op) => [op, 1] as const),
  ['Softmax', 5],
  ['LogSoftmax', 5],
  ['LayerNormalization', 8],
]);

const elements = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

/** FLOPs of one node by the table above; throws 'onnx/unsupported' when a shape it needs is unknown. */
function nodeFlops(node: OnnxGraphNode, shapes: ShapeMap): number {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return 0;
  const counted = node.opType === 'MatMul' || node.opType === 'Gemm' || node.opType === 'Conv';
  const per = PER_ELEMENT.get(node.opType);
  if (!counted && per === undefined) return 0;
  const need = (name: string | undefined, what: string): readonly number[] => {
    const s = name ? shapes.get(name) : undefined;
    if (!s) {
      throw new HearthError(
        'onnx/unsupported',
        `cannot count the FLOPs of node ${node.name} (${node.opType}): the shape of its ${what} ` +
          `${name ? `"${name}" ` : ''}is not known from the graph; declare manifest.flopsPerShard instead.`,
        { details: { node: node.name, opType: node.opType, value: name } },
      );
    }
    return s;
  };
  const out = need(node.outputs[0], 'output');
  if (per !== undefined) return per * elements(out);
  if (node.opType === 'MatMul') {
    const a = need(node.inputs[0], 'input');
    return 2 * elements(out) * (a[a.length - 1] ?? 1);
  }
  if (node.opType === 'Gemm') {
    const a = need(node.inputs[0], 'input');
    const k = node.attributes.get('transA')?.i ? a[0] : a[1];
    if (k === undefined) {
      throw new HearthError(
        'onnx/unsupported',
        `cannot count the FLOPs of node ${node.name} (Gemm): its input has shape [${a.join(', ')}], not a matrix; declare manifest.flopsPerShard instead.`,
        { details: { node: node.name, opType: node.opType, value: node.inputs[0] } },
      );
    }
    return 2 * elements(out) * k;
  }
  // Conv: every output element is a dot product over (Cin/group)·kernel taps.
  const w = need(node.inputs[1], 'weight');
  return 2 * elements(out) * elements(w.slice(1));
}

/**
 * FLOPs of one run of the graph for these input shapes, by the published table (see the top of
 * flops.ts). Throws HearthError('onnx/model') for contradicting shapes and 'onnx/unsupported'
 * when a counted node's shape cannot be known.
 *
 * @example
 * countOnnxFlops(readOnnxGraph(bytes), { x: [8, 16] }); // 2·8·16·32 + … for an MLP
 */
export function countOnnxFlops(
  graph: OnnxGraph,
  inputs: Readonly<Record<string, readonly number[]>>,
): number {
  const shapes = inferShapes(graph, inputs);
  let total = 0;
  for (const node of graph.nodes) total += nodeFlops(node, shapes);
  // Dims come from untrusted bytes: a product past this is a corrupt model, not a real workload.
  if (!(total <= MAX_COUNTED_FLOPS)) {
    throw new HearthError(
      'onnx/unsupported',
      `the graph counts ${total} FLOPs per run, over the ${MAX_COUNTED_FLOPS} a shard may be credited; check the model's shapes.`,
      { details: { flops: total } },
    );
  }
  return total;
}

/** The most FLOPs one shard can be credited: the same bound as declared FLOPs. */
const MAX_COUNTED_FLOPS = MANIFEST_LIMITS.maxFlopsPerShard;

/** FLOPs by batch rows for an ONNX job, as the hub stores them in the job's manifest. */
export interface CountedFlops {
  readonly formula: typeof ONNX_FLOPS_FORMULA;
  /** rows of the batch input (as a decimal string) → FLOPs of a shard with that many rows. */
  readonly byRows: Readonly<Record<string, number>>;
}

/**
 * Counts an ONNX job's FLOPs from its model bytes for every batch size its shards and honeypots
 * have (the full shard, a shorter last one, each honeypot batch): at most a few graph walks, once
 * per job. Throws HearthError('onnx/model') for a malformed model and 'onnx/unsupported' when the
 * graph cannot be counted.
 *
 * @example
 * const m = { ...manifest, flopsByRows: countJobFlops(manifest, modelBytes) };
 */
export function countJobFlops(m: OnnxManifest, model: Uint8Array | ArrayBuffer): CountedFlops {
  const graph = readOnnxGraph(model);
  const byRows: Record<string, number> = {};
  const count = (inputs: OnnxManifest['inputs'], rows: number) => {
    if (byRows[rows] !== undefined) return;
    const shapes: Record<string, readonly number[]> = {};
    for (const [name, t] of Object.entries(inputs)) {
      shapes[name] = name === m.batchInput ? [rows, ...t.shape.slice(1)] : t.shape;
    }
    byRows[rows] = countOnnxFlops(graph, shapes);
  };
  const total = batchOf(m).rows;
  count(m.inputs, Math.min(total, m.shardSize));
  if (total % m.shardSize !== 0) count(m.inputs, total % m.shardSize);
  for (const h of m.honeypots ?? []) count(h.inputs, h.inputs[m.batchInput]?.shape[0] ?? 0);
  return { formula: ONNX_FLOPS_FORMULA, byRows };
}

// Credit for a validated shard dispatches on its kind (each kind module says what a shard is
// worth): re-exported here, beside the formula.
export { flopsPerShard, shardCredit } from './kinds/index.ts';
