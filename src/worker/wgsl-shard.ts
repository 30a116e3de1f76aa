import { HearthError } from '../core/errors.ts';
import { BYTES_PER_ELEMENT, type DType } from '../core/tensor.ts';
import { compileWgsl } from '../gpu/compile.ts';
import type { GpuContext } from '../gpu/context.ts';
import { MAP_READ_MODE, Usage } from '../gpu/usage.ts';
import type { HostTensor, ShardProgress, WgslBinding, WgslShard } from '../protocol/shard.ts';
import { checkAborted, raceAbort } from './abort.ts';
import { reflectEntryPoints, reflectResources, type WgslResource } from './wgsl-reflect.ts';

export interface RunOptions {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: ShardProgress) => void;
}

function manifestError(
  shard: WgslShard,
  message: string,
  details: Record<string, unknown> = {},
): HearthError {
  return new HearthError('wgsl/manifest', `WGSL shard ${shard.id}: ${message}`, {
    details: { shard: shard.id, ...details },
  });
}

function describeBinding(b: WgslBinding): string {
  return `binding ${b.binding} (${b.role} "${b.name}")`;
}

const ROLE_NEEDS: Record<
  WgslBinding['role'],
  { space: WgslResource['space']; access?: WgslResource['access']; decl: string }
> = {
  input: { space: 'storage', access: 'read', decl: 'var<storage, read>' },
  output: { space: 'storage', access: 'read_write', decl: 'var<storage, read_write>' },
  uniform: { space: 'uniform', decl: 'var<uniform>' },
};

function bindingDType(b: WgslBinding): DType | null {
  if (b.role === 'input') return b.tensor.dtype;
  if (b.role === 'output') return b.dtype;
  return null;
}

function bindingBytes(b: WgslBinding): number {
  if (b.role === 'input') return b.tensor.data.byteLength;
  if (b.role === 'uniform') return b.data.byteLength;
  return b.shape.reduce((x, y) => x * y, 1) * BYTES_PER_ELEMENT[b.dtype];
}

/**
 * Checks a WGSL shard against its own shader and this device before anything runs: every
 * manifest binding declared in @group(0) with the right address space, access and element
 * type, every declared binding in the manifest, the entry point present, sizes and the
 * dispatch within the device's limits. Throws 'wgsl/manifest' or 'gpu/limit' naming the problem.
 */
export function checkWgslShard(ctx: GpuContext, shard: WgslShard): void {
  const resources = reflectResources(shard.source);
  const entry = shard.entryPoint ?? 'main';
  const entries = reflectEntryPoints(shard.source);
  if (!entries.some((e) => e.name === entry)) {
    throw manifestError(
      shard,
      `the shader has no @compute entry point "${entry}"${entries.length ? ` (it has: ${entries.map((e) => e.name).join(', ')})` : ''}.`,
      { entryPoint: entry },
    );
  }
  for (const r of resources) {
    if (r.group !== 0) {
      throw manifestError(
        shard,
        `line ${r.line}: "${r.name}" is in @group(${r.group}); shard bindings must all be in @group(0).`,
        { line: r.line },
      );
    }
    if (!shard.bindings.some((b) => b.binding === r.binding)) {
      throw manifestError(
        shard,
        `line ${r.line}: the shader declares @binding(${r.binding}) "${r.name}" but the manifest has no binding ${r.binding}.`,
        {
          binding: r.binding,
          line: r.line,
        },
      );
    }
  }
  let storage = 0;
  for (const b of shard.bindings) {
    const r = resources.find((x) => x.binding === b.binding && x.group === 0);
    if (!r)
      throw manifestError(
        shard,
        `${describeBinding(b)} is not declared in the shader (no @group(0) @binding(${b.binding})).`,
        { binding: b.binding },
      );
    const need = ROLE_NEEDS[b.role];
    if (r.space !== need.space || (need.access && r.access !== need.access)) {
      throw manifestError(
        shard,
        `${describeBinding(b)} needs ${need.decl}, but line ${r.line} declares "${r.name}" as var<${r.space}${r.space === 'storage' ? `, ${r.access}` : ''}>.`,
        {
          binding: b.binding,
          line: r.line,
        },
      );
    }
    const dtype = bindingDType(b);
    if (dtype && r.scalar && r.scalar !== dtype) {
      throw manifestError(
        shard,
        `${describeBinding(b)} is ${dtype}, but line ${r.line} declares "${r.name}: ${r.type}".`,
        {
          binding: b.binding,
          line: r.line,
        },
      );
    }
    const bytes = bindingBytes(b);
    if (b.role === 'uniform') {
      if (bytes > ctx.limits.maxUniformBufferBindingSize) {
        throw new HearthError(
          'gpu/limit',
          `WGSL shard ${shard.id}: uniform "${b.name}" is ${bytes} bytes, over maxUniformBufferBindingSize (${ctx.limits.maxUniformBufferBindingSize}).`,
          {
            details: { binding: b.binding },
          },
        );
      }
    } else {
      storage++;
      if (bytes > ctx.limits.maxStorageBufferBindingSize) {
        throw new HearthError(
          'gpu/limit',
          `WGSL shard ${shard.id}: ${describeBinding(b)} is ${bytes} bytes, over this device's maxStorageBufferBindingSize (${ctx.limits.maxStorageBufferBindingSize}). Split the shard.`,
          {
            details: { binding: b.binding, bytes, limit: ctx.limits.maxStorageBufferBindingSize },
          },
        );
      }
    }
  }
  if (storage > ctx.limits.maxStorageBuffersPerShaderStage) {
    throw new HearthError(
      'gpu/limit',
      `WGSL shard ${shard.id}: ${storage} storage buffers, over this device's maxStorageBuffersPerShaderStage (${ctx.limits.maxStorageBuffersPerShaderStage}).`,
      {
        details: { storage, limit: ctx.limits.maxStorageBuffersPerShaderStage },
      },
    );
  }
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (shard.dispatch.some((d) => d > max)) {
    throw new HearthError(
      'gpu/limit',
      `WGSL shard ${shard.id}: dispatch [${shard.dispatch.join(', ')}] exceeds this device's ${max} workgroups per dimension. Split the shard.`,
      {
        details: { dispatch: shard.dispatch, limit: max },
      },
    );
  }
  const wg = entries.find((e) => e.name === entry)?.workgroupSize;
  if (wg) {
    const l = ctx.limits;
    const total = wg[0] * wg[1] * wg[2];
    if (
      wg[0] > l.maxComputeWorkgroupSizeX ||
      wg[1] > l.maxComputeWorkgroupSizeY ||
      wg[2] > l.maxComputeWorkgroupSizeZ ||
      total > l.maxComputeInvocationsPerWorkgroup
    ) {
      throw new HearthError(
        'gpu/limit',
        `WGSL shard ${shard.id}: @workgroup_size(${wg.join(', ')}) is over this device's limits (${l.maxComputeWorkgroupSizeX}×${l.maxComputeWorkgroupSizeY}×${l.maxComputeWorkgroupSizeZ}, ${l.maxComputeInvocationsPerWorkgroup} invocations).`,
        {
          details: { workgroupSize: wg },
        },
      );
    }
  }
  if (/\benable\s+f16\s*;/.test(shard.source) && !ctx.features.shaderF16) {
    throw new HearthError(
      'gpu/feature-missing',
      `WGSL shard ${shard.id} enables f16, but this device has no shader-f16.`,
      {
        details: { feature: 'shader-f16' },
      },
    );
  }
}

const align4 = (n: number) => Math.max(4, Math.ceil(n / 4) * 4);

/**
 * Runs a researcher's WGSL shard: check, compile (errors with line and column), one dispatch,
 * read back the outputs. Buffers are the shard's own (outputs start zeroed) and are destroyed
 * afterwards. Cancellation and time budget act through `signal` between steps and while
 * waiting for the GPU.
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
  checkWgslShard(ctx, shard);
  progress('compile', 0, 1);
  const label = `shard ${shard.id}`;
  const module = await raceAbort(compileWgsl(ctx.device, { label, code: shard.source }), signal);
  const device = ctx.device;
  const sorted = [...shard.bindings].sort((a, b) => a.binding - b.binding);
  const layout = device.createBindGroupLayout({
    label: `${label}:layout`,
    entries: sorted.map((b) => ({
      binding: b.binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: {
        type: b.role === 'uniform' ? 'uniform' : b.role === 'input' ? 'read-only-storage' : 'storage',
      },
    })),
  });
  let pipeline: GPUComputePipeline;
  try {
    pipeline = await raceAbort(
      device.createComputePipelineAsync({
        label,
        layout: device.createPipelineLayout({
          label: `${label}:pipeline-layout`,
          bindGroupLayouts: [layout],
        }),
        compute: { module, entryPoint: shard.entryPoint ?? 'main' },
      }),
      signal,
    );
  } catch (e) {
    if (e instanceof HearthError) throw e;
    throw manifestError(shard, `the shader does not match its binding manifest: ${(e as Error).message}`);
  }
  progress('compile', 1, 1);
  checkAborted(signal);

  const buffers: GPUBuffer[] = [];
  try {
    device.pushErrorScope('validation');
    device.pushErrorScope('out-of-memory');
    const entries: GPUBindGroupEntry[] = [];
    const outputs: { b: Extract<WgslBinding, { role: 'output' }>; buf: GPUBuffer; bytes: number }[] = [];
    for (const b of sorted) {
      const bytes = bindingBytes(b);
      const usage =
        b.role === 'uniform'
          ? Usage.UNIFORM | Usage.COPY_DST
          : Usage.STORAGE | Usage.COPY_DST | Usage.COPY_SRC;
      const buf = device.createBuffer({ label: `${label}:${b.name}`, size: align4(bytes), usage });
      buffers.push(buf);
      const data = b.role === 'input' ? b.tensor.data : b.role === 'uniform' ? b.data : null;
      if (data && data.byteLength > 0) {
        const padded = data.byteLength % 4 ? new Uint8Array(align4(data.byteLength)) : new Uint8Array(data);
        if (data.byteLength % 4) padded.set(new Uint8Array(data));
        device.queue.writeBuffer(buf, 0, padded);
      }
      if (b.role === 'output') outputs.push({ b, buf, bytes });
      entries.push({ binding: b.binding, resource: { buffer: buf } });
    }
    const bindGroup = device.createBindGroup({ label: `${label}:bind`, layout, entries });
    const staging = outputs.map((o) => {
      const s = device.createBuffer({
        label: `${label}:${o.b.name}:read`,
        size: align4(o.bytes),
        usage: Usage.MAP_READ | Usage.COPY_DST,
      });
      buffers.push(s);
      return s;
    });
    const enc = device.createCommandEncoder({ label });
    const pass = enc.beginComputePass({ label: `${label}:pass` });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...shard.dispatch);
    pass.end();
    for (const [i, o] of outputs.entries()) enc.copyBufferToBuffer(o.buf, 0, staging[i]!, 0, align4(o.bytes));
    progress('run', 0, 1);
    device.queue.submit([enc.finish()]);
    const oom = device.popErrorScope();
    const validation = device.popErrorScope();
    const [oomErr, valErr] = await Promise.all([oom, validation]);
    if (oomErr)
      throw new HearthError(
        'gpu/out-of-memory',
        `WGSL shard ${shard.id}: the GPU ran out of memory: ${oomErr.message}`,
      );
    if (valErr) throw manifestError(shard, `WebGPU rejected the shard: ${valErr.message}`);
    await raceAbort(
      Promise.race([device.queue.onSubmittedWorkDone(), ctx.lost.then((e) => Promise.reject(e))]),
      signal,
    );
    progress('run', 1, 1);
    const result: { name: string; tensor: HostTensor }[] = [];
    for (const [i, o] of outputs.entries()) {
      progress('read', i, outputs.length);
      const s = staging[i]!;
      await raceAbort(s.mapAsync(MAP_READ_MODE), signal);
      const data = s.getMappedRange().slice(0, o.bytes);
      s.unmap();
      result.push({ name: o.b.name, tensor: { dtype: o.b.dtype, shape: [...o.b.shape], data } });
    }
    progress('read', outputs.length, outputs.length);
    return result;
  } finally {
    if (!ctx.isLost) for (const b of buffers) b.destroy();
  }
}
