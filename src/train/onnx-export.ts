// The byte-level transformer as an ONNX model (opset 17, default domain only), written with
// onnx/model-builder.ts: what a trained θ leaves the project as, for onnxruntime, netron or
// Python. The graph is transformer.ts's forward op for op, with the kernels' constants:
//   x = wte[tokens] + wpe[0:T]
//   per block: y = LayerNormalization(x; ε 1e-5)            (biased variance, as layernorm.wgsl)
//              q, k, v = y·W + b, split into H heads of D = C/H
//              a = softmax(q·kᵀ · 1/√D + causal mask) · v  (mask: 0 on and below the diagonal,
//                                                           MASKED above: exp underflows to 0)
//              x = x + a·wo + bo
//              x = x + gelu(LayerNormalization(x)·w1 + b1)·w2 + b2
//                  gelu(h) = 0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³)))   (tanh form)
//   logits = LayerNormalization(x)·head                     (untied from wte)
// Input `tokens` int32 [batch, T], output `logits` f32 [batch, T, 256]; batch and T are symbolic,
// T ≤ context (wpe and the mask are sliced to T at run time). Initializers carry θ's tensors under
// their layout names (config.ts), so the model reads like the layout.
import { HearthError } from '../core/errors.ts';
import { type Initializer, initializer, type OnnxNode, onnxModel, value } from '../onnx/model-builder.ts';
import { BYTE_VOCAB, paramCount, paramLayout, type TransformerConfig } from './config.ts';

/** The ONNX opset the exported model imports (LayerNormalization needs 17). */
export const EXPORT_OPSET = 17;
/** layernorm.wgsl's default ε, which transformer.ts uses. */
const LN_EPS = 1e-5;
/** Added to masked attention scores: far below any real score, finite so no inf − inf appears. */
const MASKED = -1e9;

/**
 * An ONNX model computing the transformer's logits with parameters `theta` (the flat layout of
 * config.ts). A config that is not a transformer is a 'train/config' error; a θ of the wrong
 * length a 'train/layout' error.
 *
 * @example
 * writeFileSync('model.onnx', exportTransformerOnnx(cfg, await trainer.readTheta()));
 * // python: onnxruntime.InferenceSession('model.onnx').run(None, {'tokens': ids.astype('int32')})
 */
export function exportTransformerOnnx(cfg: TransformerConfig, theta: Float32Array): Uint8Array {
  if (cfg?.kind !== 'transformer') {
    throw new HearthError(
      'train/config',
      `ONNX export needs a transformer config, got kind ${JSON.stringify(cfg?.kind)}.`,
      {
        details: { kind: cfg?.kind },
      },
    );
  }
  const n = paramCount(cfg);
  if (!(theta instanceof Float32Array) || theta.length !== n) {
    throw new HearthError(
      'train/layout',
      `θ must be a Float32Array of ${n} elements (the model's parameter count), got ${theta?.length}.`,
      { details: { expected: n, got: theta?.length } },
    );
  }
  const C = cfg.width;
  const H = cfg.heads;
  const D = C / H;
  const Tmax = cfg.context;
  const inits: Initializer[] = [];
  for (const e of paramLayout(cfg)) {
    inits.push(initializer(e.name, 'float', e.shape, theta.subarray(e.offset, e.offset + e.size)));
  }
  const i64 = (name: string, v: readonly number[]) =>
    inits.push(initializer(name, 'int64', [v.length], BigInt64Array.from(v, BigInt)));
  const f32 = (name: string, v: number) => inits.push(initializer(name, 'float', [], Float32Array.of(v)));
  i64('c/zero', [0]);
  i64('c/zeros2', [0, 0]);
  i64('c/axes01', [0, 1]);
  i64('c/heads', [0, 0, H, D]);
  i64('c/merge', [0, 0, C]);
  f32('c/scale', 1 / Math.sqrt(D));
  f32('c/half', 0.5);
  f32('c/one', 1);
  f32('c/gelu.a', 0.044715);
  f32('c/gelu.c', Math.sqrt(2 / Math.PI));
  const mask = new Float32Array(Tmax * Tmax);
  for (let t = 0; t < Tmax; t++) for (let u = t + 1; u < Tmax; u++) mask[t * Tmax + u] = MASKED;
  inits.push(initializer('c/causal', 'float', [Tmax, Tmax], mask));

  const nodes: OnnxNode[] = [];
  const op = (
    opType: string,
    inputs: readonly string[],
    out: string,
    attributes?: OnnxNode['attributes'],
  ): string => {
    nodes.push({ opType, inputs, outputs: [out], name: out, ...(attributes ? { attributes } : {}) });
    return out;
  };
  const layernorm = (x: string, p: string, out: string) =>
    op('LayerNormalization', [x, `${p}.g`, `${p}.b`], out, { axis: -1, epsilon: { float: LN_EPS } });
  const linear = (x: string, w: string, b: string, out: string) =>
    op('Add', [op('MatMul', [x, w], `${out}.mm`), b], out);

  // T from the input, and wpe and the mask cut to it.
  const T = op('Shape', ['tokens'], 'T', { start: 1, end: 2 });
  const pos = op('Slice', ['wpe', 'c/zero', T, 'c/zero'], 'pos');
  const TT = op('Concat', [T, T], 'TT', { axis: 0 });
  const causal = op('Slice', ['c/causal', 'c/zeros2', TT, 'c/axes01'], 'mask');
  let x = op('Add', [op('Gather', ['wte', 'tokens'], 'emb', { axis: 0 }), pos], 'x0');
  for (let l = 0; l < cfg.depth; l++) {
    const p = `h${l}`;
    const y1 = layernorm(x, `${p}.ln1`, `${p}/ln1`);
    // [B, T, C] → [B, T, H, D] → [B, H, T, D] (k: [B, H, D, T], ready for q·kᵀ).
    const heads = (w: string, perm: number[]) =>
      op(
        'Transpose',
        [op('Reshape', [linear(y1, `${p}.w${w}`, `${p}.b${w}`, `${p}/${w}`), 'c/heads'], `${p}/${w}.split`)],
        `${p}/${w}.heads`,
        { perm },
      );
    const q = heads('q', [0, 2, 1, 3]);
    const kT = heads('k', [0, 2, 3, 1]);
    const v = heads('v', [0, 2, 1, 3]);
    const s = op('Mul', [op('MatMul', [q, kT], `${p}/qk`), 'c/scale'], `${p}/scores`);
    const att = op('Softmax', [op('Add', [s, causal], `${p}/masked`)], `${p}/att`, { axis: -1 });
    const oh = op('MatMul', [att, v], `${p}/oh`);
    const a = op('Reshape', [op('Transpose', [oh], `${p}/o.t`, { perm: [0, 2, 1, 3] }), 'c/merge'], `${p}/a`);
    const xMid = op('Add', [x, linear(a, `${p}.wo`, `${p}.bo`, `${p}/o`)], `${p}/xmid`);
    const hPre = linear(layernorm(xMid, `${p}.ln2`, `${p}/ln2`), `${p}.w1`, `${p}.b1`, `${p}/hpre`);
    const h = gelu(op, hPre, `${p}/gelu`);
    x = op('Add', [xMid, linear(h, `${p}.w2`, `${p}.b2`, `${p}/m`)], `${p}/out`);
  }
  op('MatMul', [layernorm(x, 'lnf', 'lnf'), 'head'], 'logits');
  return onnxModel({
    producer: 'hearth',
    name: `hearth-transformer-C${C}-L${cfg.depth}-H${H}-T${Tmax}`,
    nodes,
    inputs: [value('tokens', 'int32', ['batch', 'T'])],
    outputs: [value('logits', 'float', ['batch', 'T', BYTE_VOCAB])],
    initializers: inits,
    opsets: { '': EXPORT_OPSET },
  });
}

/** gelu's tanh form from elementwise ops (ONNX's own Gelu needs opset 20). */
function gelu(
  op: (opType: string, inputs: readonly string[], out: string) => string,
  h: string,
  p: string,
): string {
  const h3 = op('Mul', [op('Mul', [h, h], `${p}.h2`), h], `${p}.h3`);
  const inner = op('Add', [h, op('Mul', [h3, 'c/gelu.a'], `${p}.ah3`)], `${p}.inner`);
  const t = op('Tanh', [op('Mul', [inner, 'c/gelu.c'], `${p}.u`)], `${p}.tanh`);
  const halfH = op('Mul', [h, 'c/half'], `${p}.half`);
  return op('Mul', [halfH, op('Add', [t, 'c/one'], `${p}.1pt`)], p);
}
