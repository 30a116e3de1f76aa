// ONNX inference for shards on onnxruntime-web: execution-provider choice, a session cache and
// tensors in and out. See run.ts for the one call a worker makes.
export { webgpuAvailable } from './backend.ts';
export { loadOrt, type OrtModule, setOrtModule } from './ort.ts';
export { type OnnxRunResult, type RunOnnxOptions, runOnnx } from './run.ts';
export {
  getSession,
  MAX_CACHED_SESSIONS,
  MAX_MODEL_BYTES,
  type ModelSource,
  type OnnxSession,
  type OnnxSessionValue,
  releaseSessions,
} from './session.ts';
