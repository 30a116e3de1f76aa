import { HearthError } from '../core/errors.ts';
import { BufferPool } from './buffer-pool.ts';

/** Optional features Hearth uses when the adapter has them. */
export interface GpuFeatures {
  readonly shaderF16: boolean;
  readonly subgroups: boolean;
  readonly timestampQuery: boolean;
}

/** The limits kernels plan around, read from the device actually granted. */
export interface GpuLimits {
  readonly maxBufferSize: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxUniformBufferBindingSize: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupSizeY: number;
  readonly maxComputeWorkgroupSizeZ: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBuffersPerShaderStage: number;
  readonly minStorageBufferOffsetAlignment: number;
}

export interface AdapterReport {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly isFallbackAdapter: boolean;
  /** One line for tables and logs, e.g. "google swiftshader (fallback)". */
  readonly summary: string;
}

/** The limits read from the device (and `minStorageBufferOffsetAlignment`, read apart). */
export const LIMIT_NAMES = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxUniformBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface AcquireOptions {
  /** The `GPU` object: `navigator.gpu` in browsers (the default), the `webgpu` package's in Node. */
  readonly gpu?: GPU;
  readonly powerPreference?: GPUPowerPreference;
  /** Leave optional features off even where present (tests of the fallback paths). */
  readonly disableFeatures?: readonly ('shader-f16' | 'subgroups' | 'timestamp-query')[];
  /** Called once for every error nobody caught in an error scope. Default: console.error. */
  readonly onUncapturedError?: (error: HearthError) => void;
}

/**
 * One WebGPU device with what Hearth knows about it: features, limits, adapter report, a
 * buffer pool, and a promise that settles if the device is lost.
 */
export class GpuContext {
  readonly device: GPUDevice;
  readonly adapter: AdapterReport;
  readonly features: GpuFeatures;
  readonly limits: GpuLimits;
  readonly pool: BufferPool;
  /** Resolves with the loss as a HearthError once the device is lost (never rejects). */
  readonly lost: Promise<HearthError>;
  private lostError: HearthError | null = null;

  constructor(device: GPUDevice, adapter: AdapterReport, onUncapturedError: (error: HearthError) => void) {
    this.device = device;
    this.adapter = adapter;
    this.features = {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      timestampQuery: device.features.has('timestamp-query'),
    };
    const limits = {} as Record<string, number>;
    for (const name of LIMIT_NAMES) limits[name] = device.limits[name];
    limits.minStorageBufferOffsetAlignment = device.limits.minStorageBufferOffsetAlignment;
    this.limits = limits as unknown as GpuLimits;
    this.pool = new BufferPool(device, this.limits);
    this.lost = device.lost.then((info) => {
      this.lostError = new HearthError(
        'gpu/device-lost',
        `The GPU device was lost (${info.reason}): ${info.message || 'no message'}. ` +
          'Work in flight is void; acquire a new device (GpuRuntime.context() does this) and run it again.',
        { details: { reason: info.reason, message: info.message } },
      );
      this.pool.forget();
      return this.lostError;
    });
    // Wired once, here: an error that escaped every error scope is a Hearth bug or a lost device.
    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      onUncapturedError(
        new HearthError('gpu/validation', `Uncaptured WebGPU error: ${err.message}`, {
          details: { kind: err.constructor?.name ?? 'GPUError' },
        }),
      );
    });
  }

  get isLost(): boolean {
    return this.lostError !== null;
  }

  /** Throws the loss as a HearthError if the device is gone. */
  assertAlive(): void {
    if (this.lostError) throw this.lostError;
  }

  /** Destroys the device and every pooled buffer. The context is unusable afterwards. */
  destroy(): void {
    this.pool.destroy();
    this.device.destroy();
  }
}

function defaultGpu(): GPU {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav?.gpu) {
    throw new HearthError(
      'gpu/unavailable',
      'WebGPU is not available here (navigator.gpu is missing). Use a browser with WebGPU enabled, ' +
        "or pass the `webgpu` package's GPU object in Node.",
    );
  }
  return nav.gpu;
}

/**
 * Acquires a device with the adapter's own maxima for the limits kernels use, and the optional
 * features Hearth can exploit (shader-f16, subgroups, timestamp-query) where present.
 *
 * @example
 * const ctx = await acquireGpu();            // browser
 * const ctx = await acquireGpu({ gpu });      // Node, gpu = create([]) from 'webgpu'
 */
export async function acquireGpu(options: AcquireOptions = {}): Promise<GpuContext> {
  const gpu = options.gpu ?? defaultGpu();
  const adapter = await gpu.requestAdapter(
    options.powerPreference ? { powerPreference: options.powerPreference } : {},
  );
  if (!adapter) {
    throw new HearthError(
      'gpu/unavailable',
      'No WebGPU adapter was found. In Chromium start with --enable-unsafe-webgpu where WebGPU is ' +
        'not on by default; in Node set VK_ICD_FILENAMES to a Vulkan driver (SwiftShader works).',
    );
  }
  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
  const requiredFeatures = wanted.filter(
    (f) => adapter.features.has(f) && !options.disableFeatures?.includes(f as never),
  );
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) requiredLimits[name] = adapter.limits[name];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'hearth' });
  } catch (cause) {
    throw new HearthError('gpu/unavailable', `The adapter refused a device: ${String(cause)}`, { cause });
  }
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const fallback = Boolean(
    (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
  );
  const parts = [info.vendor, info.architecture, info.device, info.description].filter(Boolean);
  const report: AdapterReport = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: fallback,
    summary: `${[...new Set(parts)].join(' ') || 'unknown adapter'}${fallback ? ' (fallback)' : ''}`,
  };
  const onError = options.onUncapturedError ?? ((e: HearthError) => console.error(e.message));
  return new GpuContext(device, report, onError);
}

/**
 * Hands out a live context and makes a new one after a device loss, so one lost device costs
 * the shard in flight and nothing else.
 */
export class GpuRuntime {
  private current: Promise<GpuContext> | null = null;
  private readonly options: AcquireOptions;

  constructor(options: AcquireOptions = {}) {
    this.options = options;
  }

  /** The live context, acquiring a new device if there is none or the last one was lost. */
  async context(): Promise<GpuContext> {
    if (this.current) {
      const ctx = await this.current.catch(() => null);
      if (ctx && !ctx.isLost) return ctx;
    }
    this.current = acquireGpu(this.options);
    return this.current;
  }

  async dispose(): Promise<void> {
    const ctx = await this.current?.catch(() => null);
    this.current = null;
    ctx?.destroy();
  }
}
