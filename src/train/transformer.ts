// The decoder-only transformer's forward and explicit backward on kernels/ (layout and names in
// config.ts). Everything is recorded into the caller's Recorder; every kernel it uses sums in a
// fixed order without atomics, so one θ and one batch give the same bits on one adapter.
import type { Recorder } from '../gpu/recorder.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import {
  activationBackward,
  add,
  causalAttention,
  causalAttentionBackward,
  embedding,
  embeddingBackward,
  gelu,
  layernormBackward,
  layernormWithStats,
  matmul,
  matmulBackward,
  softmaxCrossEntropy,
  sumRows,
  transpose,
} from '../kernels/index.ts';
import { BYTE_VOCAB, type TransformerConfig } from './config.ts';
import type { ForwardBackward, GpuBatch, Params, Temps } from './model-types.ts';

interface LayerCache {
  x: GpuTensor;
  y1: GpuTensor;
  mean1: GpuTensor;
  rstd1: GpuTensor;
  qh: GpuTensor;
  kh: GpuTensor;
  vh: GpuTensor;
  oh: GpuTensor;
  a: GpuTensor;
  xMid: GpuTensor;
  y2: GpuTensor;
  mean2: GpuTensor;
  rstd2: GpuTensor;
  hPre: GpuTensor;
  h: GpuTensor;
}

/**
 * Records the loss of `batch` (inputs: token ids [B·T] i32, targets [B·T] i32) and, when `grads`
 * is given, the gradient of the mean loss into it (one tensor per parameter name).
 */
export async function transformerStep(
  rec: Recorder,
  cfg: TransformerConfig,
  P: Params,
  batch: GpuBatch,
  tmp: Temps,
  grads: Map<string, GpuTensor> | null,
): Promise<ForwardBackward> {
  const C = cfg.width;
  const T = cfg.context;
  const H = cfg.heads;
  const D = C / H;
  const B = batch.rows / T;
  const N = batch.rows;
  const k = (t: GpuTensor) => tmp.keep(t);
  const p = (name: string) => P.get(name);
  // [N, C] → [B, H, T, D] and back.
  const toHeads = async (x: GpuTensor) => k(await transpose(rec, x.reshape([B, T, H, D]), [0, 2, 1, 3]));
  const fromHeads = async (x: GpuTensor) => k(await transpose(rec, x, [0, 2, 1, 3])).reshape([N, C]);

  const emb = k(await embedding(rec, p('wte'), batch.inputs));
  let x = k(await add(rec, emb.reshape([B, T, C]), p('wpe'))).reshape([N, C]);
  const layers: LayerCache[] = [];
  for (let l = 0; l < cfg.depth; l++) {
    const n = `h${l}.`;
    const ln1 = await layernormWithStats(rec, x, p(`${n}ln1.g`), p(`${n}ln1.b`));
    const y1 = k(ln1.y);
    const proj = async (w: string) =>
      toHeads(k(await matmul(rec, y1, p(`${n}w${w}`), { bias: p(`${n}b${w}`) })));
    const qh = await proj('q');
    const kh = await proj('k');
    const vh = await proj('v');
    const oh = k(await causalAttention(rec, qh, kh, vh));
    const a = await fromHeads(oh);
    const o = k(await matmul(rec, a, p(`${n}wo`), { bias: p(`${n}bo`) }));
    const xMid = k(await add(rec, x, o));
    const ln2 = await layernormWithStats(rec, xMid, p(`${n}ln2.g`), p(`${n}ln2.b`));
    const hPre = k(await matmul(rec, k(ln2.y), p(`${n}w1`), { bias: p(`${n}b1`) }));
    const h = k(await gelu(rec, hPre));
    const m = k(await matmul(rec, h, p(`${n}w2`), { bias: p(`${n}b2`) }));
    layers.push({
      x,
      y1,
      mean1: k(ln1.mean),
      rstd1: k(ln1.rstd),
      qh,
      kh,
      vh,
      oh,
      a,
      xMid,
      y2: ln2.y,
      mean2: k(ln2.mean),
      rstd2: k(ln2.rstd),
      hPre,
      h,
    });
    x = k(await add(rec, xMid, m));
  }
  const lnf = await layernormWithStats(rec, x, p('lnf.g'), p('lnf.b'));
  const yf = k(lnf.y);
  k(lnf.mean);
  k(lnf.rstd);
  const logits = k(await matmul(rec, yf, p('head')));
  const ce = await softmaxCrossEntropy(rec, logits, batch.targets);
  k(ce.dlogits);
  const loss = k(ce.loss);
  if (!grads) return { loss, logits };

  const put = (name: string, t: GpuTensor) => {
    grads.set(name, k(t));
  };
  const head = await matmulBackward(rec, yf, p('head'), ce.dlogits);
  put('head', head.dB);
  const f = await layernormBackward(rec, x, p('lnf.g'), k(head.dA), lnf.mean, lnf.rstd);
  put('lnf.g', f.dgamma);
  put('lnf.b', f.dbeta);
  let dx = k(f.dx);
  for (let l = cfg.depth - 1; l >= 0; l--) {
    const n = `h${l}.`;
    const c = layers[l] as LayerCache; // l < depth = layers.length
    const mlp2 = await matmulBackward(rec, c.h, p(`${n}w2`), dx, { withBias: true });
    put(`${n}w2`, mlp2.dB);
    put(`${n}b2`, mlp2.dBias as GpuTensor);
    const dhPre = k(await activationBackward(rec, c.hPre, k(mlp2.dA), 'gelu'));
    const mlp1 = await matmulBackward(rec, c.y2, p(`${n}w1`), dhPre, { withBias: true });
    put(`${n}w1`, mlp1.dB);
    put(`${n}b1`, mlp1.dBias as GpuTensor);
    const ln2 = await layernormBackward(rec, c.xMid, p(`${n}ln2.g`), k(mlp1.dA), c.mean2, c.rstd2);
    put(`${n}ln2.g`, ln2.dgamma);
    put(`${n}ln2.b`, ln2.dbeta);
    const dMid = k(await add(rec, dx, k(ln2.dx)));
    const out = await matmulBackward(rec, c.a, p(`${n}wo`), dMid, { withBias: true });
    put(`${n}wo`, out.dB);
    put(`${n}bo`, out.dBias as GpuTensor);
    const dO = await toHeads(k(out.dA));
    const att = await causalAttentionBackward(rec, c.qh, c.kh, c.vh, c.oh, dO);
    let dy1: GpuTensor | null = null;
    for (const [w, g] of [
      ['q', att.dq],
      ['k', att.dk],
      ['v', att.dv],
    ] as const) {
      k(g);
      const mb = await matmulBackward(rec, c.y1, p(`${n}w${w}`), await fromHeads(g), { withBias: true });
      put(`${n}w${w}`, mb.dB);
      put(`${n}b${w}`, mb.dBias as GpuTensor);
      k(mb.dA);
      dy1 = dy1 ? k(await add(rec, dy1, mb.dA)) : mb.dA;
    }
    const ln1 = await layernormBackward(rec, c.x, p(`${n}ln1.g`), dy1 as GpuTensor, c.mean1, c.rstd1);
    put(`${n}ln1.g`, ln1.dgamma);
    put(`${n}ln1.b`, ln1.dbeta);
    dx = k(await add(rec, dMid, k(ln1.dx)));
  }
  put('wpe', await sumRows(rec, dx, B, T * C, [T, C], 'wpe.grad'));
  put('wte', await embeddingBackward(rec, batch.inputs, dx, BYTE_VOCAB));
  return { loss, logits };
}
