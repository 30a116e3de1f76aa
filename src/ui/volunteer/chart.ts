// The meter's throughput chart: shards finished per minute over the last ten minutes, drawn by
// uPlot (loaded with this module, after the volunteer's yes).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { FinishedShard } from '../../client/controller.ts';

const MINUTES = 10;

/** Shards finished in each of the last `MINUTES` minutes, oldest first; x in seconds (uPlot's unit). */
export function perMinute(finished: readonly FinishedShard[], now: number): [number[], number[]] {
  const xs: number[] = [];
  const ys: number[] = [];
  const end = Math.floor(now / 60_000) * 60_000 + 60_000;
  for (let m = MINUTES; m > 0; m--) {
    const from = end - m * 60_000;
    xs.push(from / 1000);
    ys.push(finished.filter((f) => f.at >= from && f.at < from + 60_000).length);
  }
  return [xs, ys];
}

/** A chart in `el`, `height` pixels tall; `update` redraws it from the finished shards. */
export function throughputChart(
  el: HTMLElement,
  height = 160,
): { update(finished: readonly FinishedShard[]): void } {
  const width = () => Math.max(200, el.clientWidth || 480);
  const plot = new uPlot(
    {
      width: width(),
      height,
      legend: { show: false },
      cursor: { show: false },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(4, max)] } },
      axes: [
        { stroke: '#c9bfb4', grid: { stroke: '#3a342e' } },
        // A compact chart (the widget's) has no room for the axis label; its element's label says it.
        { stroke: '#c9bfb4', grid: { stroke: '#3a342e' }, ...(height >= 120 ? { label: 'shards/min' } : {}) },
      ],
      series: [{}, { stroke: '#f0a04b', fill: 'rgba(240,160,75,0.2)', width: 2 }],
    },
    [[], []],
    el,
  );
  addEventListener('resize', () => plot.setSize({ width: width(), height }));
  return { update: (finished) => plot.setData(perMinute(finished, Date.now())) };
}
