// The console's charts, drawn by uPlot on a canvas (a small, fast time-series chart with no
// dependencies); the page's captions name the series.
// - Throughput over time: validated shards per minute, the followed job's and the whole hub's,
//   from `GET /v1/stats` (10 s buckets over the last hour).
// - A train job's loss curve: training and validation loss by round, from `GET /v1/jobs/:id/train`.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { ThroughputAnswer, TrainProgress } from '../../protocol/api.ts';

export const JOB_COLOR = '#f0a04b';
export const HUB_COLOR = '#8fd3ff';
export const TRAIN_COLOR = '#8fd3ff';
export const VAL_COLOR = '#f0a04b';

const AXIS = {
  stroke: '#f3ece4',
  grid: { stroke: '#3a332c', width: 1 },
  ticks: { stroke: '#3a332c', width: 1 },
};

/** A uPlot that follows its element's width. */
abstract class Chart {
  readonly #el: HTMLElement;
  #plot: uPlot | undefined;
  readonly #resize: ResizeObserver;

  constructor(el: HTMLElement) {
    this.#el = el;
    this.#resize = new ResizeObserver(() => this.#plot?.setSize(this.#size()));
    this.#resize.observe(el);
  }

  #size() {
    return { width: Math.max(240, this.#el.clientWidth), height: 200 };
  }

  protected abstract options(): Omit<uPlot.Options, 'width' | 'height'>;

  protected draw(data: uPlot.AlignedData): void {
    if (this.#plot) this.#plot.setData(data);
    else this.#plot = new uPlot({ ...this.#size(), ...this.options() }, data, this.#el);
  }

  destroy(): void {
    this.#resize.disconnect();
    this.#plot?.destroy();
    this.#plot = undefined;
  }
}

/**
 * Per-minute rates of two bucket series on one time axis (seconds), aligned by bucket: x, the
 * hub's, the job's (drawn last, on top). null where a series has no bucket.
 */
export function alignSeries(
  hub: ThroughputAnswer,
  job: ThroughputAnswer | undefined,
): [number[], (number | null)[], (number | null)[]] {
  const step = hub.bucketMs;
  const starts = [hub.start, ...(job && job.bucketMs === step ? [job.start] : [])];
  const ends = [
    hub.start + hub.validated.length * step,
    ...(job && job.bucketMs === step ? [job.start + job.validated.length * step] : []),
  ];
  const from = Math.min(...starts);
  const to = Math.max(...ends);
  const perMinute = 60_000 / step;
  const at = (s: ThroughputAnswer | undefined, t: number): number | null => {
    if (!s || s.bucketMs !== step) return null;
    const i = Math.round((t - s.start) / step);
    const v = s.validated[i];
    return v === undefined ? null : v * perMinute;
  };
  const xs: number[] = [];
  const j: (number | null)[] = [];
  const h: (number | null)[] = [];
  for (let t = from; t < to; t += step) {
    xs.push(t / 1000);
    h.push(at(hub, t));
    j.push(at(job, t));
  }
  return [xs, h, j];
}

export class ThroughputChart extends Chart {
  update(hub: ThroughputAnswer, job: ThroughputAnswer | undefined): void {
    this.draw(alignSeries(hub, job) as uPlot.AlignedData);
  }

  protected override options(): Omit<uPlot.Options, 'width' | 'height'> {
    // Points where they are few (a young hub, a short job): a single bucket has no line to draw.
    const points = { show: (_u: uPlot, _s: number, i0: number, i1: number) => i1 - i0 < 40, size: 6 };
    return {
      legend: { show: false },
      cursor: { show: false },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [AXIS, { ...AXIS, size: 48 }],
      series: [
        {},
        { label: 'whole hub', stroke: HUB_COLOR, width: 1.5, dash: [6, 4], points },
        { label: 'this job', stroke: JOB_COLOR, width: 2, fill: 'rgba(240,160,75,0.15)', points },
      ],
    };
  }
}

/**
 * A train job's curve as chart columns: x (the rounds that have a loss), the mean training loss
 * of their inner steps, the validation loss of their θ; null where a round lacks one (the
 * evaluation of the final θ trains nothing).
 */
export function lossSeries(view: TrainProgress): [number[], (number | null)[], (number | null)[]] {
  const rounds = view.curve.filter((r) => r.trainLoss !== undefined || r.valLoss !== undefined);
  return [
    rounds.map((r) => r.round),
    rounds.map((r) => r.trainLoss ?? null),
    rounds.map((r) => r.valLoss ?? null),
  ];
}

export class LossChart extends Chart {
  update(view: TrainProgress): void {
    this.draw(lossSeries(view) as uPlot.AlignedData);
  }

  protected override options(): Omit<uPlot.Options, 'width' | 'height'> {
    const points = { show: true, size: 7 };
    return {
      legend: { show: false },
      cursor: { show: false },
      // Rounds, not time; loss from 0 so that a fall reads as one.
      scales: { x: { time: false }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { ...AXIS, label: 'round', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] },
        { ...AXIS, size: 48, label: 'loss (nats)' },
      ],
      series: [
        {},
        { label: 'training loss', stroke: TRAIN_COLOR, width: 2, points, spanGaps: true },
        { label: 'validation loss', stroke: VAL_COLOR, width: 2, dash: [6, 4], points, spanGaps: true },
      ],
    };
  }
}
