// `npm run demo`: acquire the local GPU adapter through Dawn, print what it offers, run every
// kernel against its float64 reference, and time a matmul. Later issues grow this into the
// full hub + volunteers demo.

import { formatBytes } from '../gpu/buffer-pool.ts';
import { Recorder } from '../gpu/recorder.ts';
import { readTensor, uploadTensor } from '../gpu/tensor.ts';
import { matmul } from '../kernels/matmul.ts';
import { suite } from '../kernels/selftest/suite.ts';
import { acquireDawn } from './dawn.ts';

function table(rows: string[][]): string {
  const [head, ...body] = rows;
  if (head === undefined) return '';
  // A missing cell is empty: it widens nothing and is padded by nothing.
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

const uncaptured: string[] = [];
const ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
ctx.pool.poison = true;
console.log(`Hearth kernel suite on: ${ctx.adapter.summary}`);
console.log(
  `features: shader-f16 ${ctx.features.shaderF16 ? 'yes' : 'no'}, subgroups ${ctx.features.subgroups ? 'yes' : 'no'}, ` +
    `timestamp-query ${ctx.features.timestampQuery ? 'yes' : 'no'}`,
);
console.log(
  `limits: buffer ${formatBytes(ctx.limits.maxBufferSize)}, storage binding ${formatBytes(ctx.limits.maxStorageBufferBindingSize)}, ` +
    `workgroup storage ${formatBytes(ctx.limits.maxComputeWorkgroupStorageSize)}, ` +
    `${ctx.limits.maxComputeInvocationsPerWorkgroup} invocations per workgroup\n`,
);

const rows = [['case', 'result', 'ms']];
let passed = 0;
let failed = 0;
let skipped = 0;
const total = suite.length;
for (const [i, c] of suite.entries()) {
  if (process.stdout.isTTY)
    process.stdout.write(`\r[${String(i + 1).padStart(3)}/${total}] ${c.name.slice(0, 70).padEnd(70)}`);
  const t0 = performance.now();
  let result: string;
  try {
    const r = await c.run(ctx);
    if (uncaptured.length) throw new Error(`uncaptured GPU errors: ${uncaptured.splice(0).join('; ')}`);
    if (r && 'skip' in r) {
      skipped++;
      result = `skip: ${r.skip}`;
    } else {
      passed++;
      result = 'ok';
    }
  } catch (e) {
    failed++;
    result = `FAIL: ${(e as Error).message.split('\n')[0]}`;
  }
  rows.push([c.name, result, (performance.now() - t0).toFixed(0)]);
}
if (process.stdout.isTTY) process.stdout.write('\r'.padEnd(80) + '\r');
console.log(table(rows));
console.log(`\n${passed} passed, ${skipped} skipped, ${failed} failed of ${total}`);

// A throughput figure for this adapter (SwiftShader runs on the CPU: expect well under 1 GFLOP/s).
const n = 256;
const a = uploadTensor(ctx, new Float32Array(n * n).fill(0.5), [n, n], 'a');
const warm = new Recorder(ctx, 'warm');
(await matmul(warm, a, a)).release();
await warm.submit();
const reps = 3;
const t0 = performance.now();
for (let r = 0; r < reps; r++) {
  const rec = new Recorder(ctx, 'timed');
  const c = await matmul(rec, a, a);
  await rec.submit();
  if (r === reps - 1) await readTensor(c);
  c.release();
}
const ms = (performance.now() - t0) / reps;
console.log(`matmul ${n}³: ${ms.toFixed(1)} ms, ${((2 * n ** 3) / ms / 1e6).toFixed(2)} GFLOP/s`);
a.release();
ctx.destroy();
process.exit(failed ? 1 : 0);
