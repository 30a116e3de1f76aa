// The console's panel for a followed `train` job: the round it is at, its latest losses, the loss
// curve (training and validation loss by round, chart.ts) and the same numbers as a table. It reads
// `GET /v1/jobs/:id/train` (HubApi.train) when the job's pushed events say its shards changed —
// a slot judged, a round closed — never on a timer.
import type { HubApi } from '../../client/hub-api.ts';
import type { JobProgressAnswer, TrainProgress } from '../../protocol/api.ts';
import { LossChart, TRAIN_COLOR, VAL_COLOR } from './chart.ts';

const $ = (id: string) => document.getElementById(id) as HTMLElement;

/** "round 2 of 3", "evaluating the trained model", "trained": where a train job is. */
export function roundText(view: TrainProgress): string {
  const last = view.curve.at(-1);
  if (view.final) return `trained: ${view.rounds} of ${view.rounds} rounds`;
  if (view.status !== 'running') return `${view.status} at round ${(last?.round ?? 0) + 1} of ${view.rounds}`;
  if (!last) return `round 1 of ${view.rounds}`;
  return last.round >= view.rounds
    ? `evaluating the trained model (${view.rounds} rounds done)`
    : `round ${last.round + 1} of ${view.rounds}`;
}

const fixed = (v: number | undefined) => (v === undefined ? '–' : v.toFixed(3));

/** The followed job's training panel; hidden for jobs of other kinds. */
export class TrainingPanel {
  #job: string | undefined;
  #chart: LossChart | undefined;
  #shards = -1;
  #validated = -1;
  #reading: Promise<void> | undefined;
  #again = false;

  readonly #api: () => HubApi | undefined;
  readonly #failed: (e: unknown) => void;

  constructor(api: () => HubApi | undefined, failed: (e: unknown) => void) {
    this.#api = api;
    this.#failed = failed;
    $('loss-caption').replaceChildren(
      swatch(TRAIN_COLOR, 'training loss', 'solid'),
      ' (mean of each round’s inner steps) and ',
      swatch(VAL_COLOR, 'validation loss', 'dashed'),
      ' (of the round’s starting weights, on held-out text), in nats per byte, by round.',
    );
  }

  /** Follow `job` (a train job), or hide the panel (`undefined`: another kind). */
  show(job: string | undefined): void {
    this.#job = job;
    this.#shards = -1;
    this.#validated = -1;
    $('training').hidden = job === undefined;
    $('loss-body').replaceChildren();
    $('t-round').textContent = '–';
    $('t-loss').textContent = '';
    if (job === undefined) return;
    this.#chart ??= new LossChart($('loss-chart'));
    void this.refresh();
  }

  /** A pushed event of the followed job: read the curve again when its shards changed. */
  progress(p: JobProgressAnswer): void {
    if (p.job !== this.#job) return;
    if (p.shards === this.#shards && p.validated === this.#validated && p.status === 'running') return;
    this.#shards = p.shards;
    this.#validated = p.validated;
    void this.refresh();
  }

  /** Reads the view, one read at a time; a call during a read makes one more after it. */
  refresh(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = this.#read().finally(() => {
      this.#reading = undefined;
      if (this.#again) {
        this.#again = false;
        void this.refresh();
      }
    });
    return this.#reading;
  }

  async #read(): Promise<void> {
    const job = this.#job;
    const client = this.#api();
    if (!job || !client) return;
    try {
      const view = await client.train(job);
      if (job === this.#job) this.#render(view);
    } catch (e) {
      this.#failed(e);
    }
  }

  #render(view: TrainProgress): void {
    $('t-round').textContent = roundText(view);
    const withVal = view.curve.filter((r) => r.valLoss !== undefined);
    const first = withVal[0];
    const last = withVal.at(-1);
    $('t-loss').textContent =
      first && last
        ? `validation loss ${fixed(first.valLoss)} at round ${first.round}${last !== first ? ` → ${fixed(last.valLoss)} at round ${last.round}` : ''}`
        : 'no loss yet: waiting for the first round’s results';
    const rows = view.curve
      .filter((r) => r.trainLoss !== undefined || r.valLoss !== undefined)
      .map((r) => {
        const tr = document.createElement('tr');
        tr.dataset.round = String(r.round);
        const cells = [
          r.round === view.rounds ? `${r.round} (final)` : String(r.round),
          fixed(r.trainLoss),
          fixed(r.valLoss),
          `${r.accepted} / ${r.slots}`,
        ];
        for (const c of cells) {
          const td = document.createElement('td');
          td.textContent = c;
          tr.append(td);
        }
        return tr;
      });
    $('loss-body').replaceChildren(...rows);
    $('loss-chart').dataset.points = String(rows.length);
    this.#chart?.update(view);
    $('loss-chart').setAttribute(
      'aria-label',
      `Loss by round: ${rows.length} round(s) so far; ${$('t-loss').textContent}. The table below lists them.`,
    );
  }

  destroy(): void {
    this.#chart?.destroy();
    this.#chart = undefined;
    this.#job = undefined;
  }
}

function swatch(color: string, label: string, style: 'solid' | 'dashed'): HTMLElement {
  const s = document.createElement('span');
  const box = document.createElement('span');
  box.textContent = style === 'solid' ? '━ ' : '┅ ';
  box.style.color = color;
  box.setAttribute('aria-hidden', 'true');
  s.append(box, label);
  return s;
}
