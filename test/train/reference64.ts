// Float64 references of the train/ models' mean loss, written plainly from the layout in
// src/train/config.ts: the oracle the GPU forward and (through central differences) the GPU
// backward are checked against.
import { type MlpConfig, paramLayout, type TransformerConfig } from '../../src/train/config.ts';

type Get = (name: string) => Float64Array;

function getter(cfg: TransformerConfig | MlpConfig, theta: ArrayLike<number>): Get {
  const m = new Map<string, Float64Array>();
  for (const e of paramLayout(cfg)) {
    const a = new Float64Array(e.size);
    for (let i = 0; i < e.size; i++) a[i] = theta[e.offset + i] as number;
    m.set(e.name, a);
  }
  return (n) => {
    const a = m.get(n);
    if (!a) throw new Error(`no parameter ${n}`);
    return a;
  };
}

/** y [N, O] = x [N, I] · w [I, O] + b [O]. */
function linear(
  x: Float64Array,
  N: number,
  I: number,
  w: Float64Array,
  O: number,
  b?: Float64Array,
): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let s = b ? (b[o] as number) : 0;
      for (let i = 0; i < I; i++) s += (x[n * I + i] as number) * (w[i * O + o] as number);
      y[n * O + o] = s;
    }
  return y;
}

function layernorm(x: Float64Array, N: number, C: number, g: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[n * C + c] as number;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += ((x[n * C + c] as number) - mean) ** 2;
    const r = 1 / Math.sqrt(v / C + 1e-5);
    for (let c = 0; c < C; c++)
      y[n * C + c] = ((x[n * C + c] as number) - mean) * r * (g[c] as number) + (b[c] as number);
  }
  return y;
}

const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

function crossEntropy(logits: Float64Array, N: number, V: number, targets: ArrayLike<number>): number {
  let total = 0;
  for (let n = 0; n < N; n++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[n * V + v] as number);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp((logits[n * V + v] as number) - max);
    total += Math.log(s) + max - (logits[n * V + (targets[n] as number)] as number);
  }
  return total / N;
}

/** Mean next-token loss of the transformer on `tokens` (ids [B·T]) against `targets`. */
export function transformerLoss64(
  cfg: TransformerConfig,
  theta: ArrayLike<number>,
  tokens: ArrayLike<number>,
  targets: ArrayLike<number>,
): number {
  return crossEntropy(transformerLogits64(cfg, theta, tokens), tokens.length, 256, targets);
}

/** The transformer's logits [B·T, 256] on `tokens` (ids [B·T]). */
export function transformerLogits64(
  cfg: TransformerConfig,
  theta: ArrayLike<number>,
  tokens: ArrayLike<number>,
): Float64Array {
  const p = getter(cfg, theta);
  const C = cfg.width;
  const T = cfg.context;
  const H = cfg.heads;
  const D = C / H;
  const M = (cfg.mlpRatio ?? 4) * C;
  const N = tokens.length;
  const B = N / T;
  const wte = p('wte');
  const wpe = p('wpe');
  let x = new Float64Array(N * C);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      x[n * C + c] = (wte[(tokens[n] as number) * C + c] as number) + (wpe[(n % T) * C + c] as number);
  for (let l = 0; l < cfg.depth; l++) {
    const n_ = `h${l}.`;
    const y1 = layernorm(x, N, C, p(`${n_}ln1.g`), p(`${n_}ln1.b`));
    const q = linear(y1, N, C, p(`${n_}wq`), C, p(`${n_}bq`));
    const k = linear(y1, N, C, p(`${n_}wk`), C, p(`${n_}bk`));
    const v = linear(y1, N, C, p(`${n_}wv`), C, p(`${n_}bv`));
    const a = new Float64Array(N * C);
    const s = new Float64Array(T);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let t = 0; t < T; t++) {
          let max = Number.NEGATIVE_INFINITY;
          for (let u = 0; u <= t; u++) {
            let dot = 0;
            for (let d = 0; d < D; d++)
              dot += (q[(b * T + t) * C + h * D + d] as number) * (k[(b * T + u) * C + h * D + d] as number);
            s[u] = dot / Math.sqrt(D);
            max = Math.max(max, s[u] as number);
          }
          let z = 0;
          for (let u = 0; u <= t; u++) z += s[u] = Math.exp((s[u] as number) - max);
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let u = 0; u <= t; u++) acc += (s[u] as number) * (v[(b * T + u) * C + h * D + d] as number);
            a[(b * T + t) * C + h * D + d] = acc / z;
          }
        }
    const o = linear(a, N, C, p(`${n_}wo`), C, p(`${n_}bo`));
    const xMid = x.map((xi, i) => xi + (o[i] as number));
    const y2 = layernorm(xMid, N, C, p(`${n_}ln2.g`), p(`${n_}ln2.b`));
    const hh = linear(y2, N, C, p(`${n_}w1`), M, p(`${n_}b1`)).map(gelu);
    const m = linear(hh, N, M, p(`${n_}w2`), C, p(`${n_}b2`));
    x = xMid.map((xi, i) => xi + (m[i] as number));
  }
  const yf = layernorm(x, N, C, p('lnf.g'), p('lnf.b'));
  return linear(yf, N, C, p('head'), 256);
}

/** Mean loss of the MLP classifier on `features` [rows · inputs] against class `targets`. */
export function mlpLoss64(
  cfg: MlpConfig,
  theta: ArrayLike<number>,
  features: ArrayLike<number>,
  targets: ArrayLike<number>,
): number {
  const p = getter(cfg, theta);
  const N = targets.length;
  const widths = [cfg.inputs, ...cfg.hidden, cfg.classes];
  let x: Float64Array = Float64Array.from(features);
  for (let i = 0; i + 1 < widths.length; i++) {
    x = linear(x, N, widths[i] as number, p(`l${i}.w`), widths[i + 1] as number, p(`l${i}.b`));
    if (i + 2 < widths.length) x = x.map((u) => Math.max(u, 0));
  }
  return crossEntropy(x, N, cfg.classes, targets);
}

/** Central differences of `loss` at every element of θ, in float64 (step h). */
export function centralDifferences(
  theta: Float32Array,
  loss: (t: Float64Array) => number,
  h = 1e-5,
): Float64Array {
  const t = Float64Array.from(theta);
  const g = new Float64Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const x = t[i] as number;
    t[i] = x + h;
    const up = loss(t);
    t[i] = x - h;
    const down = loss(t);
    t[i] = x;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}
