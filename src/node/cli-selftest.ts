// `hearth selftest` (`npm run selftest`): acquire the local GPU adapter through Dawn, say what it
// offers, run every kernel against its float64 reference, and time a matmul. Prints failures and
// a summary; --verbose prints every case.
import { formatBytes } from '../gpu/buffer-pool.ts';
import { Recorder } from '../gpu/recorder.ts';
import { readTensor, uploadTensor } from '../gpu/tensor.ts';
import { matmul } from '../kernels/matmul.ts';
import { suite } from '../kernels/selftest/suite.ts';
import type { Command } from './cli-args.ts';
import { acquireDawn } from './dawn.ts';
import { table } from './start-view.ts';

export const selftestCommand: Command = {
  name: 'selftest',
  summary: 'run every WGSL kernel on this machine\u2019s GPU adapter against a float64 reference',
  help: `usage: hearth selftest [--verbose]

Acquires the local GPU adapter through Dawn (SwiftShader where there is no GPU), prints what it
offers, runs the whole kernel suite (forward and backward) against float64 references and times
a 256³ matmul. Prints the failed cases and a summary; exit 1 when any case failed.

  --verbose    print every case with its result and time`,
  options: { verbose: { type: 'boolean' } },
  positionals: 0,
  async run(flags) {
    const verbose = flags.verbose === true;
    const out = (s: string) => process.stdout.write(`${s}\n`);
    const uncaptured: string[] = [];
    const ctx = await acquireDawn({ onUncapturedError: (e) => uncaptured.push(e.message) });
    ctx.pool.poison = true;
    out(`Hearth kernel suite on: ${ctx.adapter.summary}`);
    const yes = (b: boolean) => (b ? 'yes' : 'no');
    out(
      `features: shader-f16 ${yes(ctx.features.shaderF16)}, subgroups ${yes(ctx.features.subgroups)}, ` +
        `timestamp-query ${yes(ctx.features.timestampQuery)}`,
    );
    out(
      `limits: buffer ${formatBytes(ctx.limits.maxBufferSize)}, storage binding ${formatBytes(ctx.limits.maxStorageBufferBindingSize)}, ` +
        `workgroup storage ${formatBytes(ctx.limits.maxComputeWorkgroupStorageSize)}, ` +
        `${ctx.limits.maxComputeInvocationsPerWorkgroup} invocations per workgroup\n`,
    );
    const rows = [['case', 'result', 'ms']];
    let passed = 0;
    let failed = 0;
    const skips = new Map<string, number>();
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
          skips.set(r.skip, (skips.get(r.skip) ?? 0) + 1);
          result = `skip: ${r.skip}`;
        } else {
          passed++;
          result = 'ok';
        }
      } catch (e) {
        failed++;
        result = `FAIL: ${(e as Error).message.split('\n')[0]}`;
      }
      if (verbose || result.startsWith('FAIL'))
        rows.push([c.name, result, (performance.now() - t0).toFixed(0)]);
    }
    if (process.stdout.isTTY) process.stdout.write(`\r${' '.repeat(80)}\r`);
    if (rows.length > 1) out(`${table(rows)}\n`);
    const skipped = [...skips.values()].reduce((a, b) => a + b, 0);
    out(`${passed} passed, ${skipped} skipped, ${failed} failed of ${total}`);
    for (const [why, n] of skips) out(`  skipped ${n}: ${why}`);

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
    out(`matmul ${n}³: ${ms.toFixed(1)} ms, ${((2 * n ** 3) / ms / 1e6).toFixed(2)} GFLOP/s`);
    a.release();
    ctx.destroy();
    return failed ? 1 : 0;
  },
};
