// Which leases a reload should resume, and how a noted one is read back. A `train` shard runs for
// minutes and checkpoints its inner loop in the tab's IndexedDB (worker/runners/train.ts); the
// volunteer notes its lease before running it (store/unfinished.ts in a tab), and after a reload
// runs it again — from the checkpoint — and sends the result late: the hub takes a result from a
// volunteer whose lease ended by a disconnect while the shard is still open (hub/leases.ts).
import { HearthError } from '../core/errors.ts';
import { type LeaseMessage, parseHubMessage } from '../protocol/control.ts';

/** Where a volunteer notes its long leases (`UnfinishedLeases` on IndexedDB in a tab). */
export interface UnfinishedStore {
  remember(shard: string, lease: unknown, hub: string): Promise<void>;
  list(): Promise<readonly { readonly shard: string; readonly lease: unknown; readonly hub: string }[]>;
  /** Forgets the lease and its shard's checkpoint. */
  forget(shard: string): Promise<void>;
}

/** Leases worth noting: shards that checkpoint (training with inner steps). */
export function resumable(lease: LeaseMessage): boolean {
  const work = lease.work as { kind?: unknown; steps?: unknown };
  return work.kind === 'train' && typeof work.steps === 'number' && work.steps > 0;
}

/** A lease as noted: the hub's message as JSON text, checked again when read back. */
export const noteOf = (lease: LeaseMessage): string => JSON.stringify(lease);

/** The lease a note holds; 'input/invalid' when it is not one (an old or damaged entry). */
export function leaseOfNote(note: unknown): LeaseMessage {
  const m = parseHubMessage(note);
  if (m.type !== 'lease') {
    throw new HearthError(
      'input/invalid',
      `an unfinished-lease note holds a '${m.type}' message, not a lease.`,
    );
  }
  return m;
}
