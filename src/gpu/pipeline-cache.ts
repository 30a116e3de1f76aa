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

/** One slot of an explicit bind group layout. */
export interface LayoutSlot {
  readonly binding: number;
  readonly type: 'uniform' | 'read-only-storage' | 'storage';
}

interface LayoutCache {
  readonly layouts: Map<string, GPUBindGroupLayout>;
  readonly pipelines: Map<string, Promise<GPUComputePipeline>>;
}
const layoutCaches = new WeakMap<GPUDevice, LayoutCache>();

const slotsKey = (slots: readonly LayoutSlot[]) => slots.map((s) => `${s.binding}:${s.type}`).join(',');

/**
 * A compute pipeline with an explicit bind group layout of exactly these slots (a researcher's
 * kernel, whose passes bind some of the module's resources), built once per device and cached
 * like `getPipeline` — keyed by the source, entry point and slots. A failed build is not cached.
 * Resolves with the pipeline and its group-0 layout for bind groups.
 */
export function getLayoutPipeline(
  device: GPUDevice,
  spec: Omit<PipelineSpec, 'constants'> & { readonly slots: readonly LayoutSlot[] },
): Promise<{ pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }> {
  let lc = layoutCaches.get(device);
  if (!lc) layoutCaches.set(device, (lc = { layouts: new Map(), pipelines: new Map() }));
  const sk = slotsKey(spec.slots);
  let layout = lc.layouts.get(sk);
  if (!layout) {
    layout = device.createBindGroupLayout({
      label: `layout{${sk}}`,
      entries: spec.slots.map((s) => ({
        binding: s.binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: s.type },
      })),
    });
    lc.layouts.set(sk, layout);
  }
  const bgl = layout;
  const pipelines = lc.pipelines;
  const entryPoint = spec.entryPoint ?? 'main';
  const key = `${entryPoint}|${sk}|${spec.code}`;
  let p = pipelines.get(key);
  if (!p) {
    const cache = cacheFor(device);
    p = (async () => {
      let module = cache.modules.get(spec.code);
      if (!module) {
        module = compileWgsl(device, { label: spec.label, code: spec.code });
        cache.modules.set(spec.code, module);
        module.catch(() => cache.modules.delete(spec.code));
      }
      const m = await module;
      cache.builds++;
      try {
        return await device.createComputePipelineAsync({
          label: `${spec.label}:${entryPoint}`,
          layout: device.createPipelineLayout({
            label: `${spec.label}:${entryPoint}:layout`,
            bindGroupLayouts: [bgl],
          }),
          compute: { module: m, entryPoint },
        });
      } catch (cause) {
        const message = cause instanceof Error ? cause.message : String(cause);
        throw new HearthError(
          'wgsl/pipeline',
          `Pipeline "${spec.label}:${entryPoint}" could not be built: ${message}`,
          {
            details: { shader: spec.label, entryPoint },
            cause,
          },
        );
      }
    })();
    pipelines.set(key, p);
    p.catch(() => pipelines.delete(key));
  }
  return p.then((pipeline) => ({ pipeline, layout: bgl }));
}
