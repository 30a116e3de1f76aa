// The train/ transformer written again in TensorFlow.js ops, with tfjs's own autograd and Adam,
// from the same flat θ (layout in src/train/config.ts): the reference for one training step.
import { paramLayout, type TransformerConfig } from '../../src/train/config.ts';
import type { Batch } from '../../src/train/trainer.ts';
import type { Tf } from './tfjs-node.ts';

type Tensor = ReturnType<Tf['tensor']>;
type Variable = ReturnType<Tf['variable']>;

export interface TfjsModel {
  /** One step: forward, backward, Adam; resolves with the loss once the GPU is done. */
  step(batch: Batch): Promise<number>;
  dispose(): void;
}

export function tfjsTransformer(
  tf: Tf,
  cfg: TransformerConfig,
  theta: Float32Array,
  opt: { lr: number; beta1: number; beta2: number; eps: number },
): TfjsModel {
  const vars = new Map<string, Variable>();
  for (const e of paramLayout(cfg)) {
    vars.set(
      e.name,
      tf.variable(tf.tensor(theta.slice(e.offset, e.offset + e.size), [...e.shape]), true, e.name),
    );
  }
  const p = (n: string) => vars.get(n) as Variable;
  const C = cfg.width;
  const T = cfg.context;
  const H = cfg.heads;
  const D = C / H;
  const mask = tf.tensor2d(
    Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)),
    [T, T],
  );
  const ln = (x: Tensor, g: string, b: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), p(g)), p(b));
  };
  const gelu = (x: Tensor) =>
    tf.mul(
      tf.mul(x, 0.5),
      tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3)))))),
    );
  const adam = tf.train.adam(opt.lr, opt.beta1, opt.beta2, opt.eps);
  const loss = (ids: Tensor, onehot: Tensor): Tensor => {
    const N = ids.shape[0] as number;
    const B = N / T;
    let x = tf.reshape(tf.add(tf.reshape(tf.gather(p('wte'), ids), [B, T, C]), p('wpe')), [N, C]);
    for (let l = 0; l < cfg.depth; l++) {
      const n = `h${l}.`;
      const y1 = ln(x, `${n}ln1.g`, `${n}ln1.b`);
      const heads = (w: string) =>
        tf.transpose(
          tf.reshape(tf.add(tf.matMul(y1, p(`${n}w${w}`)), p(`${n}b${w}`)), [B, T, H, D]),
          [0, 2, 1, 3],
        );
      const att = tf.softmax(
        tf.add(tf.mul(tf.matMul(heads('q'), heads('k'), false, true), 1 / Math.sqrt(D)), mask),
      );
      const a = tf.reshape(tf.transpose(tf.matMul(att, heads('v')), [0, 2, 1, 3]), [N, C]);
      x = tf.add(x, tf.add(tf.matMul(a, p(`${n}wo`)), p(`${n}bo`)));
      const h = gelu(tf.add(tf.matMul(ln(x, `${n}ln2.g`, `${n}ln2.b`), p(`${n}w1`)), p(`${n}b1`)));
      x = tf.add(x, tf.add(tf.matMul(h, p(`${n}w2`)), p(`${n}b2`)));
    }
    const logits = tf.matMul(ln(x, 'lnf.g', 'lnf.b'), p('head'));
    return tf.losses.softmaxCrossEntropy(onehot, logits);
  };
  return {
    async step(batch) {
      const ids = tf.tensor1d(batch.inputs, 'int32');
      const onehot = tf.oneHot(tf.tensor1d(batch.targets, 'int32'), 256);
      const cost = adam.minimize(() => loss(ids, onehot) as never, true);
      const v = (await (cost as Tensor).data())[0] as number;
      tf.dispose([ids, onehot, cost as Tensor]);
      return v;
    },
    dispose() {
      adam.dispose();
      tf.dispose([...vars.values(), mask]);
    },
  };
}
