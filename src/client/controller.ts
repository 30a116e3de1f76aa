// The volunteer runtime without a page: consent → compute worker → identity → volunteer, and one
// snapshot of it all. The volunteer page renders the snapshot, the coming <hearth-widget> will
// too, and headless volunteers (`hearth volunteer`) read it from the page
// (`window.hearthVolunteer.snapshot`) — the page's DOM is no one's API.
//
// It touches no DOM and no browser global: the platform parts (the compute worker, IndexedDB, the
// remembered yes) come in as options, so the same controller runs in a page, a widget and a Node
// test. Nothing starts before `yes()` (DESIGN.md invariant 1): `startWorker` and `open` are called
// after it, never before; `resume()` starts only where a yes is remembered.
import { HearthError, isHearthError } from '../core/errors.ts';
import type { CapabilityReport } from '../worker/probe.ts';
import type { BlobStore } from './blobs.ts';
import type { Signer } from './hub-session.ts';
import {
  type ResultQueue,
  type ShardRunner,
  Volunteer,
  type VolunteerEvent,
  type VolunteerOptions,
  type VolunteerState,
  type VolunteerStats,
} from './volunteer.ts';

/** Where the controller is: asking for consent, declined, probing the GPU, the volunteer's own states, or failed. */
export type ControllerState = 'asking' | 'declined' | 'probing' | VolunteerState | 'failed';

/** Everything a page, a widget or a headless volunteer shows of one volunteer. */
export interface VolunteerSnapshot {
  readonly hub: string;
  readonly state: ControllerState;
  /** The volunteer's id (SHA-256 of its public key), once its identity is loaded. */
  readonly volunteerId: string | null;
  /** The GPU adapter, once probed. */
  readonly device: string | null;
  /** What runs now, or what happened last, as a sentence. */
  readonly current: string | null;
  /** The running shard's progress in [0, 1]; null between shards. */
  readonly progress: number | null;
  readonly stats: VolunteerStats | null;
  /** Why it failed or stopped, for the volunteer to read. */
  readonly error: string | null;
}

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
}

export interface ControllerOptions {
  readonly hubUrl: string;
  readonly consent: ConsentRecord;
  /** Starts the compute worker; called only after a yes. */
  readonly startWorker: () => ControllerWorker;
  /** Opens identity, outbox and blob cache; called only after a yes. */
  readonly open: () => Promise<VolunteerParts>;
  /** Passed to the Volunteer as they are (p2p settings, socket, timings). */
  readonly volunteer?: Partial<
    Omit<VolunteerOptions, 'hubUrl' | 'identity' | 'capabilities' | 'runner' | 'outbox' | 'blobs' | 'onEvent'>
  >;
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
      return `${e.kind} shard ${e.shard}`;
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

  constructor(opts: ControllerOptions) {
    this.#opts = opts;
    this.#snapshot = {
      hub: opts.hubUrl,
      state: 'asking',
      volunteerId: null,
      device: null,
      current: null,
      progress: null,
      stats: null,
      error: null,
    };
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

  /** Stops work, forgets the yes and terminates the worker. */
  async stop(): Promise<void> {
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
    const worker = this.#opts.startWorker();
    this.#worker = worker;
    const caps = await worker.probe();
    this.#set({ device: caps.adapter.summary });
    const parts = await this.#opts.open();
    this.#set({ volunteerId: parts.identity.id });
    if (!this.#opts.consent.get()) return; // stopped while starting
    const volunteer: Volunteer = new Volunteer({
      ...this.#opts.volunteer,
      hubUrl: this.#opts.hubUrl,
      identity: parts.identity,
      capabilities: { maxBufferBytes: caps.limits.maxBufferSize, features: featureNames(caps) },
      runner: worker,
      outbox: parts.outbox,
      blobs: parts.blobs,
      onEvent: (e) => this.#onEvent(e, volunteer),
    });
    this.#volunteer = volunteer;
    this.#set({ stats: { ...volunteer.stats } });
    volunteer.start();
  }

  #onEvent(e: VolunteerEvent, v: Volunteer): void {
    const current = describeEvent(e);
    this.#set({
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
