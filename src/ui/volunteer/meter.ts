// What the volunteer page and the widget's frame share: the meter (a controller's snapshot drawn
// into the elements of the page that have the meter's ids: each is optional, so the widget's
// compact meter is a subset of the page's), its controls, and the browser parts a controller is
// made of (the remembered yes and settings in localStorage, visibility and battery, the compute
// worker, IndexedDB and the identity — the last three imported only when the controller calls
// for them, after the yes).
//
// It imports no runtime code of the client: the page imports the controller itself, the frame
// only after the yes.
import type {
  ComfortSource,
  ConsentRecord,
  ControllerWorker,
  FinishedShard,
  VolunteerController,
  VolunteerParts,
  VolunteerSettings,
  VolunteerSnapshot,
} from '../../client/controller.ts';

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

export const PAUSED_WHY = {
  you: 'Paused: press Resume to go on.',
  hidden: 'Paused while this tab is hidden (tick "Keep working while this tab is hidden" to change that).',
  battery: 'Paused: the battery is low and not charging. Work resumes when it charges.',
} as const;

/** Visibility and battery from the browser. */
export function pageComfort(): ComfortSource {
  let battery: { charging: boolean; level: number } | null = null;
  const listeners = new Set<() => void>();
  const tell = () => {
    for (const l of listeners) l();
  };
  document.addEventListener('visibilitychange', tell);
  const nav = navigator as Navigator & {
    getBattery?: () => Promise<EventTarget & { charging: boolean; level: number }>;
  };
  nav
    .getBattery?.()
    .then((b) => {
      const read = () => {
        battery = { charging: b.charging, level: b.level };
        tell();
      };
      b.addEventListener('chargingchange', read);
      b.addEventListener('levelchange', read);
      read();
    })
    .catch(() => {});
  return {
    current: () => ({ hidden: document.visibilityState === 'hidden', battery }),
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}

/**
 * localStorage, or nothing where the browser refuses it (a frame on another site with
 * third-party storage blocked): then the yes and the settings last as long as the page.
 */
function storage(): Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> {
  const memory = new Map<string, string>();
  const fallback = {
    getItem: (k: string) => memory.get(k) ?? null,
    setItem: (k: string, v: string) => void memory.set(k, v),
    removeItem: (k: string) => void memory.delete(k),
  };
  try {
    const s = window.localStorage;
    s.getItem('hearth');
    return s;
  } catch {
    return fallback;
  }
}

/** A remembered yes under `key` (`'yes'` while given). */
export function localConsent(key: string): ConsentRecord {
  const s = storage();
  return {
    get: () => s.getItem(key) === 'yes',
    set: (yes) => (yes ? s.setItem(key, 'yes') : s.removeItem(key)),
  };
}

/** The volunteer's choices (GPU cap, pause, background) under `key`. */
export function localSettings(key: string): {
  get(): Partial<VolunteerSettings> | null;
  set(s: VolunteerSettings): void;
} {
  const s = storage();
  return {
    get: () => {
      try {
        return JSON.parse(s.getItem(key) ?? 'null') as Partial<VolunteerSettings> | null;
      } catch {
        return null;
      }
    },
    set: (v) => s.setItem(key, JSON.stringify(v)),
  };
}

/** The compute worker: its code is loaded now (the controller calls this after the yes). */
export async function startWorker(): Promise<ControllerWorker> {
  return (await import('../../worker/client.ts')).startComputeWorker();
}

/** Identity, outbox, blob cache and unfinished leases from IndexedDB: loaded now (after the yes). */
export async function openParts(): Promise<VolunteerParts> {
  const [
    { loadOrCreateIdentity },
    { BlobCache },
    { openHearthDB, requestPersistentStorage },
    { ResultOutbox },
    { UnfinishedLeases },
  ] = await Promise.all([
    import('../../client/identity.ts'),
    import('../../store/blob-cache.ts'),
    import('../../store/db.ts'),
    import('../../store/outbox.ts'),
    import('../../store/unfinished.ts'),
  ]);
  await requestPersistentStorage();
  const db = await openHearthDB();
  return {
    identity: await loadOrCreateIdentity(),
    outbox: new ResultOutbox(db),
    blobs: new BlobCache(db),
    unfinished: new UnfinishedLeases(db),
  };
}

/** PeerJS settings for the hub's own PeerServer at `/p2p`, with these ICE servers. */
export function peerSettings(hub: string, iceServers: RTCIceServer[] = []) {
  const u = new URL(hub);
  const secure = u.protocol === 'https:';
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : secure ? 443 : 80,
    secure,
    path: '/p2p',
    iceServers,
  };
}

export interface MeterView {
  /** Draws a snapshot into the meter's elements. */
  render(s: VolunteerSnapshot): void;
  /** Shows a sentence in `#error`. */
  showError(message: string): void;
  /** Wires the controls (pause, GPU cap, background, stop) to the controller. */
  wire(controller: VolunteerController): void;
}

/**
 * The meter in `doc`: the elements with its ids (`state`, `device`, `current`, `progress`,
 * `done`, `valid`, `pending`, `rejected`, `busy`, `granted`, `credit-pending`, `downloaded`,
 * `chart`, `paused-why`, `volunteer-id`, `pause`, `cap`, `cap-value`, `background`, `stop`,
 * `consent-cap`, and the sections `consent` and `meter`), each drawn where present.
 *
 * @example
 * const view = meterView(document);
 * controller.subscribe((s) => view.render(s));
 * view.wire(controller);
 */
export function meterView(doc: Document, opts: { readonly chartHeight?: number } = {}): MeterView {
  const $ = <T extends HTMLElement = HTMLElement>(id: string) => doc.getElementById(id) as T | null;
  const text = (id: string, value: string) => {
    const el = $(id);
    if (el) el.textContent = value;
  };
  const showError = (message: string) => {
    const el = $('error');
    if (!el) return;
    el.hidden = false;
    el.textContent = message;
  };
  let chart: { update(finished: readonly FinishedShard[]): void } | undefined;
  let chartLoading = false;
  let lastFinished: readonly FinishedShard[] = [];

  const renderSettings = (st: VolunteerSettings) => {
    const pct = Math.round(st.dutyCycle * 100);
    text('consent-cap', `${pct}%`);
    const cap = $<HTMLInputElement>('cap');
    if (cap && doc.activeElement !== cap) cap.value = String(pct);
    text('cap-value', `${pct}%`);
    const pause = $<HTMLButtonElement>('pause');
    if (pause) {
      pause.textContent = st.paused ? 'Resume' : 'Pause';
      pause.setAttribute('aria-pressed', String(st.paused));
    }
    const background = $<HTMLInputElement>('background');
    if (background) background.checked = st.background;
  };

  const render = (s: VolunteerSnapshot) => {
    doc.body.dataset.state = s.state;
    text('state', s.state);
    const consent = $('consent');
    if (consent) consent.hidden = s.state !== 'asking';
    const meter = $('meter');
    if (meter) meter.hidden = s.state === 'asking' || s.state === 'declined';
    if (s.device) text('device', s.device);
    const noWebgpu = $('no-webgpu');
    if (noWebgpu) noWebgpu.hidden = s.webgpu !== false;
    const id = $('volunteer-id');
    if (id && s.volunteerId) {
      id.textContent = s.volunteerId.slice(0, 16);
      id.title = s.volunteerId;
    }
    if (s.current !== null) text('current', s.current);
    const progress = $<HTMLProgressElement>('progress');
    if (progress) progress.value = s.progress ?? 0;
    if (s.error !== null) showError(s.error);
    const why = $('paused-why');
    if (why) {
      why.hidden = s.pausedBy === null;
      why.textContent = s.pausedBy ? PAUSED_WHY[s.pausedBy] : '';
    }
    renderSettings(s.settings);
    text('busy', s.gpuBusy === null ? '–' : `${Math.round(s.gpuBusy * 100)}%`);
    if (s.credit) {
      text('granted', s.credit.granted);
      text('credit-pending', s.credit.pending);
    }
    const stats = s.stats;
    if (stats) {
      const acked = stats.valid + stats.pending + stats.invalid + stats.inconclusive + stats.refused;
      text('done', String(acked));
      text('valid', String(stats.valid));
      text('pending', String(stats.pending));
      text('rejected', String(stats.invalid + stats.refused));
      text(
        'downloaded',
        `${bytes(stats.downloadedBytes)} from the hub, ${bytes(stats.peerBytes)} from peers`,
      );
    }
    if (s.finished !== lastFinished) {
      lastFinished = s.finished;
      chart?.update(s.finished);
    }
    const el = $('chart');
    if (el && meter && !meter.hidden && !chart && !chartLoading) {
      chartLoading = true;
      import('./chart.ts')
        .then((m) => {
          chart = m.throughputChart(el, opts.chartHeight);
          chart.update(lastFinished);
          // The chart's minutes move on even when nothing finishes.
          setInterval(() => chart?.update(lastFinished), 15_000);
        })
        .catch((e: unknown) => showError(`The chart did not load: ${e instanceof Error ? e.message : e}`));
    }
  };

  const wire = (controller: VolunteerController) => {
    $('pause')?.addEventListener('click', () =>
      controller.snapshot.settings.paused ? controller.unpause() : controller.pause(),
    );
    $('cap')?.addEventListener('input', (e) => {
      text('cap-value', `${Number((e.target as HTMLInputElement).value)}%`);
    });
    $('cap')?.addEventListener('change', (e) =>
      controller.setDutyCycle(Number((e.target as HTMLInputElement).value) / 100),
    );
    $('background')?.addEventListener('change', (e) =>
      controller.setBackground((e.target as HTMLInputElement).checked),
    );
    const stop = $<HTMLButtonElement>('stop');
    stop?.addEventListener('click', async () => {
      stop.disabled = true;
      await controller.stop();
    });
  };

  return { render, showError, wire };
}
