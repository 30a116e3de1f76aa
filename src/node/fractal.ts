// The picture job of `npm start`: the Mandelbrot set rendered by volunteers. A WGSL kernel counts
// escape iterations per pixel over one band of rows per shard (u32 counts, so replicas must agree
// bit for bit); `fractalPng` turns the validated bands into a PNG.
import { createHash } from 'node:crypto';
import { PNG } from 'pngjs';
import { HearthError } from '../core/errors.ts';

/** Escape-time kernel: one invocation per pixel of this shard's band. */
export const FRACTAL_KERNEL = `struct Params { width: u32, rows: u32, row0: u32, maxIter: u32, x0: f32, y0: f32, step: f32, pad: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> iters: array<u32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= p.width || g.y >= p.rows) { return; }
  let cx = p.x0 + f32(g.x) * p.step;
  let cy = p.y0 + f32(p.row0 + g.y) * p.step;
  var x = 0.0;
  var y = 0.0;
  var i = 0u;
  loop {
    if (i >= p.maxIter || x * x + y * y > 4.0) { break; }
    let xt = x * x - y * y + cx;
    y = 2.0 * x * y + cy;
    x = xt;
    i = i + 1u;
  }
  iters[g.y * p.width + g.x] = i;
}`;

export interface FractalSpec {
  readonly width: number;
  readonly height: number;
  readonly bands: number;
  readonly maxIter: number;
}

/**
 * The Mandelbrot job: a `width`×`height` view of [-2.2, 0.8] × [-1.2, 1.2] (scaled to the
 * aspect), `bands` shards of rows, `maxIter` iterations at most per pixel.
 *
 * @example
 * const { manifest, blobs } = fractalJob({ width: 384, height: 256, bands: 8 });
 */
export function fractalJob(opts: Partial<FractalSpec> = {}): {
  manifest: Record<string, unknown>;
  blobs: Map<string, Uint8Array>;
  spec: FractalSpec;
} {
  const spec: FractalSpec = {
    width: opts.width ?? 384,
    height: opts.height ?? 256,
    bands: opts.bands ?? 8,
    maxIter: opts.maxIter ?? 256,
  };
  const { width, height, bands, maxIter } = spec;
  const step = 3 / width;
  const x0 = -2.2;
  const y0 = -(height * step) / 2;
  const bandRows = Math.ceil(height / bands);
  const blobs = new Map<string, Uint8Array>();
  const shards = [];
  for (let row0 = 0; row0 < height; row0 += bandRows) {
    const rows = Math.min(bandRows, height - row0);
    const params = new ArrayBuffer(32);
    new Uint32Array(params, 0, 4).set([width, rows, row0, maxIter]);
    new Float32Array(params, 16, 3).set([x0, y0, step]);
    const bytes = new Uint8Array(params);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    blobs.set(sha256, bytes);
    shards.push({
      dispatch: [Math.ceil(width / 8), Math.ceil(rows / 8), 1],
      bindings: [
        { binding: 0, role: 'uniform', name: 'params', sha256 },
        { binding: 1, role: 'output', name: 'iters', dtype: 'u32', shape: [rows, width] },
      ],
    });
  }
  const manifest = {
    v: 1,
    kind: 'wgsl',
    name: `Mandelbrot ${width}×${height}`,
    source: FRACTAL_KERNEL,
    shards,
    replication: 2,
    maxReplicas: 4,
    // Integer counts: replicas on one kind of adapter agree exactly. (Adapters that contract
    // x·x + c into a fused multiply-add may differ at the set's edge; a third replica decides.)
    tolerance: 'exact',
    deadlineMs: 60_000,
    creditRate: 1e-6,
    // At most maxIter iterations of ~8 FLOPs per pixel of the tallest band.
    flopsPerShard: 8 * maxIter * width * bandRows,
  };
  return { manifest, blobs, spec };
}

/** A colour for an escape count: black inside the set, a warm gradient outside. */
function colour(i: number, maxIter: number): [number, number, number] {
  if (i >= maxIter) return [0, 0, 0];
  const t = Math.sqrt(i / maxIter);
  return [Math.round(255 * Math.min(1, 1.6 * t)), Math.round(255 * t * t), Math.round(90 + 120 * (1 - t))];
}

/**
 * The picture from the validated bands (each `u32` counts `[rows, width]`, in row order).
 * Throws `input/invalid` when the bands do not cover the picture.
 */
export function fractalPng(spec: FractalSpec, bands: readonly Uint8Array[]): Buffer {
  const { width, height, maxIter } = spec;
  const png = new PNG({ width, height });
  let row = 0;
  for (const b of bands) {
    if (b.byteLength % (4 * width) !== 0) {
      throw new HearthError(
        'input/invalid',
        `a band of ${b.byteLength} bytes is not whole rows of ${width}.`,
      );
    }
    const counts = new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    for (let k = 0; k < counts.length; k++) {
      const [r, g, bl] = colour(counts[k] ?? 0, maxIter);
      const o = (row * width + k) * 4;
      png.data[o] = r;
      png.data[o + 1] = g;
      png.data[o + 2] = bl;
      png.data[o + 3] = 255;
    }
    row += counts.length / width;
  }
  if (row !== height) {
    throw new HearthError('input/invalid', `the bands hold ${row} rows; the picture has ${height}.`);
  }
  return PNG.sync.write(png);
}
