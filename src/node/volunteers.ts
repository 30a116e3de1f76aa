// `hearth volunteer --count N`: N headless Chromium volunteers against a hub — how tests, the demo
// and operators bring workers without a browser window. Each volunteer is its own browser
// context (its own IndexedDB, so its own key pair and identity) on the hub's volunteer page; the
// operator running the command is the one saying yes, so this clicks the page's consent button
// (the page itself never starts without that click, DESIGN.md invariant 1).
import { existsSync, readdirSync } from 'node:fs';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import type { Hex } from 'viem';
import type { VolunteerSnapshot } from '../client/controller.ts';
import { HearthError } from '../core/errors.ts';
import { installDevWallet } from './dev-wallet.ts';

/** Which WebGPU adapter the browsers use. */
export type AdapterChoice = 'auto' | 'swiftshader' | 'native';

export interface VolunteersOptions {
  /** The hub's base URL. */
  readonly hubUrl: string;
  /**
   * Other hubs on the same database, passed to the pages (`?hubs=`): a volunteer whose hub dies
   * reconnects to the next one.
   */
  readonly hubUrls?: readonly string[];
  readonly count: number;
  /** The page to open; default `<hub>/volunteer/`. */
  readonly pageUrl?: string;
  /** 'auto': the machine's GPU where /dev/dri has a render node, SwiftShader otherwise. */
  readonly adapter?: AdapterChoice;
  /** Default: $CHROMIUM_PATH, else /usr/bin/chromium. */
  readonly chromiumPath?: string;
  /** Page console output and errors, line by line. */
  readonly onLog?: (volunteer: number, line: string) => void;
  /** How long a page may take to load and accept consent. Default 60 s. */
  readonly startTimeoutMs?: number;
  /**
   * A development wallet per volunteer (src/node/dev-wallet.ts: real keys and signatures, the
   * chain at `rpcUrl`), installed in its browser context before the page loads; `signIn` uses it.
   */
  readonly wallets?: { readonly rpcUrl: string; readonly chainId: number; readonly keys: readonly Hex[] };
}

/** What one volunteer page reports: its controller's snapshot (client/controller.ts). */
export interface VolunteerReport {
  readonly index: number;
  /** The volunteer's id (SHA-256 of its public key), once its identity is loaded. */
  readonly volunteerId: string | null;
  readonly state: string;
  readonly stats: {
    readonly leases: number;
    readonly valid: number;
    readonly pending: number;
    readonly invalid: number;
    readonly inconclusive: number;
    readonly refused: number;
    readonly failed: number;
    readonly downloadedBytes: number;
    readonly peerBytes: number;
    /** Training checkpoints saved, shards resumed after a reload, and the steps those skipped. */
    readonly checkpoints: number;
    readonly resumed: number;
    readonly resumedSteps: number;
  } | null;
  readonly error: string | null;
}

export interface Volunteers {
  readonly count: number;
  /** Every page's state and counters. */
  report(): Promise<VolunteerReport[]>;
  /** Reloads one volunteer's page; a remembered yes resumes it without a click. */
  reload(index: number): Promise<void>;
  /** Closes one volunteer's page abruptly (as a closed tab would), for churn tests. */
  kill(index: number): Promise<void>;
  /**
   * Connects volunteer `index`'s development wallet in its page and signs in (the page's own
   * controller, as the wallet panel's button does); resolves to the bound address.
   */
  signIn(index: number): Promise<string>;
  close(): Promise<void>;
}

/** True when this machine has a GPU render node Chromium could use. */
export function hasRenderNode(): boolean {
  try {
    return existsSync('/dev/dri') && readdirSync('/dev/dri').some((n) => n.startsWith('renderD'));
  } catch {
    return false;
  }
}

/** Chromium's flags for a headless volunteer (WebGPU on; SwiftShader where asked). */
export function chromiumArgs(adapter: AdapterChoice): string[] {
  const swiftshader = adapter === 'swiftshader' || (adapter === 'auto' && !hasRenderNode());
  return [
    '--no-sandbox',
    '--disable-dev-shm-usage',
    '--enable-unsafe-webgpu',
    ...(swiftshader ? ['--use-webgpu-adapter=swiftshader'] : []),
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--allow-loopback-in-peer-connection',
    // Background tabs must not be throttled: every volunteer here is a background tab.
    '--disable-background-timer-throttling',
    '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows',
  ];
}

/**
 * Starts `count` volunteers and resolves once every page has said yes and started probing.
 *
 * @example
 * const v = await launchVolunteers({ hubUrl: 'http://127.0.0.1:8080', count: 2 });
 * console.log(await v.report());
 * await v.close();
 */
export async function launchVolunteers(opts: VolunteersOptions): Promise<Volunteers> {
  if (!Number.isSafeInteger(opts.count) || opts.count < 1 || opts.count > 64) {
    throw new HearthError('input/invalid', `count: expected 1 to 64 volunteers, got ${opts.count}.`);
  }
  const executablePath = opts.chromiumPath ?? process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new HearthError(
      'input/invalid',
      `No Chromium at ${executablePath}: install it (apt-get install chromium) or set CHROMIUM_PATH.`,
    );
  }
  const page = new URL(opts.pageUrl ?? new URL('/volunteer/', opts.hubUrl).toString());
  if (opts.hubUrls?.length) {
    page.searchParams.set('hub', opts.hubUrl);
    page.searchParams.set('hubs', opts.hubUrls.join(','));
  }
  const pageUrl = page.toString();
  const timeout = opts.startTimeoutMs ?? 60_000;
  const browser: Browser = await chromium.launch({
    executablePath,
    headless: true,
    args: chromiumArgs(opts.adapter ?? 'auto'),
  });
  const contexts: BrowserContext[] = [];
  const pages: (Page | null)[] = [];
  try {
    for (let i = 0; i < opts.count; i++) {
      const context = await browser.newContext();
      contexts.push(context);
      // WebRTC on loopback and LANs needs the page to be allowed to list interfaces, which
      // Chromium ties to a media permission; no media is ever captured.
      await context.grantPermissions(['microphone']);
      const key = opts.wallets?.keys[i];
      if (opts.wallets && key) {
        await installDevWallet(context, { key, rpcUrl: opts.wallets.rpcUrl, chainId: opts.wallets.chainId });
      }
      const page = await context.newPage();
      pages.push(page);
      page.on('console', (m) => opts.onLog?.(i, `${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => opts.onLog?.(i, `page error: ${e.message}`));
      const res = await page.goto(pageUrl, { timeout });
      if (!res?.ok()) {
        throw new HearthError(
          'net/refused',
          `${pageUrl} answered ${res?.status() ?? 'nothing'}: does the hub serve the built pages? ` +
            'Run `npm run build` in the checkout the hub runs from (or start it with --pages DIR).',
        );
      }
      await page.click('#consent-yes', { timeout });
    }
  } catch (e) {
    await browser.close();
    throw e;
  }
  return {
    count: opts.count,
    async report() {
      return Promise.all(
        pages.map(async (p, index): Promise<VolunteerReport> => {
          const closed = { index, volunteerId: null, state: 'closed', stats: null, error: null };
          if (!p || p.isClosed()) return closed;
          try {
            // The page's controller (client/controller.ts), not its DOM: the same snapshot the
            // page renders.
            const snap = await p.evaluate(
              () =>
                (window as unknown as { hearthVolunteer?: { snapshot: VolunteerSnapshot } }).hearthVolunteer
                  ?.snapshot ?? null,
            );
            if (!snap) return { ...closed, state: 'loading' };
            return {
              index,
              volunteerId: snap.volunteerId,
              state: snap.state,
              stats: snap.stats,
              error: snap.error,
            };
          } catch {
            return closed;
          }
        }),
      );
    },
    async reload(index) {
      await pages[index]?.reload({ timeout });
    },
    async kill(index) {
      const p = pages[index];
      if (!p) return;
      pages[index] = null;
      await contexts[index]?.close();
    },
    async signIn(index) {
      const p = pages[index];
      if (!p) throw new HearthError('input/invalid', `volunteer ${index} is gone.`);
      // A string, not a function: the page evaluates it as it is (no bundler helpers inside).
      await p.evaluate(`window.hearthVolunteer.connectWallet(window.ethereum, 'Hearth dev wallet')`);
      const w = (await p.evaluate('window.hearthVolunteer.snapshot.wallet')) as VolunteerSnapshot['wallet'];
      if (!w?.address) {
        throw new HearthError(
          'wallet/unavailable',
          `volunteer ${index} did not sign in: ${w?.message ?? 'no answer'}`,
        );
      }
      return w.address;
    },
    async close() {
      await browser.close();
    },
  };
}
