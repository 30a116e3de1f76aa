// The model configurations and the flat parameter layout are part of a `train` manifest, so they
// live on the protocol layer (protocol/train-model.ts), where the manifest parser can reach them;
// train/ re-exports them under their old name.
export * from '../protocol/train-model.ts';
