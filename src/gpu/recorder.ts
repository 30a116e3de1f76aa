import { HearthError } from '../core/errors.ts';
import type { GpuContext } from './context.ts';
import { Usage } from './usage.ts';

export interface Dispatch {
  readonly pipeline: GPUComputePipeline;
  /** Uniform bytes bound at @binding(0); storage buffers follow at @binding(1), (2), … */
  readonly uniforms?: ArrayBufferView | ArrayBuffer;
  readonly buffers: readonly GPUBuffer[];
  readonly workgroups: readonly [number, number?, number?];
}

/**
 * Records dispatches into one command encoder and one compute pass (dispatches in a compute
 * pass see each other's writes), then submits them together. Uniform buffers come from the
 * pool and go back once the GPU is done with them.
 *
 * @example
 * const rec = new Recorder(ctx, 'step');
 * const y = await matmul(rec, a, b);
 * await rec.submit();
 */
export class Recorder {
  readonly ctx: GpuContext;
  readonly label: string;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly temps: GPUBuffer[] = [];
  private dispatches = 0;
  private submitted = false;

  constructor(ctx: GpuContext, label = 'hearth') {
    ctx.assertAlive();
    this.ctx = ctx;
    this.label = label;
  }

  get dispatchCount(): number {
    return this.dispatches;
  }

  private getEncoder(): GPUCommandEncoder {
    if (this.submitted) {
      throw new HearthError(
        'input/invalid',
        `Recorder "${this.label}" was already submitted; make a new one.`,
      );
    }
    this.encoder ??= this.ctx.device.createCommandEncoder({ label: this.label });
    return this.encoder;
  }

  private getPass(): GPUComputePassEncoder {
    const enc = this.getEncoder();
    this.pass ??= enc.beginComputePass({ label: `${this.label}:pass` });
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Records one dispatch. Workgroup counts must already respect the device's limits. */
  dispatch(d: Dispatch): void {
    const [x, y = 1, z = 1] = d.workgroups;
    const max = this.ctx.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new HearthError(
        'gpu/limit',
        `Dispatch of ${d.pipeline.label} asks for ${x}×${y}×${z} workgroups; this device allows ${max} per dimension.`,
        { details: { workgroups: [x, y, z], limit: max } },
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    const entries: GPUBindGroupEntry[] = [];
    if (d.uniforms) {
      const bytes = d.uniforms.byteLength;
      const ub = this.ctx.pool.acquire(bytes, Usage.UNIFORM | Usage.COPY_DST, `${d.pipeline.label}:uniforms`);
      const src = d.uniforms instanceof ArrayBuffer ? new Uint8Array(d.uniforms) : d.uniforms;
      this.ctx.device.queue.writeBuffer(ub, 0, src.buffer, src.byteOffset, bytes);
      this.temps.push(ub);
      entries.push({ binding: 0, resource: { buffer: ub, size: bytes } });
    }
    for (const [i, buffer] of d.buffers.entries()) entries.push({ binding: i + 1, resource: { buffer } });
    const bindGroup = this.ctx.device.createBindGroup({
      label: `${d.pipeline.label}:bind`,
      layout: d.pipeline.getBindGroupLayout(0),
      entries,
    });
    const pass = this.getPass();
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
  }

  /** Records a buffer copy (ends the current compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Keeps `buf` alive until the GPU has finished this recording, then releases it to the pool. */
  releaseAfterSubmit(buf: GPUBuffer): void {
    this.temps.push(buf);
  }

  /**
   * Submits everything recorded and resolves when the GPU has finished it. A validation error
   * anywhere in the recording becomes a HearthError('gpu/validation').
   */
  async submit(): Promise<void> {
    if (this.submitted) return;
    this.endPass();
    const enc = this.encoder;
    this.submitted = true;
    // Push, record and pop without an await between them, so no other task's scope interleaves;
    // encoding errors (a bad bind group, a dispatch) surface at finish().
    this.ctx.device.pushErrorScope('validation');
    if (enc) this.ctx.device.queue.submit([enc.finish({ label: this.label })]);
    const popped = this.ctx.device.popErrorScope();
    const error = await popped;
    const done = this.ctx.device.queue.onSubmittedWorkDone();
    await Promise.race([done, this.ctx.lost.then((e) => Promise.reject(e))]);
    for (const b of this.temps) this.ctx.pool.release(b);
    this.temps.length = 0;
    if (error) {
      throw new HearthError('gpu/validation', `WebGPU rejected "${this.label}": ${error.message}`, {
        details: { recording: this.label },
      });
    }
  }
}

/**
 * Spreads `count` workgroups over x and y so that neither exceeds maxComputeWorkgroupsPerDimension.
 * Shaders that use it compute `wid = wg.x + wg.y * num_workgroups.x` and return when wid ≥ count.
 */
export function grid1d(ctx: GpuContext, count: number): [number, number] {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (count <= max) return [count, 1];
  const y = Math.ceil(count / max);
  if (y > max) {
    throw new HearthError(
      'gpu/limit',
      `${count} workgroups exceed this device's ${max}×${max} dispatch grid. Split the work into smaller shards.`,
      { details: { count, limit: max } },
    );
  }
  return [Math.ceil(count / y), y];
}
