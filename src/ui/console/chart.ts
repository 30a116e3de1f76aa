// Throughput over time for the console: validated shards per minute, the followed job's and the
// whole hub's, from `GET /v1/stats` (10 s buckets over the last hour). uPlot draws it on a canvas
// (a small, fast time-series chart with no dependencies); the page's caption names the series.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { ThroughputAnswer } from '../../protocol/api.ts';

export const JOB_COLOR = '#f0a04b';
export const HUB_COLOR = '#8fd3ff';

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

export class ThroughputChart {
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

  update(hub: ThroughputAnswer, job: ThroughputAnswer | undefined): void {
    const data = alignSeries(hub, job) as uPlot.AlignedData;
    if (this.#plot) {
      this.#plot.setData(data);
      return;
    }
    // Points where they are few (a young hub, a short job): a single bucket has no line to draw.
    const points = { show: (_u: uPlot, _s: number, i0: number, i1: number) => i1 - i0 < 40, size: 6 };
    const axis = {
      stroke: '#f3ece4',
      grid: { stroke: '#3a332c', width: 1 },
      ticks: { stroke: '#3a332c', width: 1 },
    };
    this.#plot = new uPlot(
      {
        ...this.#size(),
        legend: { show: false },
        cursor: { show: false },
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [axis, { ...axis, size: 48 }],
        series: [
          {},
          { label: 'whole hub', stroke: HUB_COLOR, width: 1.5, dash: [6, 4], points },
          { label: 'this job', stroke: JOB_COLOR, width: 2, fill: 'rgba(240,160,75,0.15)', points },
        ],
      },
      data,
      this.#el,
    );
  }

  destroy(): void {
    this.#resize.disconnect();
    this.#plot?.destroy();
    this.#plot = undefined;
  }
}
