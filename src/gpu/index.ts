export { BufferPool, formatBytes, sizeClass } from './buffer-pool.ts';
export { compileWgsl, excerpt, type ShaderSource, type WgslMessage } from './compile.ts';
export {
  type AcquireOptions,
  type AdapterReport,
  acquireGpu,
  GpuContext,
  type GpuFeatures,
  type GpuLimits,
  GpuRuntime,
} from './context.ts';
export { getPipeline, type PipelineSpec, pipelineBuilds } from './pipeline-cache.ts';
export { type Dispatch, grid1d, Recorder } from './recorder.ts';
export {
  emptyTensor,
  GpuTensor,
  type HostArray,
  type HostArrays,
  readTensor,
  uploadTensor,
} from './tensor.ts';
