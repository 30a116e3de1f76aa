// A training run's loss curve as a PNG: train and validation loss by round, two colours, a frame
// with gridlines and tick labels, a legend. Rasterised here (Bresenham lines, a 3×5 pixel font)
// and encoded with pngjs, so results need no canvas and no plotting dependency.
import { PNG } from 'pngjs';

/** One round of a run: any loss may be missing (validation runs every few rounds). */
export interface LossPoint {
  readonly round: number;
  readonly trainLoss?: number;
  readonly valLoss?: number;
  readonly tokens?: number;
}

type Rgb = readonly [number, number, number];

/** The plot's size and colours (matplotlib's first two for the series). */
export const LOSS_PLOT = {
  width: 640,
  height: 400,
  train: [31, 119, 180] as Rgb,
  validation: [255, 127, 14] as Rgb,
  axis: [40, 40, 40] as Rgb,
  grid: [225, 225, 225] as Rgb,
  background: [255, 255, 255] as Rgb,
} as const;

const MARGIN = { left: 64, right: 16, top: 16, bottom: 44 } as const;
/** Glyphs are 3×5 cells drawn at this many pixels per cell. */
const SCALE = 2;
const ADVANCE = 4 * SCALE;

// 3×5 glyphs, rows top to bottom, '#' set: digits and the letters of the labels.
const FONT: Readonly<Record<string, string>> = {
  '0': '### #.# #.# #.# ###',
  '1': '.#. ##. .#. .#. ###',
  '2': '### ..# ### #.. ###',
  '3': '### ..# ### ..# ###',
  '4': '#.# #.# ### ..# ..#',
  '5': '### #.. ### ..# ###',
  '6': '### #.. ### #.# ###',
  '7': '### ..# ..# ..# ..#',
  '8': '### #.# ### #.# ###',
  '9': '### #.# ### ..# ###',
  '.': '... ... ... ... .#.',
  '-': '... ... ### ... ...',
  a: '... .## #.# #.# .##',
  d: '..# .## #.# #.# .##',
  i: '.#. ... .#. .#. .#.',
  l: '#.. #.. #.. #.. .##',
  n: '... ##. #.# #.# #.#',
  o: '... .#. #.# #.# .#.',
  r: '... #.# ##. #.. #..',
  s: '.## #.. .#. ..# ##.',
  t: '.#. ### .#. .#. ..#',
  u: '... #.# #.# #.# .##',
  v: '... #.# #.# #.# .#.',
};

class Canvas {
  readonly png: PNG;
  constructor(
    readonly width: number,
    readonly height: number,
    bg: Rgb,
  ) {
    this.png = new PNG({ width, height });
    for (let i = 0; i < width * height; i++) this.png.data.set([...bg, 255], i * 4);
  }

  dot(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.png.data.set(c, (y * this.width + x) * 4);
  }

  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.dot(x + i, y + j, c);
  }

  /** A line `thick` pixels wide (Bresenham, a square brush). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1): void {
    let x = Math.round(x0);
    let y = Math.round(y0);
    const xe = Math.round(x1);
    const ye = Math.round(y1);
    const dx = Math.abs(xe - x);
    const dy = -Math.abs(ye - y);
    const sx = x < xe ? 1 : -1;
    const sy = y < ye ? 1 : -1;
    let err = dx + dy;
    const off = Math.floor((thick - 1) / 2);
    for (;;) {
      this.rect(x - off, y - off, thick, thick, c);
      if (x === xe && y === ye) return;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y += sy;
      }
    }
  }

  /** Text with its top-left corner at (x, y); characters without a glyph are spaces. */
  text(s: string, x: number, y: number, c: Rgb): void {
    for (const [k, ch] of [...s].entries()) {
      const rows = FONT[ch]?.split(' ') ?? [];
      rows.forEach((row, j) => {
        for (let i = 0; i < 3; i++) {
          if (row[i] === '#') this.rect(x + k * ADVANCE + i * SCALE, y + j * SCALE, SCALE, SCALE, c);
        }
      });
    }
  }
}

const textWidth = (s: string) => s.length * ADVANCE - SCALE;

/** About `count` round tick values (steps of 1, 2 or 5 × 10ᵏ) covering [lo, hi], and their decimals. */
function ticks(
  lo: number,
  hi: number,
  count: number,
  integer: boolean,
): { values: number[]; decimals: number } {
  const raw = (hi - lo) / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? 10 * pow;
  if (integer) step = Math.max(1, Math.round(step));
  const values: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) values.push(v);
  return { values, decimals: integer ? 0 : Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

/** [lo, hi] of the finite values, widened when empty or flat. */
function range(values: readonly number[], pad: number): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
    lo -= 0.5;
    hi += 0.5;
  }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

/**
 * The PNG of a loss curve: train loss (blue) and validation loss (orange) by round, each series
 * joining its present, finite points in round order. Missing or non-finite losses are skipped.
 *
 * @example
 * writeFileSync('loss.png', lossPlotPng([{ round: 0, trainLoss: 5.5, valLoss: 5.6 }, { round: 1, trainLoss: 4.1 }]));
 */
export function lossPlotPng(curve: readonly LossPoint[]): Buffer {
  const { width: W, height: H } = LOSS_PLOT;
  const cv = new Canvas(W, H, LOSS_PLOT.background);
  const pts = [...curve].filter((p) => Number.isFinite(p.round)).sort((a, b) => a.round - b.round);
  const series = [
    {
      name: 'train',
      colour: LOSS_PLOT.train,
      pts: pts.filter((p) => Number.isFinite(p.trainLoss)),
      key: 'trainLoss',
    },
    {
      name: 'val',
      colour: LOSS_PLOT.validation,
      pts: pts.filter((p) => Number.isFinite(p.valLoss)),
      key: 'valLoss',
    },
  ] as const;
  const [x0, x1] = range(
    pts.map((p) => p.round),
    0,
  );
  const [y0, y1] = range(
    series.flatMap((s) => s.pts.map((p) => p[s.key] as number)),
    0.05,
  );
  const left = MARGIN.left;
  const right = W - MARGIN.right;
  const top = MARGIN.top;
  const bottom = H - MARGIN.bottom;
  const px = (r: number) => left + ((r - x0) / (x1 - x0)) * (right - left);
  const py = (l: number) => bottom - ((l - y0) / (y1 - y0)) * (bottom - top);

  const glyphH = 5 * SCALE;
  const yt = ticks(y0, y1, 5, false);
  for (const v of yt.values) {
    const y = Math.round(py(v));
    cv.line(left, y, right, y, LOSS_PLOT.grid);
    cv.line(left - 4, y, left, y, LOSS_PLOT.axis);
    const label = v.toFixed(yt.decimals);
    cv.text(label, left - 8 - textWidth(label), y - glyphH / 2, LOSS_PLOT.axis);
  }
  const xt = ticks(x0, x1, 6, true);
  for (const v of xt.values) {
    const x = Math.round(px(v));
    cv.line(x, top, x, bottom, LOSS_PLOT.grid);
    cv.line(x, bottom, x, bottom + 4, LOSS_PLOT.axis);
    const label = v.toFixed(0);
    cv.text(label, x - textWidth(label) / 2, bottom + 8, LOSS_PLOT.axis);
  }
  cv.text('round', (left + right) / 2 - textWidth('round') / 2, bottom + 8 + glyphH + 6, LOSS_PLOT.axis);
  cv.text('loss', 6, top, LOSS_PLOT.axis);
  cv.line(left, top, left, bottom, LOSS_PLOT.axis);
  cv.line(left, bottom, right, bottom, LOSS_PLOT.axis);

  for (const s of series) {
    s.pts.forEach((p, i) => {
      const x = px(p.round);
      const y = py(p[s.key] as number);
      cv.rect(Math.round(x) - 2, Math.round(y) - 2, 5, 5, s.colour);
      const prev = s.pts[i - 1];
      if (prev) cv.line(px(prev.round), py(prev[s.key] as number), x, y, s.colour, 2);
    });
  }
  // Legend, top right.
  series.forEach((s, i) => {
    const y = top + 8 + i * (glyphH + 8);
    const x = right - 80;
    cv.line(x, y + glyphH / 2, x + 24, y + glyphH / 2, s.colour, 3);
    cv.text(s.name, x + 32, y, LOSS_PLOT.axis);
  });
  return PNG.sync.write(cv.png);
}
