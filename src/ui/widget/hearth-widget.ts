// `<hearth-widget hub="https://HUB" payout="0x…">`: one tag on any site lends its visitors' GPUs
// to a Hearth hub, with their yes. Built to the fixed path `dist/widget/hearth-widget.js` and
// served by the hub to every origin (src/node/widget.ts):
//
//   <script type="module" src="https://HUB/widget/hearth-widget.js"></script>
//   <hearth-widget hub="https://HUB" payout="0x…"></hearth-widget>
//
// The element is a closed shadow root holding one small frame and nothing else: it never touches
// the host's DOM outside itself and adds no global style. The frame (`HUB/widget/frame.html`) is
// on the hub's origin, so the consent card, the volunteer's key and its storage live there, out
// of the host's reach, and the yes is a click inside it that the host's scripts cannot make. The
// frame tells the element only its height and a coarse state, by postMessage; the element takes
// messages from the hub's origin, from its own frame, of that shape, and nothing else. A change of
// state is a `hearth-state` event on the element (`detail.state`: asking, declined, working,
// paused, stopped, failed).
//
// This file imports nothing: it is the one script a host loads from the hub, and stays a few KB.

/** `0x` and 40 hex digits (protocol/embed.ts PAYOUT_PATTERN; repeated so this file stands alone). */
const PAYOUT = /^0x[0-9a-fA-F]{40}$/;
/** What the frame sends (src/ui/widget/frame.ts). */
const MESSAGE = 'hearth-widget';
const STATES: ReadonlySet<string> = new Set(['asking', 'declined', 'working', 'paused', 'stopped', 'failed']);
/** Bounds on the height a frame may ask for, in CSS pixels. */
const MIN_HEIGHT = 60;
const MAX_HEIGHT = 1200;

const STYLE = `
:host { display: block; max-width: 36rem; }
:host([hidden]) { display: none; }
.box { border-radius: 0.5rem; overflow: hidden; background: #1d1a17; }
iframe { display: block; width: 100%; height: 220px; border: 0; }
.note { margin: 0; padding: 0.75rem 1rem; font: 15px / 1.5 system-ui, sans-serif; color: #f3ece4; }
.note strong { color: #f0a04b; }
code { font: 0.9em ui-monospace, monospace; overflow-wrap: anywhere; }
`;

let sheet: CSSStyleSheet | undefined;
/** The element's style as one shared constructed sheet; undefined where the browser has none. */
function styleSheet(): CSSStyleSheet | undefined {
  if (sheet) return sheet;
  try {
    const s = new CSSStyleSheet();
    s.replaceSync(STYLE);
    if (!('adoptedStyleSheets' in ShadowRoot.prototype)) return undefined;
    sheet = s;
    return s;
  } catch {
    return undefined;
  }
}

/** A string cut to `n` characters for a message. */
const cut = (s: string, n = 80) => (s.length > n ? `${s.slice(0, n)}…` : s);

class HearthWidget extends HTMLElement {
  static observedAttributes = ['hub', 'payout'];

  readonly #root: ShadowRoot;
  readonly #box: HTMLDivElement;
  #frame: HTMLIFrameElement | undefined;
  #hubOrigin = '';
  /** Bumped on every render, so a slow answer for old attributes is dropped. */
  #generation = 0;
  #listening = false;
  #scheduled = false;
  /** The frame's last coarse state. */
  #state = '';

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'closed' });
    this.#box = document.createElement('div');
    this.#box.className = 'box';
    // A constructed sheet, adopted by this shadow root only: a host whose Content-Security-Policy
    // forbids inline styles still shows it, and the document's own sheets stay as they are.
    const sheet = styleSheet();
    if (sheet) this.#root.adoptedStyleSheets = [sheet];
    else {
      const style = document.createElement('style');
      style.textContent = STYLE;
      this.#root.append(style);
    }
    this.#root.append(this.#box);
  }

  connectedCallback(): void {
    if (!this.#listening) {
      window.addEventListener('message', this.#onMessage);
      this.#listening = true;
    }
    this.#schedule();
  }

  disconnectedCallback(): void {
    window.removeEventListener('message', this.#onMessage);
    this.#listening = false;
    this.#generation++;
    this.#frame = undefined;
    this.#box.replaceChildren();
  }

  attributeChangedCallback(_name: string, old: string | null, now: string | null): void {
    if (old !== now) this.#schedule();
  }

  /** One render for all the changes of this turn (an upgrade reports each attribute, then connects). */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      if (this.isConnected) void this.#render();
    });
  }

  /** A sentence in the element instead of the frame; `code` parts are shown as code. */
  #say(...parts: (string | { code: string } | { strong: string })[]): void {
    this.#frame = undefined;
    const p = document.createElement('p');
    p.className = 'note';
    p.setAttribute('role', 'status');
    for (const part of parts) {
      if (typeof part === 'string') p.append(part);
      else if ('code' in part) {
        const c = document.createElement('code');
        c.textContent = part.code;
        p.append(c);
      } else {
        const s = document.createElement('strong');
        s.textContent = part.strong;
        p.append(s);
      }
    }
    this.#box.replaceChildren(p);
  }

  async #render(): Promise<void> {
    const generation = ++this.#generation;
    const hub = this.getAttribute('hub') ?? '';
    const payout = this.getAttribute('payout') ?? '';
    let base: URL;
    try {
      base = new URL(hub.endsWith('/') ? hub : `${hub}/`);
      if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new TypeError('not http(s)');
    } catch {
      return this.#say(
        'Hearth widget: the ',
        { code: 'hub' },
        ' attribute must be the hub’s address, like ',
        {
          code: 'https://hub.example',
        },
        hub ? `; got "${cut(hub)}".` : '; it is missing.',
      );
    }
    if (!PAYOUT.test(payout)) {
      return this.#say(
        'Hearth widget: the ',
        { code: 'payout' },
        ' attribute must be an address, 0x and 40 hex digits',
        payout ? `; got "${cut(payout)}".` : '; it is missing.',
      );
    }
    this.#hubOrigin = base.origin;
    this.#say('Hearth: asking the hub at ', { strong: base.host }, '…');
    // Whether the hub lets its frame render on this site: without asking, a refused frame is a
    // blank box (the browser's frame-ancestors refusal says nothing to the page).
    let allowed: unknown;
    try {
      const r = await fetch(new URL('widget/allowed', base), {
        mode: 'cors',
        credentials: 'omit',
        cache: 'no-store',
      });
      allowed = r.ok ? ((await r.json()) as { allowed?: unknown }).allowed : undefined;
      if (typeof allowed !== 'boolean') throw new TypeError(`HTTP ${r.status}`);
    } catch (e) {
      if (generation !== this.#generation) return;
      return this.#say(
        'Hearth: the hub at ',
        { strong: base.host },
        ` could not be reached (${cut(e instanceof Error ? e.message : String(e))}). A site with a Content-Security-Policy needs `,
        { code: `script-src ${base.origin}; frame-src ${base.origin}; connect-src ${base.origin}` },
        '.',
      );
    }
    if (generation !== this.#generation) return;
    if (!allowed) {
      const origin = location.origin;
      return this.#say(
        'Hearth: the hub at ',
        { strong: base.host },
        ` does not allow widgets on ${origin}. Its operator can add this site with `,
        { code: `hearth hub --origin ${origin}` },
        '.',
      );
    }
    const frame = document.createElement('iframe');
    frame.title = 'Hearth: lend this tab’s GPU to research';
    // WebGPU in a frame of another origin needs the host's permission; cross-origin isolation
    // (threaded wasm) only matters where the host itself is isolated.
    frame.allow = 'webgpu; cross-origin-isolated';
    // The frame learns which site embeds it from its ancestors, or else from the referrer: the
    // origin only, whatever the host's referrer policy.
    frame.referrerPolicy = 'origin';
    const src = new URL('widget/frame.html', base);
    src.searchParams.set('payout', payout);
    frame.src = src.href;
    this.#frame = frame;
    this.#box.replaceChildren(frame);
  }

  /** The frame's size and state: from the hub's origin, from this element's frame, of the known shape. */
  readonly #onMessage = (e: MessageEvent): void => {
    const frame = this.#frame;
    if (!frame || e.source !== frame.contentWindow || e.origin !== this.#hubOrigin) return;
    const d = e.data as Record<string, unknown> | null;
    if (typeof d !== 'object' || d === null || Object.keys(d).length !== 4) return;
    const { type, v, height, state } = d;
    if (type !== MESSAGE || v !== 1 || typeof state !== 'string' || !STATES.has(state)) return;
    if (typeof height !== 'number' || !Number.isFinite(height)) return;
    frame.style.height = `${Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.ceil(height)))}px`;
    if (state !== this.#state) {
      this.#state = state;
      // For a host that wants to know (e.g. to fold the element away after "No thanks").
      this.dispatchEvent(new CustomEvent('hearth-state', { detail: { state } }));
    }
  };
}

if (!customElements.get('hearth-widget')) customElements.define('hearth-widget', HearthWidget);
