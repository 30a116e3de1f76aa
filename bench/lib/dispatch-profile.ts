// A per-dispatch profile of GPU work for benchmarks: while installed, every dispatch and copy a
// Recorder records becomes its own command buffer, submitted and waited for one at a time at
// submit(), and its wall time is added to its pipeline's label. Serialising costs time of its own
// (a profiled step is slower than a plain one), so read the shares, not the sums. This is how
// the training step's barrier-heavy backward kernels were found (README, Kernels).
import { Recorder } from '../../src/gpu/recorder.ts';

export interface DispatchProfile {
  /** Rows by total time, slowest first: label, ms, calls. */
  rows(): { label: string; ms: number; calls: number }[];
  /** Puts the Recorder back as it was. */
  uninstall(): void;
}

interface Patched {
  ctx: { device: GPUDevice };
  encoder: GPUCommandEncoder | null;
  endPass(): void;
  profiled?: [string, GPUCommandBuffer][];
}

export function installDispatchProfile(): DispatchProfile {
  const acc = new Map<string, { ms: number; calls: number }>();
  // The Recorder's private members are plain properties at run time; only this bench tool reaches
  // for them.
  const proto = Recorder.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const original = { dispatch: proto.dispatch, copy: proto.copy, submit: proto.submit };
  const cut = (self: Patched, label: string) => {
    self.endPass();
    if (!self.encoder) return;
    (self.profiled ??= []).push([label, self.encoder.finish()]);
    self.encoder = null;
  };
  proto.dispatch = function (this: Patched, d: unknown) {
    original.dispatch?.call(this, d);
    cut(this, (d as { pipeline: GPUComputePipeline }).pipeline.label);
  };
  proto.copy = function (this: Patched, ...a: unknown[]) {
    original.copy?.apply(this, a);
    cut(this, 'copy');
  };
  proto.submit = async function (this: Patched) {
    for (const [label, cb] of this.profiled ?? []) {
      const t0 = performance.now();
      this.ctx.device.queue.submit([cb]);
      await this.ctx.device.queue.onSubmittedWorkDone();
      const e = acc.get(label) ?? { ms: 0, calls: 0 };
      e.ms += performance.now() - t0;
      e.calls++;
      acc.set(label, e);
    }
    this.profiled = [];
    return original.submit?.call(this);
  };
  return {
    rows: () => [...acc.entries()].map(([label, e]) => ({ label, ...e })).sort((a, b) => b.ms - a.ms),
    uninstall() {
      Object.assign(proto, original);
    },
  };
}
