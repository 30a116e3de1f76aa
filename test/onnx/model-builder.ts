// The ONNX writer lives in src/onnx/model-builder.ts (`hearth example` uses it too).
export * from '../../src/onnx/model-builder.ts';
