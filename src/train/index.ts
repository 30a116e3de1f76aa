// train/: built-in models on kernels/ with explicit backward, the inner loop and DiLoCo's outer
// step. What the `train` job kind calls.
export {
  BYTE_VOCAB,
  initParams,
  type MlpConfig,
  MODEL_LIMITS,
  type ModelConfig,
  type ParamEntry,
  paramCount,
  paramLayout,
  parseModelConfig,
  seededRandom,
  type TransformerConfig,
} from './config.ts';
export { type DataRange, sampleBatch, shardRanges, splitCorpus, validationBatches } from './data.ts';
export {
  averageFrames,
  DEFAULT_OUTER,
  type InnerResult,
  type InnerSpec,
  innerLoop,
  meanLoss,
  type OuterOptimizer,
  outerStep,
  pseudoGradient,
} from './diloco.ts';
export { EXPORT_OPSET, exportTransformerOnnx } from './onnx-export.ts';
export { EMPTY_PROMPT_BYTE, SAMPLE_LIMITS, type SampleOptions, sampleLogits, sampleText } from './sample.ts';
export { type Batch, DEFAULT_INNER, type InnerOptimizer, Trainer } from './trainer.ts';
