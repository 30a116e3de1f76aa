import { HearthError } from '../core/errors.ts';
import { compileWgsl } from './compile.ts';

export interface PipelineSpec {
  /** The kernel's name, used in labels and errors. */
  readonly label: string;
  readonly code: string;
  readonly entryPoint?: string;
  /** Values for the shader's `override` constants: the pipeline is specialised on exactly these. */
  readonly constants?: Readonly<Record<string, number>>;
}

interface DeviceCache {
  readonly modules: Map<string, Promise<GPUShaderModule>>;
  readonly pipelines: Map<string, Promise<GPUComputePipeline>>;
  builds: number;
}

const caches = new WeakMap<GPUDevice, DeviceCache>();

function cacheFor(device: GPUDevice): DeviceCache {
  let c = caches.get(device);
  if (!c) caches.set(device, (c = { modules: new Map(), pipelines: new Map(), builds: 0 }));
  return c;
}

function constantsKey(constants: Readonly<Record<string, number>> | undefined): string {
  if (!constants) return '';
  return Object.keys(constants)
    .sort()
    .map((k) => `${k}=${constants[k]}`)
    .join(',');
}

/**
 * The compute pipeline for `spec` on `device`, built once and cached per device (a WeakMap, so
 * a lost device takes its pipelines with it). The key is exactly what the pipeline is
 * specialised on: the source text, the entry point and the override constants.
 */
export function getPipeline(device: GPUDevice, spec: PipelineSpec): Promise<GPUComputePipeline> {
  const cache = cacheFor(device);
  const entryPoint = spec.entryPoint ?? 'main';
  const key = `${entryPoint}|${constantsKey(spec.constants)}|${spec.code}`;
  let p = cache.pipelines.get(key);
  if (!p) {
    p = build(device, cache, spec, entryPoint);
    cache.pipelines.set(key, p);
    // A failed build is not cached: the next call reports the error again rather than a stale one.
    p.catch(() => cache.pipelines.delete(key));
  }
  return p;
}

/** How many pipelines were built on this device (tests use it to prove reuse). */
export function pipelineBuilds(device: GPUDevice): number {
  return caches.get(device)?.builds ?? 0;
}

async function build(
  device: GPUDevice,
  cache: DeviceCache,
  spec: PipelineSpec,
  entryPoint: string,
): Promise<GPUComputePipeline> {
  let module = cache.modules.get(spec.code);
  if (!module) {
    module = compileWgsl(device, { label: spec.label, code: spec.code });
    cache.modules.set(spec.code, module);
    module.catch(() => cache.modules.delete(spec.code));
  }
  const label = spec.constants ? `${spec.label}{${constantsKey(spec.constants)}}` : spec.label;
  cache.builds++;
  try {
    return await device.createComputePipelineAsync({
      label,
      layout: 'auto',
      compute: { module: await module, entryPoint, ...(spec.constants ? { constants: spec.constants } : {}) },
    });
  } catch (cause) {
    if (cause instanceof HearthError) throw cause;
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new HearthError('wgsl/pipeline', `Pipeline "${label}" could not be built: ${message}`, {
      details: { shader: spec.label, entryPoint, constants: spec.constants ?? {} },
      cause,
    });
  }
}
