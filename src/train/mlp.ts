// The MLP classifier's forward and explicit backward on kernels/ (layout in config.ts):
// features [rows, inputs] → (x·W + b, relu) per hidden layer → logits [rows, classes] → softmax
// cross-entropy against i32 class targets.
import type { Recorder } from '../gpu/recorder.ts';
import type { GpuTensor } from '../gpu/tensor.ts';
import { activationBackward, matmul, matmulBackward, softmaxCrossEntropy } from '../kernels/index.ts';
import type { MlpConfig } from './config.ts';
import type { ForwardBackward, GpuBatch, Params, Temps } from './model-types.ts';

/** Records the loss of `batch` and, when `grads` is given, the gradient of the mean loss into it. */
export async function mlpStep(
  rec: Recorder,
  cfg: MlpConfig,
  P: Params,
  batch: GpuBatch,
  tmp: Temps,
  grads: Map<string, GpuTensor> | null,
): Promise<ForwardBackward> {
  const layers = cfg.hidden.length + 1;
  // Inputs of each layer; for hidden layers the relu output, which is also what relu′ needs
  // (relu′(y) = relu′(pre-activation) where y = relu(pre-activation)).
  const xs: GpuTensor[] = [batch.inputs.reshape([batch.rows, cfg.inputs])];
  for (let i = 0; i < layers; i++) {
    const last = i === layers - 1;
    const x = xs[i] as GpuTensor; // i < xs.length: pushed in the previous iteration
    const y = await matmul(rec, x, P.get(`l${i}.w`), {
      bias: P.get(`l${i}.b`),
      activation: last ? 'none' : 'relu',
    });
    xs.push(tmp.keep(y));
  }
  const logits = xs[layers] as GpuTensor;
  const ce = await softmaxCrossEntropy(rec, logits, batch.targets);
  tmp.keep(ce.dlogits);
  const loss = tmp.keep(ce.loss);
  if (!grads) return { loss, logits };
  let dy = ce.dlogits;
  for (let i = layers - 1; i >= 0; i--) {
    const g = await matmulBackward(rec, xs[i] as GpuTensor, P.get(`l${i}.w`), dy, { withBias: true });
    grads.set(`l${i}.w`, tmp.keep(g.dB));
    grads.set(`l${i}.b`, tmp.keep(g.dBias as GpuTensor));
    tmp.keep(g.dA);
    if (i > 0) dy = tmp.keep(await activationBackward(rec, xs[i] as GpuTensor, g.dA, 'relu'));
  }
  return { loss, logits };
}
