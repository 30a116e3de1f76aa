// The volunteer page: asks first, and only after "Yes" starts the compute worker, probes the GPU
// and connects to the hub (DESIGN.md invariant 1); while it works, a meter shows what runs.
// The hub is the origin that served this page, or `?hub=URL` (that hub must list this page's
// origin in its allowed origins).

import { loadOrCreateIdentity } from '../../client/identity.ts';
import { Volunteer, type VolunteerEvent, type VolunteerStats } from '../../client/volunteer.ts';
import { parseIceServers } from '../../net/ice.ts';
import { BlobCache } from '../../store/blob-cache.ts';
import { openHearthDB, requestPersistentStorage } from '../../store/db.ts';
import { ResultOutbox } from '../../store/outbox.ts';
import { startComputeWorker } from '../../worker/client.ts';
import type { CapabilityReport } from '../../worker/probe.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const hubUrl = new URLSearchParams(location.search).get('hub') ?? location.origin;
/** A yes is remembered on this device (per hub) until the volunteer presses Stop. */
const CONSENT_KEY = `hearth-consent:${hubUrl}`;
$('hub-name').textContent = new URL(hubUrl).host;

function featureNames(caps: CapabilityReport): string[] {
  const f = caps.features;
  return [
    ...(f.shaderF16 ? ['shader-f16'] : []),
    ...(f.subgroups ? ['subgroups'] : []),
    ...(f.timestampQuery ? ['timestamp-query'] : []),
  ];
}

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

function setState(state: string): void {
  document.body.dataset.state = state;
  $('state').textContent = state;
}

function showError(message: string): void {
  const el = $('error');
  el.hidden = false;
  el.textContent = message;
}

function render(stats: VolunteerStats): void {
  const acked = stats.valid + stats.pending + stats.invalid + stats.inconclusive + stats.refused;
  $('done').textContent = String(acked);
  $('valid').textContent = String(stats.valid);
  $('pending').textContent = String(stats.pending);
  $('rejected').textContent = String(stats.invalid + stats.refused);
  $('downloaded').textContent =
    `${bytes(stats.downloadedBytes)} from the hub, ${bytes(stats.peerBytes)} from peers`;
  $('stats').textContent = JSON.stringify(stats);
}

async function start(): Promise<void> {
  $('consent').hidden = true;
  $('meter').hidden = false;
  setState('probing');
  const worker = startComputeWorker();
  const caps = await worker.probe();
  $('device').textContent = caps.adapter.summary;
  await requestPersistentStorage();
  const db = await openHearthDB();
  const identity = await loadOrCreateIdentity();
  $('volunteer-id').textContent = identity.id.slice(0, 16);
  $('volunteer-id').title = identity.id;
  const onEvent = (e: VolunteerEvent) => {
    switch (e.type) {
      case 'state':
        setState(e.state);
        break;
      case 'lease':
        $('current').textContent = `${e.kind} shard ${e.shard}`;
        $<HTMLProgressElement>('progress').value = 0;
        break;
      case 'progress':
        $<HTMLProgressElement>('progress').value = e.progress.total ? e.progress.done / e.progress.total : 0;
        break;
      case 'result':
        $('current').textContent =
          `${e.shard}: ${e.outcome} (${Math.round(e.ms)} ms on ${e.backend})` +
          (e.reason ? ` — ${e.reason}` : '');
        break;
      case 'disconnected':
        $('current').textContent = `${e.error.message} Retrying in ${Math.round(e.retryInMs / 1000)} s.`;
        break;
      case 'shard-failed':
        $('current').textContent =
          `${e.shard} failed here: ${e.error.message}` +
          (e.reported === 'released'
            ? ' (passed on to another volunteer)'
            : e.reported
              ? ' (reported to the researcher)'
              : '');
        break;
      case 'replaced':
        // The same identity works in another tab or window; this one stopped (Stop still forgets
        // the yes here).
        $('current').textContent = 'Working in another tab or window of this browser: this one has stopped.';
        break;
    }
    render(volunteer.stats);
  };
  const volunteer = new Volunteer({
    hubUrl,
    identity,
    capabilities: { maxBufferBytes: caps.limits.maxBufferSize, features: featureNames(caps) },
    runner: worker,
    outbox: new ResultOutbox(db),
    blobs: new BlobCache(db),
    p2p: peerSettings(hubUrl),
    onEvent,
  });
  $('stop').addEventListener('click', async () => {
    $<HTMLButtonElement>('stop').disabled = true;
    localStorage.removeItem(CONSENT_KEY);
    await volunteer.stop();
    await worker.terminate();
    setState('stopped');
  });
  volunteer.start();
}

function begin(): void {
  start().catch((e: unknown) => {
    setState('failed');
    showError(e instanceof Error ? e.message : String(e));
  });
}

$('consent-yes').addEventListener('click', () => {
  localStorage.setItem(CONSENT_KEY, 'yes');
  begin();
});
// After a reload, a remembered yes resumes at once (the meter shows it, Stop forgets it): the
// identity, the blob cache and the results not yet acknowledged are all in IndexedDB.
if (localStorage.getItem(CONSENT_KEY) === 'yes') begin();
$('consent-no').addEventListener('click', () => {
  $('consent').hidden = true;
  setState('declined');
  $('error').hidden = false;
  $('error').textContent = 'Nothing will run. Reload the page if you change your mind.';
});
