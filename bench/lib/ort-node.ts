// onnxruntime-web's WebGPU execution provider inside Node, on a GPUDevice the caller already
// holds (Dawn, from the `webgpu` package), so that ORT and Hearth share one adapter and device.
import type * as Ort from 'onnxruntime-web';

export type OrtModule = typeof Ort;

let patched = false;

/**
 * ORT's wasm heap is a SharedArrayBuffer (threaded build) and it uploads with
 * `queue.writeBuffer(buf, off, heapView, …)`; Dawn's Node binding rejects views of shared memory
 * ("Invalid argument"). Browsers accept them, so copy such views into plain memory first.
 */
function patchSharedWrites(): void {
  if (patched) return;
  patched = true;
  const Queue = (globalThis as { GPUQueue?: { prototype: GPUQueue } }).GPUQueue;
  if (!Queue) throw new Error('GPUQueue is not defined: install the webgpu globals (dawnGpu()) first');
  const write = Queue.prototype.writeBuffer;
  Queue.prototype.writeBuffer = function (
    this: GPUQueue,
    buffer: GPUBuffer,
    offset: number,
    data: BufferSource | SharedArrayBuffer,
    dataOffset?: number,
    size?: number,
  ): undefined {
    if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
      const el = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
      const start = data.byteOffset + (dataOffset ?? 0) * el;
      const bytes = size === undefined ? data.byteLength - (dataOffset ?? 0) * el : size * el;
      const copy = new Uint8Array(bytes);
      copy.set(new Uint8Array(data.buffer, start, bytes));
      return write.call(this, buffer, offset, copy);
    }
    return write.call(this, buffer, offset, data as BufferSource, dataOffset, size);
  } as GPUQueue['writeBuffer'];
}

/**
 * Loads onnxruntime-web's WebGPU build in Node with `navigator.gpu` set to `gpu`. Sessions then
 * run on the device passed in their execution-provider options (see {@link ortSession}).
 */
export async function loadOrtWebGpu(gpu: GPU): Promise<OrtModule> {
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  else if (!g.navigator.gpu) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  patchSharedWrites();
  const ort = (await import('onnxruntime-web/webgpu')) as OrtModule;
  // Two cores here: no wasm worker threads competing with Dawn's.
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  return ort;
}

/** A session on `device` with every output left on the GPU. */
export function ortSession(
  ort: OrtModule,
  model: Uint8Array,
  device: GPUDevice,
): Promise<Ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    executionProviders: [{ name: 'webgpu', device }],
    preferredOutputLocation: 'gpu-buffer',
    graphOptimizationLevel: 'all',
  });
}
