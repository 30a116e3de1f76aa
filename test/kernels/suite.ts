// Every kernel case, in one list: run by test/kernels/kernels.node.test.ts (Dawn), by the
// Chromium worker in kernels.browser.test.ts, and by the demo (`npm run demo`).

import { cases as matmul } from './cases/matmul.cases.ts';
import type { KernelCase } from './harness.ts';

export const suite: readonly KernelCase[] = [...matmul];
