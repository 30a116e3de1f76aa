// A run's results on disk, read back with independent readers: .npy headers and bytes against θ's
// slices, the CSV against the curve, and the PNG decoded by hand (chunks, CRCs, inflate, the five
// scanline filters) down to the pixels of both series.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import { LOSS_PLOT } from '../../src/node/loss-plot.ts';
import { type LossPoint, writeTrainResults } from '../../src/node/train-results.ts';
import { initParams, type ModelConfig, paramLayout } from '../../src/train/config.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hearth-train-results-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A .npy v1.0 file's dtype, shape and data bytes (numpy.lib.format, read strictly). */
function readNpy(b: Uint8Array): { descr: string; fortran: boolean; shape: number[]; data: Uint8Array } {
  expect([...b.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  const len = (b[8] as number) | ((b[9] as number) << 8);
  const header = new TextDecoder().decode(b.subarray(10, 10 + len));
  expect((10 + len) % 64).toBe(0);
  expect(header.endsWith('\n')).toBe(true);
  const m = /^\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \(([\d, ]*)\), \} *\n$/.exec(
    header,
  );
  if (!m) throw new Error(`bad npy header ${JSON.stringify(header)}`);
  const shape = (m[3] as string)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  return { descr: m[1] as string, fortran: m[2] === 'True', shape, data: b.subarray(10 + len) };
}

/** A PNG decoded by hand: size, bytes per pixel and unfiltered RGBA-or-RGB rows. */
function decodePng(b: Uint8Array): { width: number; height: number; channels: number; pixels: Uint8Array } {
  expect([...b.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 8;
  const idat: Uint8Array[] = [];
  let ihdr: Uint8Array | null = null;
  let sawEnd = false;
  while (at < b.length) {
    const len = dv.getUint32(at);
    const type = new TextDecoder().decode(b.subarray(at + 4, at + 8));
    const body = b.subarray(at + 8, at + 8 + len);
    expect(dv.getUint32(at + 8 + len), `CRC of ${type}`).toBe(crc32(b.subarray(at + 4, at + 8 + len)));
    if (at === 8) expect(type).toBe('IHDR');
    if (type === 'IHDR') ihdr = body;
    if (type === 'IDAT') idat.push(body);
    if (type === 'IEND') sawEnd = true;
    at += 12 + len;
  }
  expect(sawEnd).toBe(true);
  if (!ihdr) throw new Error('no IHDR');
  expect(ihdr.length).toBe(13);
  const h = new DataView(ihdr.buffer, ihdr.byteOffset, 13);
  const width = h.getUint32(0);
  const height = h.getUint32(4);
  expect(h.getUint8(8)).toBe(8); // bit depth
  const colourType = h.getUint8(9);
  expect([2, 6]).toContain(colourType); // RGB or RGBA
  expect(h.getUint8(12)).toBe(0); // not interlaced
  const channels = colourType === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  expect(raw.length).toBe(height * (1 + stride));
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (1 + stride)] as number;
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (1 + stride) + 1 + i] as number;
      const a = i >= channels ? (pixels[y * stride + i - channels] as number) : 0;
      const up = y > 0 ? (pixels[(y - 1) * stride + i] as number) : 0;
      const c = y > 0 && i >= channels ? (pixels[(y - 1) * stride + i - channels] as number) : 0;
      let pred: number;
      if (filter === 0) pred = 0;
      else if (filter === 1) pred = a;
      else if (filter === 2) pred = up;
      else if (filter === 3) pred = (a + up) >> 1;
      else if (filter === 4) {
        const p = a + up - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - up);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      } else throw new Error(`row ${y}: unknown filter ${filter}`);
      pixels[y * stride + i] = (x + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Columns (x) and rows (y) of the pixels of one colour. */
function pixelsOf(png: ReturnType<typeof decodePng>, rgb: readonly number[]): { x: number; y: number }[] {
  const out: { x: number; y: number }[] = [];
  for (let y = 0; y < png.height; y++)
    for (let x = 0; x < png.width; x++) {
      const o = (y * png.width + x) * png.channels;
      if (png.pixels[o] === rgb[0] && png.pixels[o + 1] === rgb[1] && png.pixels[o + 2] === rgb[2])
        out.push({ x, y });
    }
  return out;
}

const CFG: ModelConfig = { kind: 'transformer', width: 8, depth: 2, heads: 2, context: 4, mlpRatio: 2 };
// Train loss falls every round; validation every third round; round 4 lost its train loss.
const CURVE: LossPoint[] = Array.from({ length: 12 }, (_, round) => ({
  round,
  ...(round === 4 ? {} : { trainLoss: 5.5 - 0.3 * round }),
  ...(round % 3 === 0 ? { valLoss: 5.6 - 0.25 * round } : {}),
  tokens: 4096 * (round + 1),
}));

describe('writeTrainResults', () => {
  it('writes config.json, one .npy per tensor (θ’s bytes, its shape), loss.csv and loss.png', async () => {
    const theta = initParams(CFG, 3);
    const out = join(dir, 'run');
    const files = await writeTrainResults(out, { cfg: CFG, theta, curve: CURVE, name: 'tiny' });
    const layout = paramLayout(CFG);
    expect(files).toEqual([
      join(out, 'config.json'),
      ...layout.map((e) => join(out, 'weights', `${e.name}.npy`)),
      join(out, 'loss.csv'),
      join(out, 'loss.png'),
    ]);

    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config.name).toBe('tiny');
    expect(config.model).toEqual(CFG);
    expect(config.params).toBe(theta.length);
    expect(config.tensors).toEqual(
      layout.map((e) => ({ name: e.name, shape: e.shape, offset: e.offset, file: `weights/${e.name}.npy` })),
    );

    for (const e of layout) {
      const f = readNpy(new Uint8Array(await readFile(join(out, 'weights', `${e.name}.npy`))));
      expect([f.descr, f.fortran, f.shape]).toEqual(['<f4', false, e.shape]);
      const want = new Uint8Array(theta.buffer, e.offset * 4, e.size * 4);
      expect(Buffer.from(f.data).equals(Buffer.from(want)), e.name).toBe(true);
    }

    const csv = (await readFile(join(out, 'loss.csv'), 'utf8')).trimEnd().split('\n');
    expect(csv[0]).toBe('round,train_loss,val_loss,tokens');
    expect(csv.length).toBe(1 + CURVE.length);
    const num = (s: string | undefined) => (s === '' || s === undefined ? undefined : Number(s));
    csv.slice(1).forEach((line, i) => {
      const cells = line.split(',');
      expect(cells.length).toBe(4);
      const p = CURVE[i] as LossPoint;
      expect(cells.map(num)).toEqual([p.round, p.trainLoss, p.valLoss, p.tokens]);
    });
    expect(csv[5]).toBe('4,,,20480'); // round 4: no train loss, no validation

    const png = decodePng(new Uint8Array(await readFile(join(out, 'loss.png'))));
    expect([png.width, png.height]).toEqual([LOSS_PLOT.width, LOSS_PLOT.height]);
    const train = pixelsOf(png, LOSS_PLOT.train);
    const val = pixelsOf(png, LOSS_PLOT.validation);
    // Lines 2 px wide across most of the plot's width: hundreds of pixels each.
    expect(train.length).toBeGreaterThan(500);
    expect(val.length).toBeGreaterThan(500);
    // The train loss falls: its pixels in the first columns sit higher (smaller y) than in the last.
    const xs = train.map((p) => p.x);
    const meanY = (pred: (x: number) => boolean) => {
      const ys = train.filter((p) => pred(p.x)).map((p) => p.y);
      return ys.reduce((a, b) => a + b, 0) / ys.length;
    };
    const minX = Math.min(...xs);
    const maxX = Math.max(...xs);
    expect(meanY((x) => x < minX + 5)).toBeLessThan(meanY((x) => x > maxX - 5) - 100);
  });

  it('an MLP and an empty curve: every tensor, a header-only CSV, a PNG with axes and no series', async () => {
    const cfg: ModelConfig = { kind: 'mlp', inputs: 3, hidden: [5], classes: 2 };
    const theta = initParams(cfg, 1);
    const out = join(dir, 'mlp');
    const files = await writeTrainResults(out, { cfg, theta, curve: [] });
    expect(files.length).toBe(1 + 4 + 2);
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).name).toBe('model');
    expect(await readFile(join(out, 'loss.csv'), 'utf8')).toBe('round,train_loss,val_loss,tokens\n');
    const png = decodePng(new Uint8Array(await readFile(join(out, 'loss.png'))));
    expect(pixelsOf(png, LOSS_PLOT.axis).length).toBeGreaterThan(500);
    // Only the legend's swatches are in the series' colours.
    expect(pixelsOf(png, LOSS_PLOT.train).length).toBeLessThan(100);
  });

  it('refuses a θ of the wrong length (train/layout) and a malformed curve (input/invalid)', async () => {
    const theta = initParams(CFG, 3);
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'no error',
        (e: unknown) => (isHearthError(e) ? e.code : `not a HearthError: ${e}`),
      );
    expect(
      await codeOf(writeTrainResults(join(dir, 'x'), { cfg: CFG, theta: theta.subarray(1), curve: [] })),
    ).toBe('train/layout');
    const bad = [{ round: Number.NaN }, { round: 1, trainLoss: '3' }] as unknown as LossPoint[];
    for (const p of bad) {
      expect(await codeOf(writeTrainResults(join(dir, 'y'), { cfg: CFG, theta, curve: [p] }))).toBe(
        'input/invalid',
      );
    }
  });
});
