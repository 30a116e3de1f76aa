// The widget's frame after the yes (imported by frame.ts, never before it): the volunteer page's
// controller and meter (src/ui/volunteer/meter.ts) in the compact frame, the embedding site and
// its payout address sent in every hello so the hub credits the site beside the volunteer.
// `window.hearthVolunteer` is the controller, as on the page: the frame is on the hub's origin,
// so the host page cannot reach it.
import { type ControllerState, VolunteerController } from '../../client/controller.ts';
import type { EmbedAttribution } from '../../protocol/embed.ts';
import {
  localConsent,
  localSettings,
  meterView,
  openParts,
  pageComfort,
  peerSettings,
  startWorker,
} from '../volunteer/meter.ts';
import { walletPanel } from '../volunteer/wallet-panel.ts';
import type { WidgetState } from './frame.ts';

/** A controller state as the element hears it: coarse, nothing about the work itself. */
export function coarseState(s: ControllerState, paused: boolean): WidgetState {
  switch (s) {
    case 'asking':
    case 'declined':
    case 'stopped':
    case 'failed':
      return s;
    case 'paused':
      return 'paused';
    default:
      return paused ? 'paused' : 'working';
  }
}

export interface WidgetRun {
  readonly hubUrl: string;
  readonly embed: EmbedAttribution;
  /** True: the volunteer just said yes; false: a remembered yes resumes. */
  readonly yes: boolean;
  readonly consentKey: string;
  readonly settingsKey: string;
  readonly onState: (s: WidgetState) => void;
}

export function runWidget(o: WidgetRun): VolunteerController {
  const view = meterView(document, { chartHeight: 90 });
  const controller = new VolunteerController({
    hubUrl: o.hubUrl,
    consent: localConsent(o.consentKey),
    settings: localSettings(o.settingsKey),
    comfort: pageComfort(),
    startWorker,
    open: openParts,
    volunteer: { p2p: peerSettings(o.hubUrl), embed: o.embed },
  });
  (window as unknown as { hearthVolunteer: VolunteerController }).hearthVolunteer = controller;
  const wallet = walletPanel(document);
  wallet.wire(controller);
  controller.subscribe((s) => {
    view.render(s);
    wallet.render(s);
    o.onState(coarseState(s.state, s.pausedBy !== null));
  });
  view.wire(controller);
  void (o.yes ? controller.yes() : controller.resume());
  view.render(controller.snapshot);
  return controller;
}
