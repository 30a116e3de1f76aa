// Every kernel case, in one list: run by test/kernels/kernels.node.test.ts (Dawn), by the
// Chromium worker in test/kernels/kernels.browser.test.ts, and by `npm run selftest` (src/node/cli-selftest.ts).

import { cases as activationGrad } from './cases/activation-grad.cases.ts';
import { cases as adamw } from './cases/adamw.cases.ts';
import { cases as attention } from './cases/attention.cases.ts';
import { cases as attentionGrad } from './cases/attention-grad.cases.ts';
import { cases as crossEntropy } from './cases/cross-entropy.cases.ts';
import { cases as elementwise } from './cases/elementwise.cases.ts';
import { cases as embedding } from './cases/embedding.cases.ts';
import { cases as gpuRuntime } from './cases/gpu-runtime.cases.ts';
import { cases as layernorm } from './cases/layernorm.cases.ts';
import { cases as layernormGrad } from './cases/layernorm-grad.cases.ts';
import { cases as matmul } from './cases/matmul.cases.ts';
import { cases as matmulGrad } from './cases/matmul-grad.cases.ts';
import { cases as reduce } from './cases/reduce.cases.ts';
import { cases as softmax } from './cases/softmax.cases.ts';
import { cases as transpose } from './cases/transpose.cases.ts';
import type { KernelCase } from './harness.ts';

export const suite: readonly KernelCase[] = [
  ...gpuRuntime,
  ...matmul,
  ...matmulGrad,
  ...elementwise,
  ...activationGrad,
  ...reduce,
  ...softmax,
  ...crossEntropy,
  ...layernorm,
  ...layernormGrad,
  ...transpose,
  ...embedding,
  ...attention,
  ...attentionGrad,
  ...adamw,
];
