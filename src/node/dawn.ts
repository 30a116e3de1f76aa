import { create, globals } from 'webgpu';
import { type AcquireOptions, acquireGpu, type GpuContext } from '../gpu/context.ts';

let gpu: GPU | null = null;

/**
 * The `GPU` object of Dawn's Node binding (the `webgpu` package), with WebGPU's globals
 * (GPUBufferUsage, GPUMapMode, …) installed once. Dawn finds its Vulkan driver through
 * VK_ICD_FILENAMES; scripts/run-ts.mjs and the test script set it to SwiftShader by default.
 */
export function dawnGpu(): GPU {
  if (!gpu) {
    Object.assign(globalThis, globals);
    gpu = create([]) as GPU;
  }
  return gpu;
}

/** acquireGpu() on Dawn. */
export function acquireDawn(options: Omit<AcquireOptions, 'gpu'> = {}): Promise<GpuContext> {
  return acquireGpu({ ...options, gpu: dawnGpu() });
}
