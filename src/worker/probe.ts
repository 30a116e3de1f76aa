import probeWgsl from '../../shaders/probe-matmul.wgsl?raw';
import {
  type AdapterReport,
  type GpuContext,
  type GpuFeatures,
  type GpuLimits,
  LIMIT_NAMES,
} from '../gpu/context.ts';
import { getPipeline } from '../gpu/pipeline-cache.ts';
import { Recorder } from '../gpu/recorder.ts';
import { emptyTensor, readTensor } from '../gpu/tensor.ts';
import { Usage } from '../gpu/usage.ts';

/** What the hub sizes shards by: the adapter, its limits and features, and two measured rates. */
export interface CapabilityReport {
  readonly adapter: AdapterReport;
  readonly limits: GpuLimits;
  readonly features: GpuFeatures;
  /** f32 matmul throughput measured on this device, GFLOP/s. */
  readonly matmulGflops: number;
  /** Device-local buffer copy bandwidth, GB/s (bytes read + written). */
  readonly copyGBps: number;
  /** Wall time the probe took, ms. */
  readonly ms: number;
}

/**
 * Measures the device in well under a second: a matmul and a buffer copy, each grown from a
 * small size while the measured time stays below its share of the budget, so a slow adapter
 * (SwiftShader) and a fast GPU both finish in time and both get a meaningful figure.
 */
export async function probeDevice(ctx: GpuContext, budgetMs = 600): Promise<CapabilityReport> {
  const t0 = performance.now();
  const share = budgetMs / 2;

  let gflops = 0;
  const pipeline = await getPipeline(ctx.device, { label: 'probe-matmul', code: probeWgsl });
  const matmulOnce = async (n: number): Promise<number> => {
    const a = emptyTensor(ctx, [n, n], 'f32', 'probe.a');
    const c = emptyTensor(ctx, [n, n], 'f32', 'probe.c');
    try {
      const rec = new Recorder(ctx, 'probe.matmul');
      rec.dispatch({
        pipeline,
        uniforms: new Uint32Array([n, 0, 0, 0]),
        buffers: [a.buffer, c.buffer],
        workgroups: [Math.ceil(n / 4 / 8), Math.ceil(n / 4 / 8)],
      });
      const s = performance.now();
      await rec.submit();
      return Math.max(performance.now() - s, 0.001);
    } finally {
      a.release();
      c.release();
    }
  };
  await matmulOnce(64); // first dispatch pays for driver warm-up
  for (let n = 128; n <= 2048; n *= 2) {
    const ms = await matmulOnce(n);
    gflops = (2 * n ** 3) / ms / 1e6;
    // The next size takes ~8× as long: stop if that would overrun this half of the budget.
    if (performance.now() - t0 + ms * 9 > share) break;
  }

  let gbps = 0;
  const t1 = performance.now();
  for (let bytes = 1 << 20; bytes <= 256 << 20; bytes *= 4) {
    const src = ctx.pool.acquire(bytes, Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST, 'probe.src');
    const dst = ctx.pool.acquire(bytes, Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST, 'probe.dst');
    try {
      const rec = new Recorder(ctx, 'probe.copy');
      rec.copy(src, 0, dst, 0, bytes);
      const s = performance.now();
      await rec.submit();
      const ms = Math.max(performance.now() - s, 0.001);
      gbps = (2 * bytes) / ms / 1e6;
      if (performance.now() - t1 + ms * 5 > share) break;
    } finally {
      ctx.pool.release(src);
      ctx.pool.release(dst);
    }
  }
  // Touch the result path once so a broken readback shows up in the probe, not in the first shard.
  const check = emptyTensor(ctx, [1], 'f32', 'probe.check');
  await readTensor(check);
  check.release();

  return {
    adapter: ctx.adapter,
    limits: ctx.limits,
    features: ctx.features,
    matmulGflops: Number(gflops.toFixed(3)),
    copyGBps: Number(gbps.toFixed(3)),
    ms: Math.round(performance.now() - t0),
  };
}

/** What a device without WebGPU reports: no adapter, no buffers (the hub leases it no WGSL shards). */
export function noGpuReport(reason: string): CapabilityReport {
  const limits = Object.fromEntries(
    [...LIMIT_NAMES, 'minStorageBufferOffsetAlignment'].map((k) => [k, 0]),
  ) as unknown as GpuLimits;
  return {
    adapter: {
      vendor: '',
      architecture: '',
      device: '',
      description: reason,
      isFallbackAdapter: false,
      summary: 'no WebGPU (ONNX on WebAssembly)',
    },
    limits,
    features: { shaderF16: false, subgroups: false, timestampQuery: false },
    matmulGflops: 0,
    copyGBps: 0,
    ms: 0,
  };
}
