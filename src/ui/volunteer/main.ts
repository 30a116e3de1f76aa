// The volunteer page: asks first, and only after "Yes" starts the compute worker, probes the GPU
// and connects to the hub (DESIGN.md invariant 1); while it works, a meter shows what runs.
// The hub is the origin that served this page, or `?hub=URL` (that hub must list this page's
// origin in its allowed origins). The work is client/controller.ts's: this file renders its
// snapshots and wires the buttons. `window.hearthVolunteer` is the controller, for programs that
// drive the page (`hearth volunteer` reads its snapshot).

import { VolunteerController, type VolunteerSnapshot } from '../../client/controller.ts';
import { loadOrCreateIdentity } from '../../client/identity.ts';
import { parseIceServers } from '../../net/ice.ts';
import { BlobCache } from '../../store/blob-cache.ts';
import { openHearthDB, requestPersistentStorage } from '../../store/db.ts';
import { ResultOutbox } from '../../store/outbox.ts';
import { startComputeWorker } from '../../worker/client.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const hubUrl = new URLSearchParams(location.search).get('hub') ?? location.origin;
/** A yes is remembered on this device (per hub) until the volunteer presses Stop. */
const CONSENT_KEY = `hearth-consent:${hubUrl}`;
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
  const ice = new URLSearchParams(location.search).get('ice');
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

function render(s: VolunteerSnapshot): void {
  document.body.dataset.state = s.state;
  $('state').textContent = s.state;
  $('consent').hidden = s.state !== 'asking';
  $('meter').hidden = s.state === 'asking' || s.state === 'declined';
  if (s.device) $('device').textContent = s.device;
  if (s.volunteerId) {
    $('volunteer-id').textContent = s.volunteerId.slice(0, 16);
    $('volunteer-id').title = s.volunteerId;
  }
  if (s.current !== null) $('current').textContent = s.current;
  $<HTMLProgressElement>('progress').value = s.progress ?? 0;
  if (s.error !== null) showError(s.error);
  const stats = s.stats;
  if (!stats) return;
  const acked = stats.valid + stats.pending + stats.invalid + stats.inconclusive + stats.refused;
  $('done').textContent = String(acked);
  $('valid').textContent = String(stats.valid);
  $('pending').textContent = String(stats.pending);
  $('rejected').textContent = String(stats.invalid + stats.refused);
  $('downloaded').textContent =
    `${bytes(stats.downloadedBytes)} from the hub, ${bytes(stats.peerBytes)} from peers`;
}

const controller = new VolunteerController({
  hubUrl,
  consent: {
    get: () => localStorage.getItem(CONSENT_KEY) === 'yes',
    set: (yes) => (yes ? localStorage.setItem(CONSENT_KEY, 'yes') : localStorage.removeItem(CONSENT_KEY)),
  },
  startWorker: () => startComputeWorker(),
  open: async () => {
    await requestPersistentStorage();
    const db = await openHearthDB();
    return { identity: await loadOrCreateIdentity(), outbox: new ResultOutbox(db), blobs: new BlobCache(db) };
  },
  volunteer: { p2p: peerSettings(hubUrl) },
});
(window as unknown as { hearthVolunteer: VolunteerController }).hearthVolunteer = controller;
controller.subscribe(render);
render(controller.snapshot);

$('consent-yes').addEventListener('click', () => void controller.yes());
$('consent-no').addEventListener('click', () => controller.no());
$('stop').addEventListener('click', async () => {
  $<HTMLButtonElement>('stop').disabled = true;
  await controller.stop();
});
// After a reload, a remembered yes resumes at once (the meter shows it, Stop forgets it): the
// identity, the blob cache and the results not yet acknowledged are all in IndexedDB.
void controller.resume();
