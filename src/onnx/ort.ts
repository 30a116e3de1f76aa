// Which onnxruntime-web build Hearth loads, and how it is set up.
//
// One loader, chosen by where the code runs, behind a lazy import (nothing loads before the
// first ONNX shard, so pages that never run one never fetch onnxruntime):
// - Node: the bare package 'onnxruntime-web', which Node resolves through the package's "node"
//   export condition to its Node build (wasm EP; reads its .wasm file from disk). The specifier
//   is held in a variable so that bundlers leave it alone: a browser bundle never contains the
//   Node branch, and never emits a second 28 MB .wasm for it.
// - Browsers and workers: 'onnxruntime-web/webgpu', the build with the WebGPU EP and the wasm
//   (CPU) EP in one .wasm. It finds that file next to itself through `import.meta.url`, which
//   vite rewrites both in dev (served from node_modules; keep it in `optimizeDeps.exclude`) and
//   in a build (emitted as an asset), so `env.wasm.wasmPaths` needs no setting.
// A host with other needs (another build, a CDN for the .wasm files) passes its own module to
// `setOrtModule` before the first shard.
import type * as Ort from 'onnxruntime-web';

/** The part of onnxruntime-web's module that Hearth uses; any of its builds fits. */
export type OrtModule = Pick<typeof Ort, 'InferenceSession' | 'Tensor' | 'env'>;

const NODE_ENTRY = 'onnxruntime-web';

let loading: Promise<OrtModule> | null = null;

function inNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; document?: unknown };
  const scope = globalThis as { WorkerGlobalScope?: unknown };
  return (
    typeof g.process?.versions?.node === 'string' && g.document === undefined && !scope.WorkerGlobalScope
  );
}

/**
 * One wasm thread: volunteers' machines stay responsive, replicas compute alike, and a tab
 * does not need cross-origin isolation. ORT's warnings (graph optimiser notes) are not ours.
 */
function configure(ort: OrtModule): OrtModule {
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  return ort;
}

/**
 * The onnxruntime-web module for this environment, loaded once (see the top of this file).
 *
 * @example
 * const ort = await loadOrt();
 * const t = new ort.Tensor('float32', new Float32Array(4), [2, 2]);
 */
export function loadOrt(): Promise<OrtModule> {
  loading ??= (
    inNode()
      ? (import(/* @vite-ignore */ NODE_ENTRY) as Promise<OrtModule>)
      : (import('onnxruntime-web/webgpu') as Promise<OrtModule>)
  ).then(configure, (e: unknown) => {
    loading = null;
    throw e;
  });
  return loading;
}

/**
 * Makes later sessions use `ort` instead of the default build (sessions made before keep the
 * module they came from). Pass `null` to go back to the default.
 *
 * @example
 * import * as ort from 'onnxruntime-web/wasm';
 * ort.env.wasm.wasmPaths = 'https://hub.example/ort/';
 * setOrtModule(ort);
 */
export function setOrtModule(ort: OrtModule | null): void {
  loading = ort ? Promise.resolve(configure(ort)) : null;
}
