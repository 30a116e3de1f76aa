// The volunteer page: asks first, and only after "Yes" loads the compute worker, probes the GPU
// and connects to the hub (DESIGN.md invariant 1); while it works, a meter shows what runs, what
// it earned and how hard the GPU works, with the volunteer's controls (pause, GPU cap, background).
// The hub is the origin that served this page, or `?hub=URL` (that hub must list this page's
// origin in its allowed origins). The work is client/controller.ts's: this file renders its
// snapshots and wires the controls. `window.hearthVolunteer` is the controller, for programs that
// drive the page (`hearth volunteer` reads its snapshot).
//
// What loads before the yes is this file and the controller; the worker, the store, the identity
// and the chart are imported after it.

import type { FinishedShard } from '../../client/controller.ts';
import {
  type ComfortSource,
  type VolunteerController as Controller,
  type ControllerWorker,
  VolunteerController,
  type VolunteerSettings,
  type VolunteerSnapshot,
} from '../../client/controller.ts';
import { parseIceServers } from '../../net/ice.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const params = new URLSearchParams(location.search);
const hubUrl = params.get('hub') ?? location.origin;
/** A yes is remembered on this device (per hub) until the volunteer presses Stop. */
const CONSENT_KEY = `hearth-consent:${hubUrl}`;
/** The volunteer's choices (GPU cap, pause, background), per hub. */
const SETTINGS_KEY = `hearth-settings:${hubUrl}`;
$('hub-name').textContent = new URL(hubUrl).host;

/**
 * PeerJS settings for the hub's own PeerServer. ICE servers: none by default (loopback and LAN);
 * a deployment passes `?ice=` with a JSON list of STUN/TURN servers, e.g.
 * `[{"urls":"stun:stun.example.org:3478"}]`.
 */
function peerSettings(hub: string) {
  const u = new URL(hub);
  const secure = u.protocol === 'https:';
  let iceServers: RTCIceServer[] = [];
  const ice = params.get('ice');
  if (ice) {
    try {
      iceServers = parseIceServers(ice);
    } catch (e) {
      showError(`?ice= was not used (${e instanceof Error ? e.message : e}); using no ICE servers.`);
    }
  }
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : secure ? 443 : 80,
    secure,
    path: '/p2p',
    iceServers,
  };
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

function showError(message: string): void {
  const el = $('error');
  el.hidden = false;
  el.textContent = message;
}

const PAUSED_WHY = {
  you: 'Paused: press Resume to go on.',
  hidden: 'Paused while this tab is hidden (tick "Keep working while this tab is hidden" to change that).',
  battery: 'Paused: the battery is low and not charging. Work resumes when it charges.',
} as const;

/** Visibility and battery from the browser. */
function pageComfort(): ComfortSource {
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

let chart: { update(finished: readonly FinishedShard[]): void } | undefined;
let chartLoading = false;
let lastFinished: readonly FinishedShard[] = [];

function render(s: VolunteerSnapshot): void {
  document.body.dataset.state = s.state;
  $('state').textContent = s.state;
  $('consent').hidden = s.state !== 'asking';
  $('meter').hidden = s.state === 'asking' || s.state === 'declined';
  if (s.device) $('device').textContent = s.device;
  $('no-webgpu').hidden = s.webgpu !== false;
  if (s.volunteerId) {
    $('volunteer-id').textContent = s.volunteerId.slice(0, 16);
    $('volunteer-id').title = s.volunteerId;
  }
  if (s.current !== null) $('current').textContent = s.current;
  $<HTMLProgressElement>('progress').value = s.progress ?? 0;
  if (s.error !== null) showError(s.error);
  const why = $('paused-why');
  why.hidden = s.pausedBy === null;
  why.textContent = s.pausedBy ? PAUSED_WHY[s.pausedBy] : '';
  renderSettings(s.settings);
  $('busy').textContent = s.gpuBusy === null ? '–' : `${Math.round(s.gpuBusy * 100)}%`;
  if (s.credit) {
    $('granted').textContent = s.credit.granted;
    $('credit-pending').textContent = s.credit.pending;
  }
  const stats = s.stats;
  if (stats) {
    const acked = stats.valid + stats.pending + stats.invalid + stats.inconclusive + stats.refused;
    $('done').textContent = String(acked);
    $('valid').textContent = String(stats.valid);
    $('pending').textContent = String(stats.pending);
    $('rejected').textContent = String(stats.invalid + stats.refused);
    $('downloaded').textContent =
      `${bytes(stats.downloadedBytes)} from the hub, ${bytes(stats.peerBytes)} from peers`;
  }
  if (s.finished !== lastFinished) {
    lastFinished = s.finished;
    chart?.update(s.finished);
  }
  if (!$('meter').hidden && !chart && !chartLoading) {
    chartLoading = true;
    import('./chart.ts')
      .then((m) => {
        chart = m.throughputChart($('chart'));
        chart.update(lastFinished);
      })
      .catch((e: unknown) => showError(`The chart did not load: ${e instanceof Error ? e.message : e}`));
  }
}

function renderSettings(st: VolunteerSettings): void {
  const pct = Math.round(st.dutyCycle * 100);
  $('consent-cap').textContent = `${pct}%`;
  const cap = $<HTMLInputElement>('cap');
  if (document.activeElement !== cap) cap.value = String(pct);
  $('cap-value').textContent = `${pct}%`;
  const pause = $<HTMLButtonElement>('pause');
  pause.textContent = st.paused ? 'Resume' : 'Pause';
  pause.setAttribute('aria-pressed', String(st.paused));
  $<HTMLInputElement>('background').checked = st.background;
}

const controller: Controller = new VolunteerController({
  hubUrl,
  consent: {
    get: () => localStorage.getItem(CONSENT_KEY) === 'yes',
    set: (yes) => (yes ? localStorage.setItem(CONSENT_KEY, 'yes') : localStorage.removeItem(CONSENT_KEY)),
  },
  settings: {
    get: () => {
      try {
        return JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? 'null') as Partial<VolunteerSettings> | null;
      } catch {
        return null;
      }
    },
    set: (s) => localStorage.setItem(SETTINGS_KEY, JSON.stringify(s)),
  },
  comfort: pageComfort(),
  startWorker: async (): Promise<ControllerWorker> =>
    (await import('../../worker/client.ts')).startComputeWorker(),
  open: async () => {
    const [
      { loadOrCreateIdentity },
      { BlobCache },
      { openHearthDB, requestPersistentStorage },
      { ResultOutbox },
    ] = await Promise.all([
      import('../../client/identity.ts'),
      import('../../store/blob-cache.ts'),
      import('../../store/db.ts'),
      import('../../store/outbox.ts'),
    ]);
    await requestPersistentStorage();
    const db = await openHearthDB();
    return { identity: await loadOrCreateIdentity(), outbox: new ResultOutbox(db), blobs: new BlobCache(db) };
  },
  volunteer: { p2p: peerSettings(hubUrl) },
});
(window as unknown as { hearthVolunteer: VolunteerController }).hearthVolunteer = controller;
controller.subscribe(render);
render(controller.snapshot);
// The chart's minutes move on even when nothing finishes.
setInterval(() => chart?.update(lastFinished), 15_000);

$('consent-yes').addEventListener('click', () => void controller.yes());
$('consent-no').addEventListener('click', () => controller.no());
$('pause').addEventListener('click', () =>
  controller.snapshot.settings.paused ? controller.unpause() : controller.pause(),
);
$<HTMLInputElement>('cap').addEventListener('input', (e) => {
  const pct = Number((e.target as HTMLInputElement).value);
  $('cap-value').textContent = `${pct}%`;
});
$<HTMLInputElement>('cap').addEventListener('change', (e) =>
  controller.setDutyCycle(Number((e.target as HTMLInputElement).value) / 100),
);
$<HTMLInputElement>('background').addEventListener('change', (e) =>
  controller.setBackground((e.target as HTMLInputElement).checked),
);
$('stop').addEventListener('click', async () => {
  $<HTMLButtonElement>('stop').disabled = true;
  await controller.stop();
});
// After a reload, a remembered yes resumes at once (the meter shows it, Stop forgets it): the
// identity, the blob cache and the results not yet acknowledged are all in IndexedDB.
void controller.resume();
