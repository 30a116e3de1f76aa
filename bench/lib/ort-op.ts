// One ONNX model run by onnxruntime-web's WebGPU EP with GPU-resident inputs and pre-allocated
// GPU outputs on a device the caller owns: no CPU↔GPU copies inside the timed loop.
import type * as Ort from 'onnxruntime-web';
import type { GpuContext } from '../../src/gpu/context.ts';
import { GpuTensor, readTensor } from '../../src/gpu/tensor.ts';
import { Usage } from '../../src/gpu/usage.ts';
import { type OrtModule, ortSession } from './ort-node.ts';

export interface OrtInput {
  readonly data: Float32Array | Int32Array;
  readonly dims: readonly number[];
  /** Keep on the CPU: inputs the EP's kernel reads on the host (sequence lengths). */
  readonly cpu?: boolean;
}

const GPU_USAGE = Usage.STORAGE | Usage.COPY_SRC | Usage.COPY_DST;

export class OrtOp {
  private readonly buffers: GPUBuffer[] = [];
  private readonly outputs: Record<string, { buffer: GPUBuffer; dims: readonly number[] }> = {};

  private constructor(
    private readonly ctx: GpuContext,
    private readonly session: Ort.InferenceSession,
    private readonly feeds: Record<string, Ort.Tensor>,
    private readonly fetches: Record<string, Ort.Tensor>,
  ) {}

  /**
   * A session for `model` on `ctx`'s device, its float inputs uploaded to GPU buffers and its
   * outputs bound to GPU buffers allocated here, once.
   */
  static async create(
    ort: OrtModule,
    ctx: GpuContext,
    model: Uint8Array,
    inputs: Readonly<Record<string, OrtInput>>,
    outputs: Readonly<Record<string, readonly number[]>>,
  ): Promise<OrtOp> {
    const device = ctx.device;
    const session = await ortSession(ort, model, device);
    const buffers: GPUBuffer[] = [];
    const gpuBuffer = (bytes: number, label: string) => {
      const b = device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: GPU_USAGE });
      buffers.push(b);
      return b;
    };
    const feeds: Record<string, Ort.Tensor> = {};
    for (const [name, x] of Object.entries(inputs)) {
      const dataType = x.data instanceof Int32Array ? 'int32' : 'float32';
      if (x.cpu) {
        feeds[name] = new ort.Tensor(dataType, x.data, x.dims);
        continue;
      }
      const b = gpuBuffer(x.data.byteLength, `ort:${name}`);
      device.queue.writeBuffer(b, 0, x.data.buffer, x.data.byteOffset, x.data.byteLength);
      feeds[name] = ort.Tensor.fromGpuBuffer(b, { dataType, dims: x.dims });
    }
    const fetches: Record<string, Ort.Tensor> = {};
    const op = new OrtOp(ctx, session, feeds, fetches);
    for (const [name, dims] of Object.entries(outputs)) {
      const b = gpuBuffer(4 * dims.reduce((a, c) => a * c, 1), `ort:${name}`);
      fetches[name] = ort.Tensor.fromGpuBuffer(b, { dataType: 'float32', dims });
      op.outputs[name] = { buffer: b, dims };
    }
    op.buffers.push(...buffers);
    return op;
  }

  /** One inference, resolved once the GPU has finished it. */
  async run(): Promise<void> {
    const r = await this.session.run(this.feeds, this.fetches);
    for (const [name, t] of Object.entries(this.fetches)) {
      if (r[name] !== t) throw new Error(`ORT did not write output ${name} into the buffer bound to it`);
    }
    await this.ctx.device.queue.onSubmittedWorkDone();
  }

  /** The last run's output `name`, read back. */
  async read(name: string): Promise<Float32Array> {
    const o = this.outputs[name];
    if (!o) throw new Error(`no output ${name}`);
    // A view of the buffer as a Hearth tensor, only to read it back; never released to the pool.
    return readTensor(new GpuTensor(this.ctx, o.buffer, o.dims, 'f32'));
  }

  async release(): Promise<void> {
    await this.session.release();
    for (const b of this.buffers) b.destroy();
  }
}
