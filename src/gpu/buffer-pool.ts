import { HearthError } from '../core/errors.ts';
import type { GpuLimits } from './context.ts';
import { Usage } from './usage.ts';

const MIN_CLASS = 256;
/** NaN as an f32 (0x7fc07e00) and as each f16 half (0x7fc0, 0x7e00). */
export const POISON_BITS = 0x7fc07e00;
/** Free buffers kept for reuse, in bytes, before the pool destroys instead of keeping. */
const DEFAULT_KEEP_BYTES = 256 * 1024 * 1024;

/**
 * Rounds a byte size up to its size class: powers of two up to 1 MiB, then steps of a quarter
 * of the enclosing power of two, so a pooled buffer wastes at most 25% above 1 MiB.
 */
export function sizeClass(bytes: number): number {
  const n = Math.max(MIN_CLASS, Math.ceil(bytes / 4) * 4);
  const pow = 2 ** Math.ceil(Math.log2(n));
  if (pow <= 1 << 20) return pow;
  const step = pow / 8;
  return Math.ceil(n / step) * step;
}

/**
 * Reuses GPU buffers by (usage, size class). `acquire` checks sizes against the device's
 * limits first, so an oversized request is a clear HearthError, not a Dawn validation error.
 */
export class BufferPool {
  private readonly device: GPUDevice;
  private readonly limits: GpuLimits;
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly classOf = new WeakMap<GPUBuffer, string>();
  private freeBytes = 0;
  private liveBytes = 0;
  readonly keepBytes: number;
  private dead = false;
  /**
   * Debugging aid: fill every storage buffer handed out with NaN bits (f32 and f16 alike), so a
   * kernel that leaves an output element unwritten fails its test instead of passing on stale data.
   */
  poison = false;

  constructor(device: GPUDevice, limits: GpuLimits, keepBytes = DEFAULT_KEEP_BYTES) {
    this.device = device;
    this.limits = limits;
    this.keepBytes = keepBytes;
  }

  /** Bytes in buffers handed out and not yet released. */
  get bytesInUse(): number {
    return this.liveBytes;
  }

  /** Bytes held for reuse. */
  get bytesFree(): number {
    return this.freeBytes;
  }

  /**
   * A buffer of at least `bytes` with `usage`. Storage buffers are checked against
   * maxStorageBufferBindingSize, every buffer against maxBufferSize.
   */
  acquire(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    this.checkSize(bytes, usage, label);
    const size = Math.min(sizeClass(bytes), this.cap(usage));
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    let buf = list?.pop();
    if (buf) {
      this.freeBytes -= size;
      buf.label = label;
    } else {
      buf = this.device.createBuffer({ size, usage, label });
      this.classOf.set(buf, key);
    }
    this.liveBytes += size;
    if (this.poison && usage & Usage.STORAGE && usage & Usage.COPY_DST) {
      this.device.queue.writeBuffer(buf, 0, new Uint32Array(size / 4).fill(POISON_BITS));
    }
    return buf;
  }

  /** Returns a buffer for reuse. Its contents are undefined for the next holder. */
  release(buf: GPUBuffer): void {
    const key = this.classOf.get(buf);
    if (!key || this.dead) {
      buf.destroy();
      return;
    }
    this.liveBytes -= buf.size;
    if (buf.mapState !== 'unmapped') buf.unmap();
    if (this.freeBytes + buf.size > this.keepBytes) {
      buf.destroy();
      return;
    }
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
    this.freeBytes += buf.size;
  }

  /** Destroys every free buffer (buffers in use stay valid until released). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.freeBytes = 0;
  }

  destroy(): void {
    this.trim();
    this.dead = true;
  }

  /** After a device loss: drop references without calling into the dead device. */
  forget(): void {
    this.free.clear();
    this.freeBytes = 0;
    this.dead = true;
  }

  private cap(usage: GPUBufferUsageFlags): number {
    return usage & Usage.STORAGE
      ? Math.min(this.limits.maxBufferSize, this.limits.maxStorageBufferBindingSize)
      : this.limits.maxBufferSize;
  }

  private checkSize(bytes: number, usage: GPUBufferUsageFlags, label: string): void {
    if (!Number.isFinite(bytes) || bytes < 0) {
      throw new HearthError('input/invalid', `Buffer "${label}" has an invalid size: ${bytes} bytes.`, {
        details: { bytes, label },
      });
    }
    const storage = (usage & Usage.STORAGE) !== 0;
    const limit = this.cap(usage);
    if (bytes > limit) {
      const which =
        storage && limit === this.limits.maxStorageBufferBindingSize
          ? 'maxStorageBufferBindingSize'
          : 'maxBufferSize';
      throw new HearthError(
        'gpu/limit',
        `Buffer "${label}" needs ${formatBytes(bytes)}, over this device's ${which} of ${formatBytes(limit)}. ` +
          'Split the work into smaller shards or use a device with larger limits.',
        { details: { bytes, limit, limitName: which, label } },
      );
    }
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(2)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
