// TensorFlow.js (tfjs-core + tfjs-backend-webgpu 4.22) in Node on Dawn, for a side-by-side
// training step on the same adapter. tfjs-core's ESM build uses directory imports Node cannot
// resolve and its CommonJS build lacks the gradient registrations (only the `@tensorflow/tfjs`
// union registers them), so the three entry points are bundled once with esbuild (vite's
// dependency, already installed) into a temporary ES module and loaded from there.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export type Tf = typeof import('@tensorflow/tfjs-core');

/** Loads tfjs with the WebGPU backend active, `navigator.gpu` set to `gpu`. */
export async function loadTfjsWebGpu(gpu: GPU): Promise<Tf> {
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  else if (!g.navigator.gpu) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  const { build } = await import('esbuild');
  const dir = mkdtempSync(join(tmpdir(), 'hearth-tfjs-'));
  const entry = join(dir, 'entry.mjs');
  writeFileSync(
    entry,
    "export * from '@tensorflow/tfjs-core';\n" +
      "import '@tensorflow/tfjs-core/dist/register_all_gradients.js';\n" +
      "import '@tensorflow/tfjs-backend-webgpu';\n",
  );
  const out = join(dir, 'tf.mjs');
  await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'node',
    mainFields: ['module', 'main'],
    outfile: out,
    logLevel: 'error',
    // The bundle's CommonJS parts require Node built-ins (util): give them a require.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    nodePaths: [join(process.cwd(), 'node_modules')],
  });
  const tf = (await import(pathToFileURL(out).href)) as Tf;
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs could not start its webgpu backend');
  await tf.ready();
  return tf;
}
