// The volunteer runtime without a page: consent → compute worker → identity → volunteer, and one
// snapshot of it all. The volunteer page renders the snapshot, so does <hearth-widget>'s frame,
// and headless volunteers (`hearth volunteer`) read it from the page
// (`window.hearthVolunteer.snapshot`) — the page's DOM is no one's API.
//
// It touches no DOM and no browser global: the platform parts (the compute worker, IndexedDB, the
// remembered yes) come in as options, so the same controller runs in a page, a widget and a Node
// test. Nothing starts before `yes()` (DESIGN.md invariant 1): `startWorker` and `open` are called
// after it, never before; `resume()` starts only where a yes is remembered.
import { HearthError, isHearthError } from '../core/errors.ts';
import type { Eip1193Provider } from '../credits/eip1193.ts';
import { formatCredit } from '../protocol/credit.ts';
import type { CapabilityReport } from '../worker/probe.ts';
import type { BlobStore } from './blobs.ts';
import { clampDuty, DUTY_CYCLE } from './duty-cycle.ts';
import type { Signer } from './hub-session.ts';
import type { UnfinishedStore } from './unfinished.ts';
import {
  type ResultQueue,
  type ShardRunner,
  Volunteer,
  type VolunteerEvent,
  type VolunteerOptions,
  type VolunteerState,
  type VolunteerStats,
} from './volunteer.ts';
import type { WalletLink } from './wallet-link.ts';

/** Where the controller is: asking for consent, declined, probing the GPU, the volunteer's own states, or failed. */
export type ControllerState = 'asking' | 'declined' | 'probing' | VolunteerState | 'failed';

/** What the volunteer chose on this device, kept across reloads. */
export interface VolunteerSettings {
  /** The GPU cap: share of wall time spent on shards, 0.1 to 1 (default 0.5). */
  readonly dutyCycle: number;
  /** Paused by the volunteer (the pause button). */
  readonly paused: boolean;
  /** Keep working while the tab is hidden (default no: a hidden tab pauses). */
  readonly background: boolean;
}

export const DEFAULT_SETTINGS: VolunteerSettings = {
  dutyCycle: DUTY_CYCLE.default,
  paused: false,
  background: false,
};

/** Below this battery level, when not charging, work pauses by itself. */
export const BATTERY_PAUSE_LEVEL = 0.3;

/** The device's state that decides comfort pauses: the tab hidden, the battery. */
export interface Comfort {
  readonly hidden: boolean;
  /** Null where the Battery API is absent. */
  readonly battery: { readonly charging: boolean; readonly level: number } | null;
}

/** Where comfort comes from: `document.visibilityState` and `navigator.getBattery()` in a page. */
export interface ComfortSource {
  current(): Comfort;
  /** Calls `listener` on each change; returns how to stop. */
  subscribe(listener: () => void): () => void;
}

/** Why work is paused: the volunteer pressed pause, the tab is hidden, the battery is low. */
export type PauseReason = 'you' | 'hidden' | 'battery';

/** A finished shard: when (epoch ms) and how long the GPU worked on it (the worker's own timing). */
export interface FinishedShard {
  readonly at: number;
  readonly ms: number;
}

/** How far back `finished` and `gpuBusy` look. */
export const HISTORY_MS = 10 * 60_000;
/** The window of `gpuBusy`. */
export const BUSY_WINDOW_MS = 60_000;

/**
 * The share of the last `windowMs` (or of the time since `since`, when shorter) that the GPU
 * spent on shards, from the shards' own timings.
 *
 * @example
 * gpuBusy([{ at: 10_000, ms: 3000 }], 10_000, 0); // 0.3
 */
export function gpuBusy(
  finished: readonly FinishedShard[],
  now: number,
  since: number,
  windowMs = BUSY_WINDOW_MS,
) {
  const start = Math.max(since, now - windowMs);
  if (now <= start) return 0;
  let busy = 0;
  for (const f of finished) {
    // Each shard's busy time is [at - ms, at]: count the part inside the window.
    busy += Math.max(0, Math.min(f.at, now) - Math.max(f.at - f.ms, start));
  }
  return Math.min(1, busy / (now - start));
}

/** Everything a page, a widget or a headless volunteer shows of one volunteer. */
export interface VolunteerSnapshot {
  readonly hub: string;
  readonly state: ControllerState;
  /** The volunteer's id (SHA-256 of its public key), once its identity is loaded. */
  readonly volunteerId: string | null;
  /** The GPU adapter, once probed. */
  readonly device: string | null;
  /**
   * Whether this browser has WebGPU, once probed: without it ONNX shards run on WebAssembly and
   * the hub leases no WGSL shards here.
   */
  readonly webgpu: boolean | null;
  /** What runs now, or what happened last, as a sentence. */
  readonly current: string | null;
  /** The running shard's progress in [0, 1]; null between shards. */
  readonly progress: number | null;
  readonly stats: VolunteerStats | null;
  /** Why it failed or stopped, for the volunteer to read. */
  readonly error: string | null;
  readonly settings: VolunteerSettings;
  /** Why work is paused now; null while it is not. */
  readonly pausedBy: PauseReason | null;
  /** Share of the last minute the GPU spent on shards (0 to 1); null before any work. */
  readonly gpuBusy: number | null;
  /** Shards finished here in the last ten minutes, oldest first. */
  readonly finished: readonly FinishedShard[];
  /** Credit as the hub last pushed it, in credits (exact decimals); null until it does. */
  readonly credit: { readonly granted: string; readonly pending: string } | null;
  /** The connected wallet and what its address earned and claimed; null before any. */
  readonly wallet: WalletSnapshot | null;
}

/** What the page shows of the volunteer's wallet; amounts in credits (exact decimals). */
export interface WalletSnapshot {
  /** The address this volunteer is bound to (by this page's sign-in, or the hub's word). */
  readonly address: string | null;
  /** The wallet's name, as it announced itself. */
  readonly name: string | null;
  /** Granted to the address in total, pending for it, minted to it, claimable now, its balance. */
  readonly earned: string | null;
  readonly pending: string | null;
  readonly claimed: string | null;
  readonly claimable: string | null;
  readonly balance: string | null;
  /** What the wallet is doing now. */
  readonly busy: 'signing-in' | 'reading' | 'claiming' | null;
  /** The last outcome or failure, as a sentence. */
  readonly message: string | null;
}

const NO_WALLET: WalletSnapshot = {
  address: null,
  name: null,
  earned: null,
  pending: null,
  claimed: null,
  claimable: null,
  balance: null,
  busy: null,
  message: null,
};

/** The remembered yes (per hub): localStorage in a page. */
export interface ConsentRecord {
  get(): boolean;
  set(yes: boolean): void;
}

/** The compute worker as the controller drives it: a shard runner that probes and terminates. */
export interface ControllerWorker extends ShardRunner {
  probe(): Promise<CapabilityReport>;
  terminate(): void | Promise<void>;
}

/** The volunteer's durable parts, opened after the yes: identity, outbox, blob cache. */
export interface VolunteerParts {
  readonly identity: Signer;
  readonly outbox: ResultQueue;
  readonly blobs: BlobStore;
  /** Training leases in progress, resumed after a reload (store/unfinished.ts). */
  readonly unfinished?: UnfinishedStore;
}

export interface ControllerOptions {
  readonly hubUrl: string;
  readonly consent: ConsentRecord;
  /** Starts the compute worker (a page may load its code only now); called only after a yes. */
  readonly startWorker: () => ControllerWorker | Promise<ControllerWorker>;
  /** Opens identity, outbox and blob cache; called only after a yes. */
  readonly open: () => Promise<VolunteerParts>;
  /** Passed to the Volunteer as they are (p2p settings, socket, timings). */
  readonly volunteer?: Partial<
    Omit<VolunteerOptions, 'hubUrl' | 'identity' | 'capabilities' | 'runner' | 'outbox' | 'blobs' | 'onEvent'>
  >;
  /** The volunteer's choices, kept on the device (localStorage in a page); default in memory. */
  readonly settings?: { get(): Partial<VolunteerSettings> | null; set(s: VolunteerSettings): void };
  /** Tab visibility and battery; default: always visible, no battery. */
  readonly comfort?: ComfortSource;
  /** Clock, ms since the epoch (default Date.now). */
  readonly now?: () => number;
}

/** The features a volunteer reports on hello, by their WebGPU names. */
export function featureNames(caps: CapabilityReport): string[] {
  const f = caps.features;
  return [
    ...(f.shaderF16 ? ['shader-f16'] : []),
    ...(f.subgroups ? ['subgroups'] : []),
    ...(f.timestampQuery ? ['timestamp-query'] : []),
  ];
}

/** One event as the sentence a volunteer reads; undefined when it changes no sentence. */
export function describeEvent(e: VolunteerEvent): string | undefined {
  switch (e.type) {
    case 'lease':
      return `${e.kind} shard ${e.shard}${e.credit === undefined ? '' : ` · pays ${formatCredit(e.credit)} credits once validated`}`;
    case 'result':
      return `${e.shard}: ${e.outcome} (${Math.round(e.ms)} ms on ${e.backend})${e.reason ? ` — ${e.reason}` : ''}`;
    case 'disconnected':
      return `${e.error.message} Retrying in ${Math.round(e.retryInMs / 1000)} s.`;
    case 'shard-failed':
      return (
        `${e.shard} failed here: ${e.error.message}` +
        (e.reported === 'released'
          ? ' (passed on to another volunteer)'
          : e.reported
            ? ' (reported to the researcher)'
            : '')
      );
    case 'replaced':
      // The same identity works in another tab or window; this one stopped.
      return 'Working in another tab or window of this browser: this one has stopped.';
    default:
      return undefined;
  }
}

/**
 * One volunteer, from the consent question to its earnings.
 *
 * @example
 * const c = new VolunteerController({ hubUrl, consent, startWorker, open });
 * c.subscribe((s) => render(s));
 * void c.resume(); // starts only if this device said yes before
 * yesButton.onclick = () => c.yes();
 */
export class VolunteerController {
  readonly #opts: ControllerOptions;
  readonly #listeners = new Set<(s: VolunteerSnapshot) => void>();
  #snapshot: VolunteerSnapshot;
  #worker: ControllerWorker | undefined;
  #volunteer: Volunteer | undefined;
  #starting: Promise<void> | undefined;
  #finished: FinishedShard[] = [];
  #workingSince = 0;
  #stopComfort: (() => void) | undefined;
  #wallet: WalletLink | undefined;
  readonly #now: () => number;

  constructor(opts: ControllerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    const saved = opts.settings?.get() ?? {};
    const settings: VolunteerSettings = {
      dutyCycle: clampDuty(saved.dutyCycle ?? DEFAULT_SETTINGS.dutyCycle),
      paused: saved.paused === true,
      background: saved.background === true,
    };
    this.#snapshot = {
      hub: opts.hubUrl,
      state: 'asking',
      volunteerId: null,
      device: null,
      webgpu: null,
      current: null,
      progress: null,
      stats: null,
      error: null,
      settings,
      pausedBy: null,
      gpuBusy: null,
      finished: [],
      credit: null,
      wallet: null,
    };
  }

  /**
   * Connects a wallet (an EIP-1193 provider the volunteer chose, e.g. from `discoverWallets`)
   * and binds this volunteer to its account by Sign-In with Ethereum; then reads what the address
   * earned and claimed. Failures land in `snapshot.wallet.message`, never thrown at the page.
   */
  async connectWallet(provider: Eip1193Provider, name: string): Promise<void> {
    const v = this.#volunteer;
    if (!v) return this.#setWallet({ message: 'Say yes first: a wallet is bound to a working volunteer.' });
    await this.#walletStep('signing-in', async () => {
      const { WalletLink } = await import('./wallet-link.ts');
      const link = new WalletLink(this.#opts.hubUrl, provider);
      this.#wallet = link;
      this.#setWallet({ name });
      const address = await link.signIn((sign) => v.signIn(sign));
      this.#setWallet({ address, message: `Signed in: credit goes to ${address}.` });
    });
    await this.refreshWallet();
  }

  /** Reads the wallet's figures again (earned from the hub; claimed and balance from the chain). */
  async refreshWallet(): Promise<void> {
    const link = this.#wallet;
    if (!link?.address) return;
    await this.#walletStep('reading', async () => {
      const r = await link.read();
      this.#setWallet({
        address: r.address,
        earned: formatCredit(r.earned),
        pending: formatCredit(r.pending),
        claimed: formatCredit(r.claimed),
        claimable: formatCredit(r.claimable),
        balance: formatCredit(r.balance),
      });
    });
  }

  /** Claims what is claimable (relayed by the hub when it relays), then reads the figures again. */
  async claimTokens(): Promise<void> {
    const link = this.#wallet;
    if (!link?.address) return this.#setWallet({ message: 'Sign in with a wallet first.' });
    await this.#walletStep('claiming', async () => {
      const tx = await link.claim();
      this.#setWallet({ message: `Claimed (transaction ${tx.slice(0, 10)}…).` });
    });
    await this.refreshWallet();
  }

  async #walletStep(busy: 'signing-in' | 'reading' | 'claiming', f: () => Promise<void>): Promise<void> {
    this.#setWallet({ busy });
    try {
      await f();
      this.#setWallet({ busy: null });
    } catch (e) {
      this.#setWallet({
        busy: null,
        message: isHearthError(e) ? e.message : `The wallet failed: ${String(e)}`,
      });
    }
  }

  #setWallet(patch: Partial<WalletSnapshot>): void {
    this.#set({ wallet: { ...(this.#snapshot.wallet ?? NO_WALLET), ...patch } });
  }

  get snapshot(): VolunteerSnapshot {
    return this.#snapshot;
  }

  /** Calls `listener` with every new snapshot (not the current one); returns how to stop. */
  subscribe(listener: (s: VolunteerSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** After a reload: starts at once if this device said yes to this hub before. */
  resume(): Promise<void> {
    return this.#opts.consent.get() ? this.#start() : Promise.resolve();
  }

  /** The volunteer said yes: remembered, then the worker starts. */
  yes(): Promise<void> {
    this.#opts.consent.set(true);
    return this.#start();
  }

  /** The volunteer said no: nothing runs. */
  no(): void {
    if (this.#snapshot.state !== 'asking') return;
    this.#set({ state: 'declined', error: 'Nothing will run. Reload the page if you change your mind.' });
  }

  /** Sets the GPU cap (0.1 to 1), kept on the device; a running volunteer follows at once. */
  setDutyCycle(duty: number): void {
    this.#saveSettings({ dutyCycle: clampDuty(duty) });
    this.#volunteer?.setDutyCycle(this.#snapshot.settings.dutyCycle);
  }

  /** The volunteer pauses work (kept across reloads until resume). */
  pause(): void {
    this.#saveSettings({ paused: true });
    this.#applyPause();
  }

  /** The volunteer resumes work after `pause()` (comfort may still hold it: a hidden tab, a low battery). */
  unpause(): void {
    this.#saveSettings({ paused: false });
    this.#applyPause();
  }

  /** Whether a hidden tab keeps working. */
  setBackground(background: boolean): void {
    this.#saveSettings({ background });
    this.#applyPause();
  }

  #saveSettings(change: Partial<VolunteerSettings>): void {
    const settings = { ...this.#snapshot.settings, ...change };
    this.#opts.settings?.set(settings);
    this.#set({ settings });
  }

  /** Why work should be paused now, from the settings and the device's comfort. */
  #pauseReason(): PauseReason | null {
    const s = this.#snapshot.settings;
    if (s.paused) return 'you';
    const c = this.#opts.comfort?.current();
    if (c?.hidden && !s.background) return 'hidden';
    if (c?.battery && !c.battery.charging && c.battery.level < BATTERY_PAUSE_LEVEL) return 'battery';
    return null;
  }

  #applyPause(): void {
    const by = this.#pauseReason();
    const v = this.#volunteer;
    if (v) {
      if (by) void v.pause();
      else v.resume();
    }
    if (by !== this.#snapshot.pausedBy) this.#set({ pausedBy: by });
  }

  /** Stops work, forgets the yes and terminates the worker. */
  async stop(): Promise<void> {
    this.#stopComfort?.();
    this.#stopComfort = undefined;
    this.#opts.consent.set(false);
    await this.#starting?.catch(() => {});
    await this.#volunteer?.stop();
    await this.#worker?.terminate();
    this.#volunteer = undefined;
    this.#worker = undefined;
    this.#set({ state: 'stopped', progress: null });
  }

  #set(change: Partial<VolunteerSnapshot>): void {
    this.#snapshot = { ...this.#snapshot, ...change };
    for (const l of this.#listeners) {
      try {
        l(this.#snapshot);
      } catch {
        // A listener that throws must not stop the volunteer.
      }
    }
  }

  #start(): Promise<void> {
    if (this.#starting) return this.#starting;
    this.#starting = this.#run().catch((e: unknown) => {
      const error = isHearthError(e)
        ? e
        : new HearthError('gpu/unavailable', String((e as Error)?.message ?? e));
      this.#set({ state: 'failed', error: error.message });
    });
    return this.#starting;
  }

  async #run(): Promise<void> {
    this.#set({ state: 'probing', error: null });
    const worker = await this.#opts.startWorker();
    this.#worker = worker;
    const caps = await worker.probe();
    this.#set({ device: caps.adapter.summary, webgpu: caps.limits.maxBufferSize > 0 });
    const parts = await this.#opts.open();
    this.#set({ volunteerId: parts.identity.id });
    if (!this.#opts.consent.get()) return; // stopped while starting
    const pausedBy = this.#pauseReason();
    const volunteer: Volunteer = new Volunteer({
      dutyCycle: this.#snapshot.settings.dutyCycle,
      paused: pausedBy !== null,
      ...this.#opts.volunteer,
      hubUrl: this.#opts.hubUrl,
      identity: parts.identity,
      capabilities: { maxBufferBytes: caps.limits.maxBufferSize, features: featureNames(caps) },
      runner: worker,
      outbox: parts.outbox,
      blobs: parts.blobs,
      ...(parts.unfinished ? { unfinished: parts.unfinished } : {}),
      onEvent: (e) => this.#onEvent(e, volunteer),
    });
    this.#volunteer = volunteer;
    this.#workingSince = this.#now();
    this.#set({ stats: { ...volunteer.stats }, pausedBy, gpuBusy: 0 });
    this.#stopComfort = this.#opts.comfort?.subscribe(() => this.#applyPause());
    volunteer.start();
  }

  #onEvent(e: VolunteerEvent, v: Volunteer): void {
    const current = describeEvent(e);
    const now = this.#now();
    if (e.type === 'result') {
      this.#finished.push({ at: now, ms: e.ms });
      while ((this.#finished[0]?.at ?? now) < now - HISTORY_MS) this.#finished.shift();
    }
    this.#set({
      ...(e.type === 'result'
        ? {
            finished: [...this.#finished],
            gpuBusy: gpuBusy(this.#finished, now, this.#workingSince),
          }
        : {}),
      ...(e.type === 'credit'
        ? { credit: { granted: formatCredit(e.granted), pending: formatCredit(e.pending) } }
        : {}),
      // The hub says which address this volunteer is bound to (a sign-in on another visit).
      ...(e.type === 'credit' && e.address && this.#snapshot.wallet?.address !== e.address
        ? { wallet: { ...(this.#snapshot.wallet ?? NO_WALLET), address: e.address } }
        : {}),
      ...(e.type === 'state' ? { state: e.state } : {}),
      ...(current === undefined ? {} : { current }),
      ...(e.type === 'lease' ? { progress: 0 } : {}),
      ...(e.type === 'progress'
        ? { progress: e.progress.total ? e.progress.done / e.progress.total : 0 }
        : {}),
      ...(e.type === 'result' || e.type === 'shard-failed' ? { progress: null } : {}),
      stats: { ...v.stats },
    });
  }
}
