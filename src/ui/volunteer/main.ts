// The volunteer page: asks first, and only after "Yes" loads the compute worker, probes the GPU
// and connects to the hub (DESIGN.md invariant 1); while it works, a meter shows what runs, what
// it earned and how hard the GPU works, with the volunteer's controls (pause, GPU cap, background).
// The hub is the origin that served this page, or `?hub=URL` (that hub must list this page's
// origin in its allowed origins). The work is client/controller.ts's, the drawing meter.ts's
// (shared with the widget's frame): this file makes the controller and wires the consent
// buttons. `window.hearthVolunteer` is the controller, for programs that drive the page
// (`hearth volunteer` reads its snapshot).
//
// What loads before the yes is this file, the meter and the controller; the worker, the store,
// the identity and the chart are imported after it.

import { VolunteerController } from '../../client/controller.ts';
import { parseIceServers } from '../../net/ice.ts';
import {
  localConsent,
  localSettings,
  meterView,
  openParts,
  pageComfort,
  peerSettings,
  startWorker,
} from './meter.ts';
import { walletPanel } from './wallet-panel.ts';

const params = new URLSearchParams(location.search);
const hubUrl = params.get('hub') ?? location.origin;
/**
 * Other hubs of the same project (`?hubs=URL,URL`: hubs sharing one database), tried in turn when
 * the connection to one is lost. Only http(s) URLs are taken.
 */
const hubUrls = (params.get('hubs') ?? '')
  .split(',')
  .map((u) => u.trim())
  .filter((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol));
const view = meterView(document);
const hubName = document.getElementById('hub-name');
if (hubName) hubName.textContent = new URL(hubUrl).host;

/**
 * ICE servers for the swarm: none by default (loopback and LAN); a deployment passes `?ice=`
 * with a JSON list of STUN/TURN servers, e.g. `[{"urls":"stun:stun.example.org:3478"}]`.
 */
function iceServers(): RTCIceServer[] {
  const ice = params.get('ice');
  if (!ice) return [];
  try {
    return parseIceServers(ice);
  } catch (e) {
    view.showError(`?ice= was not used (${e instanceof Error ? e.message : e}); using no ICE servers.`);
    return [];
  }
}

const controller = new VolunteerController({
  hubUrl,
  /** A yes is remembered on this device (per hub) until the volunteer presses Stop. */
  consent: localConsent(`hearth-consent:${hubUrl}`),
  /** The volunteer's choices (GPU cap, pause, background), per hub. */
  settings: localSettings(`hearth-settings:${hubUrl}`),
  comfort: pageComfort(),
  startWorker,
  open: openParts,
  volunteer: { p2p: peerSettings(hubUrl, iceServers()), ...(hubUrls.length ? { hubUrls } : {}) },
});
(window as unknown as { hearthVolunteer: VolunteerController }).hearthVolunteer = controller;
const wallet = walletPanel(document);
controller.subscribe((s) => {
  view.render(s);
  wallet.render(s);
});
view.render(controller.snapshot);
view.wire(controller);
wallet.render(controller.snapshot);
wallet.wire(controller);

document.getElementById('consent-yes')?.addEventListener('click', () => void controller.yes());
document.getElementById('consent-no')?.addEventListener('click', () => controller.no());
// After a reload, a remembered yes resumes at once (the meter shows it, Stop forgets it): the
// identity, the blob cache and the results not yet acknowledged are all in IndexedDB.
void controller.resume();
