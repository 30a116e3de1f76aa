// Which execution providers a shard tries, in order: 'auto' is WebGPU where this environment
// has a WebGPU adapter, then the wasm (CPU) EP; a model that failed on WebGPU here but ran on
// wasm goes straight to wasm next time.
import { first } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import type { OnnxBackend, OnnxShard } from '../protocol/shard.ts';

let adapterProbe: Promise<boolean> | null = null;
const webgpuFailed = new Set<string>();

/**
 * Whether `navigator.gpu` exists and gives an adapter (asked once per worker).
 *
 * @example
 * const backend = (await webgpuAvailable()) ? 'webgpu' : 'wasm';
 */
export function webgpuAvailable(): Promise<boolean> {
  adapterProbe ??= (async () => {
    const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    if (!gpu) return false;
    try {
      return (await gpu.requestAdapter()) !== null;
    } catch {
      return false;
    }
  })();
  return adapterProbe;
}

/** The backends to try for `shard`, best first; throws 'gpu/unavailable' for a WebGPU-only shard without WebGPU. */
export async function backendsFor(shard: OnnxShard): Promise<OnnxBackend[]> {
  const want = shard.backend ?? 'auto';
  if (want === 'wasm') return ['wasm'];
  const gpu = await webgpuAvailable();
  if (want === 'webgpu') {
    if (!gpu) {
      throw new HearthError(
        'gpu/unavailable',
        `Shard ${shard.id} asks for the WebGPU backend, and this environment has no WebGPU adapter. Leave backend unset ('auto') to run on wasm.`,
        { details: { shard: shard.id } },
      );
    }
    return ['webgpu'];
  }
  return gpu && !webgpuFailed.has(shard.model) ? ['webgpu', 'wasm'] : ['wasm'];
}

/** Remembers that `model` failed on WebGPU and ran on wasm, so 'auto' skips WebGPU for it. */
export function noteWebgpuFailed(model: string): void {
  webgpuFailed.add(model);
  // Bounded like everything a stranger can make grow: forget the oldest.
  if (webgpuFailed.size > 256) webgpuFailed.delete(first(webgpuFailed, 'models that failed on WebGPU'));
}
