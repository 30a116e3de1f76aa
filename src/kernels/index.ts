// The kernel library: every function takes a Recorder first, returns new pooled tensors (the
// caller releases them) and is deterministic on a given adapter.
export { activationBackward, type DifferentiableActivation } from './activation-grad.ts';
export { type AdamWOptions, adamw } from './adamw.ts';
export { ATTENTION_MAX_HEAD_DIM, type AttentionOptions, causalAttention } from './attention.ts';
export { type AttentionGradients, causalAttentionBackward } from './attention-grad.ts';
export type { FloatDType } from './common.ts';
export { type CrossEntropyOptions, type CrossEntropyResult, softmaxCrossEntropy } from './cross-entropy.ts';
export { add, type ElementwiseOptions, gelu, mul, relu, scale, silu } from './elementwise.ts';
export { embedding, embeddingBackward } from './embedding.ts';
export { type LayernormOptions, type LayernormResult, layernorm, layernormWithStats } from './layernorm.ts';
export { type LayernormGradients, layernormBackward } from './layernorm-grad.ts';
export { type Activation, type MatmulOptions, matmul } from './matmul.ts';
export { type MatmulBackwardOptions, type MatmulGradients, matmulBackward, sumRows } from './matmul-grad.ts';
export { type ReduceOp, type ReduceOptions, reduce } from './reduce.ts';
export { type SoftmaxOptions, softmax } from './softmax.ts';
export { type TransposeOptions, transpose } from './transpose.ts';
