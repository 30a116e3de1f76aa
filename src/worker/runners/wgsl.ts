// Runs a researcher's WGSL shard: one dispatch, or a program — named buffers that persist across
// passes, passes run in order, groups of passes repeated. Before anything runs the shard is
// checked against its shader's declarations (protocol/kinds/wgsl.ts, the same check the hub runs
// at submit) and against this device's limits. Pipelines are cached per device (gpu/
// pipeline-cache.ts), so the second shard of a job — and every repeat of a pass — builds nothing.
// Passes are recorded in chunks of one command buffer each: between chunks the runner reports
// progress (dispatches done of the total) and stops at once when cancelled or over its budget.
import { at, entry } from '../../core/at.ts';
import { HearthError } from '../../core/errors.ts';
import type { DType } from '../../core/tensor.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { getLayoutPipeline } from '../../gpu/pipeline-cache.ts';
import { MAP_READ_MODE, Usage } from '../../gpu/usage.ts';
import {
  isProgram,
  type WgslBinding,
  type WgslBuffer,
  type WgslDispatchShard,
  type WgslProgramShard,
  type WgslShard,
} from '../../protocol/kinds/wgsl.ts';
import {
  checkProgramAgainstSource,
  type PlannedBuffer,
  type PlannedProgram,
  passLayouts,
  planProgram,
} from '../../protocol/kinds/wgsl-plan.ts';
import type { HostTensor, ShardProgress } from '../../protocol/shard.ts';
import { reflectEntryPoints } from '../../protocol/wgsl-reflect.ts';
import { checkAborted, raceAbort } from '../abort.ts';

export interface RunOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: ShardProgress) => void;
}

/** Aim of one chunk of passes: long enough to amortise a submit, short enough to cancel quickly. */
const CHUNK_TARGET_MS = 50;
const MAX_CHUNK = 1024;

const align4 = (n: number) => Math.max(4, Math.ceil(n / 4) * 4);

const uniformLength = (b: WgslBinding | WgslBuffer | { role: string }): number =>
  b.role === 'uniform' ? (b as { data: ArrayBuffer }).data.byteLength : 0;

/** The shard in the one form the checks and the runner read. */
export function planShard(shard: WgslShard): PlannedProgram {
  return planProgram(shard as WgslDispatchShard | WgslProgramShard, 'main', uniformLength as never);
}

const limit = (shardId: string, message: string, details: Record<string, unknown>) =>
  new HearthError('gpu/limit', `WGSL shard ${shardId}: ${message}`, { details });

/**
 * Checks a planned shard against this device's limits: buffer sizes, storage buffers per pass,
 * workgroups per dispatch, each entry point's workgroup size, and f16. Throws 'gpu/limit' or
 * 'gpu/feature-missing' naming the limit.
 */
export function checkDeviceLimits(
  ctx: GpuContext,
  shardId: string,
  source: string,
  plan: PlannedProgram,
): void {
  const l = ctx.limits;
  for (const b of plan.buffers) {
    if (b.role === 'uniform') {
      if (b.bytes > l.maxUniformBufferBindingSize) {
        throw limit(
          shardId,
          `uniform "${b.name}" is ${b.bytes} bytes, over maxUniformBufferBindingSize (${l.maxUniformBufferBindingSize}).`,
          {
            buffer: b.name,
          },
        );
      }
    } else if (b.bytes > l.maxStorageBufferBindingSize) {
      throw limit(
        shardId,
        `${b.label} is ${b.bytes} bytes, over this device's maxStorageBufferBindingSize (${l.maxStorageBufferBindingSize}). Split the shard.`,
        { buffer: b.name, bytes: b.bytes, limit: l.maxStorageBufferBindingSize },
      );
    }
  }
  const byKey = new Map(plan.buffers.map((b) => [b.key, b]));
  const entries = reflectEntryPoints(source);
  for (const pass of plan.passes) {
    const storage = pass.bind.filter((s) => byKey.get(s.buffer)?.role !== 'uniform').length;
    if (storage > l.maxStorageBuffersPerShaderStage) {
      throw limit(
        shardId,
        `${storage} storage buffers, over this device's maxStorageBuffersPerShaderStage (${l.maxStorageBuffersPerShaderStage}).`,
        {
          storage,
          limit: l.maxStorageBuffersPerShaderStage,
        },
      );
    }
    const max = l.maxComputeWorkgroupsPerDimension;
    if (pass.dispatch.some((d) => d > max)) {
      throw limit(
        shardId,
        `dispatch [${pass.dispatch.join(', ')}] exceeds this device's ${max} workgroups per dimension. Split the shard.`,
        {
          dispatch: pass.dispatch,
          limit: max,
        },
      );
    }
    const wg = entries.find((e) => e.name === pass.entryPoint)?.workgroupSize;
    if (
      wg &&
      (wg[0] > l.maxComputeWorkgroupSizeX ||
        wg[1] > l.maxComputeWorkgroupSizeY ||
        wg[2] > l.maxComputeWorkgroupSizeZ ||
        wg[0] * wg[1] * wg[2] > l.maxComputeInvocationsPerWorkgroup)
    ) {
      throw limit(
        shardId,
        `@workgroup_size(${wg.join(', ')}) is over this device's limits (${l.maxComputeWorkgroupSizeX}×${l.maxComputeWorkgroupSizeY}×${l.maxComputeWorkgroupSizeZ}, ${l.maxComputeInvocationsPerWorkgroup} invocations).`,
        { workgroupSize: wg },
      );
    }
  }
  if (/\benable\s+f16\s*;/.test(source) && !ctx.features.shaderF16) {
    throw new HearthError(
      'gpu/feature-missing',
      `WGSL shard ${shardId} enables f16, but this device has no shader-f16.`,
      {
        details: { feature: 'shader-f16' },
      },
    );
  }
}

/**
 * Builds (or takes from the cache) the pipeline of every distinct pass. A pipeline the device
 * refuses — an entry point using a slot its pass does not bind — is 'wgsl/manifest' naming the pass.
 */
async function pipelinesOf(
  ctx: GpuContext,
  label: string,
  source: string,
  plan: PlannedProgram,
  signal: AbortSignal | undefined,
): Promise<{ pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }[]> {
  const layouts = passLayouts(source, plan);
  const out: { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }[] = [];
  for (const [i, l] of layouts.entries()) {
    try {
      out.push(
        await raceAbort(
          getLayoutPipeline(ctx.device, { label, code: source, entryPoint: l.entryPoint, slots: l.slots }),
          signal,
        ),
      );
    } catch (e) {
      if (e instanceof HearthError && e.code === 'wgsl/pipeline') {
        const which = plan.single ? '' : ` pass ${i} ("${l.entryPoint}")`;
        throw new HearthError(
          'wgsl/manifest',
          `WGSL ${label}${which}: the shader does not match its binding manifest: ${e.message}`,
          {
            details: { entryPoint: l.entryPoint },
            cause: e,
          },
        );
      }
      throw e;
    }
  }
  return out;
}

/**
 * Compiles a kernel and builds a pipeline per layout on this device, running nothing: what the
 * hub does at submit (hub/kinds/wgsl.ts), so a syntax error reaches the researcher at once.
 */
export async function buildWgslPipelines(
  ctx: GpuContext,
  label: string,
  source: string,
  layouts: readonly {
    entryPoint: string;
    slots: readonly { binding: number; type: 'uniform' | 'read-only-storage' | 'storage' }[];
  }[],
): Promise<void> {
  for (const l of layouts) {
    try {
      await getLayoutPipeline(ctx.device, { label, code: source, entryPoint: l.entryPoint, slots: l.slots });
    } catch (e) {
      if (e instanceof HearthError && e.code === 'wgsl/pipeline') {
        throw new HearthError(
          'wgsl/manifest',
          `the shader's entry point "${l.entryPoint}" does not match the slots its passes bind: ${e.message}`,
          {
            details: { entryPoint: l.entryPoint },
            cause: e,
          },
        );
      }
      throw e;
    }
  }
}

/**
 * Pops the out-of-memory and validation scopes pushed (in that order) around some work, and throws
 * what they caught: a shard WebGPU refuses is the shard's ('wgsl/manifest'), memory is the device's.
 */
async function popScopes(device: GPUDevice, shardId: string): Promise<void> {
  const [oom, val] = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
  if (oom)
    throw new HearthError(
      'gpu/out-of-memory',
      `WGSL shard ${shardId}: the GPU ran out of memory: ${oom.message}`,
    );
  if (val)
    throw new HearthError(
      'wgsl/manifest',
      `WGSL shard ${shardId}: WebGPU rejected the shard: ${val.message}`,
    );
}

/** The passes of a program in the order they run, repeats expanded lazily. */
function* order(plan: PlannedProgram): Generator<number> {
  for (const step of plan.steps) for (let r = 0; r < step.repeat; r++) yield* step.passes;
}

function bufferData(shard: WgslShard, b: PlannedBuffer): ArrayBuffer | null {
  const list: readonly (WgslBinding | WgslBuffer)[] = isProgram<WgslDispatchShard, WgslProgramShard>(shard)
    ? shard.buffers
    : shard.bindings;
  const src = list.find((x) => ('binding' in x ? `#${x.binding}` : x.name) === b.key);
  if (!src) return null;
  if (src.role === 'input') return src.tensor.data;
  if (src.role === 'uniform') return src.data;
  return null;
}

/**
 * Runs a researcher's WGSL shard: check, compile (errors with line and column), the passes, read
 * back the outputs. Buffers are the shard's own (outputs and scratch start zeroed) and are
 * destroyed afterwards. Cancellation and the time budget act through `signal` between chunks of
 * passes and while waiting for the GPU.
 */
export async function runWgslShard(
  ctx: GpuContext,
  shard: WgslShard,
  opts: RunOptions = {},
): Promise<{ name: string; tensor: HostTensor }[]> {
  const { signal, onProgress } = opts;
  const progress = (phase: ShardProgress['phase'], done: number, total: number) =>
    onProgress?.({ shard: shard.id, phase, done, total });
  ctx.assertAlive();
  const plan = planShard(shard);
  checkProgramAgainstSource(shard.source, plan, `WGSL shard ${shard.id}`);
  checkDeviceLimits(ctx, shard.id, shard.source, plan);
  checkAborted(signal);
  progress('compile', 0, 1);
  const label = `shard ${shard.id}`;
  const pipelines = await pipelinesOf(ctx, label, shard.source, plan, signal);
  progress('compile', 1, 1);
  checkAborted(signal);

  const device = ctx.device;
  const buffers: GPUBuffer[] = [];
  try {
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    const gpu = new Map<string, { b: PlannedBuffer; buf: GPUBuffer }>();
    for (const b of plan.buffers) {
      const usage =
        b.role === 'uniform'
          ? Usage.UNIFORM | Usage.COPY_DST
          : Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC;
      const buf = device.createBuffer({ label: `${label}:${b.name}`, size: align4(b.bytes), usage });
      buffers.push(buf);
      const data = bufferData(shard, b);
      if (data && data.byteLength > 0) {
        const padded = new Uint8Array(align4(data.byteLength));
        padded.set(new Uint8Array(data));
        device.queue.writeBuffer(buf, 0, padded);
      }
      gpu.set(b.key, { b, buf });
    }
    // checkProgramAgainstSource saw every slot name a planned buffer; pipelinesOf built one per pass.
    const bufferOf = (key: string) => entry(gpu, key, `${label} buffers`).buf;
    const steps = plan.passes.map((p, i) => {
      const { pipeline, layout } = at(pipelines, i, `${label} pipelines`);
      const group = device.createBindGroup({
        label: `${label}:bind:${i}`,
        layout,
        entries: p.bind.map((s) => ({ binding: s.binding, resource: { buffer: bufferOf(s.buffer) } })),
      });
      return { dispatch: p.dispatch, pipeline, group };
    });
    await popScopes(device, shard.id);

    // The passes, a chunk per command buffer; the chunk grows or shrinks toward CHUNK_TARGET_MS.
    const total = plan.dispatches;
    const it = order(plan);
    let done = 0;
    let chunk = 1;
    progress('run', 0, total);
    while (done < total) {
      checkAborted(signal);
      const t0 = performance.now();
      device.pushErrorScope('validation');
      device.pushErrorScope('out-of-memory');
      const enc = device.createCommandEncoder({ label: `${label}:passes` });
      const pass = enc.beginComputePass({ label: `${label}:pass` });
      let n = 0;
      for (; n < chunk; n++) {
        const next = it.next();
        if (next.done) break;
        const step = at(steps, next.value, `${label} passes`);
        pass.setPipeline(step.pipeline);
        pass.setBindGroup(0, step.group);
        pass.dispatchWorkgroups(step.dispatch[0], step.dispatch[1], step.dispatch[2]);
      }
      pass.end();
      device.queue.submit([enc.finish()]);
      await popScopes(device, shard.id);
      await raceAbort(
        Promise.race([device.queue.onSubmittedWorkDone(), ctx.lost.then((e) => Promise.reject(e))]),
        signal,
      );
      done += n;
      progress('run', done, total);
      const ms = performance.now() - t0;
      chunk = Math.max(1, Math.min(MAX_CHUNK, Math.round((n * CHUNK_TARGET_MS) / Math.max(ms, 1))));
    }

    // An output is a storage buffer: planProgram gives it a dtype and a shape.
    const outputs = plan.buffers.filter(
      (b): b is PlannedBuffer & { dtype: DType; shape: readonly number[] } =>
        b.role === 'output' && b.dtype !== null && b.shape !== null,
    );
    const enc = device.createCommandEncoder({ label: `${label}:read` });
    const staged = outputs.map((b) => {
      const s = device.createBuffer({
        label: `${label}:${b.name}:read`,
        size: align4(b.bytes),
        usage: Usage.MAP_READ | Usage.COPY_DST,
      });
      buffers.push(s);
      enc.copyBufferToBuffer(bufferOf(b.key), 0, s, 0, align4(b.bytes));
      return { b, s };
    });
    device.queue.submit([enc.finish()]);
    const result: { name: string; tensor: HostTensor }[] = [];
    for (const [i, { b, s }] of staged.entries()) {
      progress('read', i, outputs.length);
      await raceAbort(s.mapAsync(MAP_READ_MODE), signal);
      const data = s.getMappedRange().slice(0, b.bytes);
      s.unmap();
      result.push({ name: b.name, tensor: { dtype: b.dtype, shape: [...b.shape], data } });
    }
    progress('read', outputs.length, outputs.length);
    return result;
  } finally {
    if (!ctx.isLost) for (const b of buffers) b.destroy();
  }
}
