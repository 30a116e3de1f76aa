// Wallet discovery by EIP-6963: every wallet extension announces itself (name, icon, a reverse-DNS
// id and its EIP-1193 provider) in answer to one `eip6963:requestProvider` event, so the volunteer
// chooses among them instead of whichever extension won the race for `window.ethereum`. A browser
// with only a legacy wallet still gets `window.ethereum`, listed once, by name "Browser wallet".
//
// Announcements come from any script on the page, so each is checked: a provider with `request`,
// a bounded name, and an icon that is a data: URI of an image (never a URL the page would fetch).
import type { Eip1193Provider } from './eip1193.ts';

/** One wallet the volunteer may choose. */
export interface DiscoveredWallet {
  /** A per-page id the wallet chose (EIP-6963 `uuid`), or 'legacy' for `window.ethereum`. */
  readonly id: string;
  readonly name: string;
  /** A data: URI of the wallet's icon, or '' when it gave none usable. */
  readonly icon: string;
  /** Reverse DNS of the wallet (`io.metamask`), '' for the legacy provider. */
  readonly rdns: string;
  readonly provider: Eip1193Provider;
}

/** The part of `window` discovery uses (a test passes its own). */
export interface DiscoveryWindow {
  addEventListener(type: string, listener: (e: Event) => void): void;
  removeEventListener(type: string, listener: (e: Event) => void): void;
  dispatchEvent(e: Event): boolean;
  readonly ethereum?: unknown;
}

const ICON = /^data:image\/(png|svg\+xml|webp|jpeg|gif);base64,[A-Za-z0-9+/=]+$/;
const MAX_NAME = 64;
const MAX_ICON = 64 * 1024;

/** Whether `v` looks like an EIP-1193 provider: an object with a `request` function. */
export function isProvider(v: unknown): v is Eip1193Provider {
  return typeof v === 'object' && v !== null && typeof (v as { request?: unknown }).request === 'function';
}

function text(v: unknown, max: number): string {
  return typeof v === 'string' ? v.slice(0, max) : '';
}

/**
 * The wallets announced within `waitMs` (default 300 ms: extensions answer synchronously or
 * nearly), in announcement order, one per id; then `window.ethereum` when no announced wallet is
 * that same provider.
 *
 * @example
 * const wallets = await discoverWallets(window);
 * const chosen = wallets.find((w) => w.rdns === 'io.metamask') ?? wallets[0];
 */
export async function discoverWallets(win: DiscoveryWindow, waitMs = 300): Promise<DiscoveredWallet[]> {
  const found = new Map<string, DiscoveredWallet>();
  const onAnnounce = (e: Event) => {
    const detail = (e as CustomEvent<unknown>).detail as { info?: unknown; provider?: unknown } | undefined;
    const info = (detail?.info ?? {}) as Record<string, unknown>;
    const id = text(info.uuid, 64);
    if (!isProvider(detail?.provider) || id === '' || found.has(id)) return;
    const icon = text(info.icon, MAX_ICON + 1);
    found.set(id, {
      id,
      name: text(info.name, MAX_NAME) || 'Unnamed wallet',
      icon: icon.length <= MAX_ICON && ICON.test(icon) ? icon : '',
      rdns: text(info.rdns, 100),
      provider: detail.provider,
    });
  };
  win.addEventListener('eip6963:announceProvider', onAnnounce);
  try {
    win.dispatchEvent(new Event('eip6963:requestProvider'));
    await new Promise((r) => setTimeout(r, waitMs));
  } finally {
    win.removeEventListener('eip6963:announceProvider', onAnnounce);
  }
  const list = [...found.values()];
  const legacy = win.ethereum;
  if (isProvider(legacy) && !list.some((w) => w.provider === legacy)) {
    list.push({ id: 'legacy', name: 'Browser wallet', icon: '', rdns: '', provider: legacy });
  }
  return list;
}
