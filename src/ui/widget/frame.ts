// The `<hearth-widget>` frame, on the hub's origin: the consent card, then the compact meter.
//
// Before the yes this file is all that runs (with the page and its CSS): it reads which site
// embeds the frame (`location.ancestorOrigins[0]`, else the referrer's origin) and the payout
// address (`?payout=`), shows them with the hub on the card, and tells the element its height and
// state. No worker, no adapter request, no connection. The yes is a click in this frame — a frame
// of another origin cannot be clicked by the host's scripts, so a host cannot say yes for its
// visitors — and is remembered per (hub, embedding site). After it (or at once, where a yes is
// remembered) frame-run.ts is imported: the controller, and through it the worker, the store, the
// identity and the chart.
//
// It talks to its parent with postMessage to the embedding origin only, and only sends its
// height and a coarse state: `{ type: 'hearth-widget', v: 1, height, state }`.
import { type EmbedAttribution, isPayoutAddress, isWebOrigin } from '../../protocol/embed.ts';

/** The coarse states the element hears (hearth-widget.ts STATES). */
export type WidgetState = 'asking' | 'declined' | 'working' | 'paused' | 'stopped' | 'failed';

const $ = (id: string) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const hubUrl = location.origin;
const payout = params.get('payout');
const embedder = embeddingOrigin();

/** The origin of the page that embeds this frame, as the browser says it; null when it cannot tell. */
function embeddingOrigin(): string | null {
  if (window.parent === window) return null;
  const ancestors = location.ancestorOrigins;
  if (ancestors && ancestors.length > 0) {
    const o = ancestors[0];
    return isWebOrigin(o) ? o : null;
  }
  try {
    const o = new URL(document.referrer).origin;
    return isWebOrigin(o) ? o : null;
  } catch {
    return null;
  }
}

/** The remembered yes, per (hub, embedding site). */
const consentKey = (embed: EmbedAttribution) => `hearth-consent:${hubUrl}:${embed.origin}`;

let state: WidgetState = 'asking';
let posted = '';

/** Tells the element this frame's height and state (to the embedding origin only, and only on change). */
function report(): void {
  if (!embedder) return;
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  const key = `${height} ${state}`;
  if (key === posted) return;
  posted = key;
  window.parent.postMessage({ type: 'hearth-widget', v: 1, height, state }, embedder);
}
new ResizeObserver(report).observe(document.documentElement);

function refuse(message: string): void {
  const el = $('error');
  if (el) {
    el.hidden = false;
    el.textContent = message;
  }
  state = 'failed';
  report();
}

function setState(s: WidgetState): void {
  state = s;
  report();
}

/** Imports the controller and the meter, and starts: at once after the yes, or where one is remembered. */
async function start(embed: EmbedAttribution, yes: boolean): Promise<void> {
  const consent = $('consent');
  if (consent) consent.hidden = true;
  try {
    const { runWidget } = await import('./frame-run.ts');
    runWidget({
      hubUrl,
      embed,
      yes,
      consentKey: consentKey(embed),
      settingsKey: `hearth-settings:${hubUrl}:${embed.origin}`,
      onState: setState,
    });
  } catch (e) {
    refuse(`The volunteer runtime did not load: ${e instanceof Error ? e.message : e}`);
  }
}

if (!embedder) {
  refuse(
    window.parent === window
      ? `This page belongs inside a <hearth-widget> on another site. To volunteer on this hub itself, open ${hubUrl}/volunteer/.`
      : 'This frame cannot tell which site embeds it (the browser sent no ancestor origin nor referrer), so it will not ask.',
  );
} else if (!isPayoutAddress(payout)) {
  refuse('The site that embeds this frame gave no valid payout address (0x and 40 hex digits).');
} else {
  const embed = { origin: embedder, payout };
  let remembered = false;
  try {
    remembered = localStorage.getItem(consentKey(embed)) === 'yes';
  } catch {
    // Storage refused (third-party storage blocked): ask every time.
  }
  if (remembered) void start(embed, false);
  else {
    const text = (id: string, value: string) => {
      const el = $(id);
      if (el) el.textContent = value;
    };
    text('site-name', new URL(embedder).host);
    text('hub-name', new URL(hubUrl).host);
    text('payout', payout);
    // The site's share, as the hub's operator set it (the hub, not the host page, says so).
    fetch('/widget/terms')
      .then((r) => (r.ok ? r.json() : null))
      .then((t: { embedShareBps?: unknown; paysTokens?: unknown } | null) => {
        if (t && typeof t.embedShareBps === 'number') text('site-share', `${t.embedShareBps / 100}%`);
        const note = $('tokens-note');
        if (note && t?.paysTokens === true) note.hidden = false;
        report();
      })
      .catch(() => {});
    const consent = $('consent');
    if (consent) consent.hidden = false;
    $('consent-yes')?.addEventListener('click', () => void start(embed, true), { once: true });
    $('consent-no')?.addEventListener('click', () => {
      if (consent) consent.hidden = true;
      const declined = $('declined');
      if (declined) declined.hidden = false;
      document.body.dataset.state = 'declined';
      setState('declined');
    });
    report();
  }
}
