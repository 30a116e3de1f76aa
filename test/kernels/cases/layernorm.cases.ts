import type { KernelCase } from '../harness.ts';

export const cases: KernelCase[] = [];
