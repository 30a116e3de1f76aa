// The all-reduce protocol on a node: one inbox per node, attached when the node opens (it is
// registered through PeerNodeOptions.protocols), routing each pushed all-reduce message to the
// round it names and keeping messages of rounds this peer has not started yet, so a neighbour
// that starts a moment earlier loses nothing.
import { HearthError } from '../core/errors.ts';
import { isAllReduceMessage, peekRound } from '../protocol/allreduce.ts';
import type { RoundRun } from './allreduce-round.ts';
import type { ReceivedStream } from './link-receiver.ts';
import type { PeerNode, PeerProtocol } from './peer-node.ts';

/** Messages for rounds that have not started here are kept up to this many bytes in all. */
const EARLY_LIMIT_BYTES = 256 * 1024 * 1024;
/** …and this long. */
const EARLY_TTL_MS = 60_000;
/** Finished round ids remembered, so their late messages are dropped rather than kept. */
const FINISHED_MEMORY = 1024;

interface Early {
  readonly from: string;
  readonly bytes: Uint8Array;
  readonly at: number;
}

/** Routes a node's pushed all-reduce messages to the round they name. One per node. */
export class AllReduceInbox {
  readonly rounds = new Map<string, RoundRun>();
  readonly finished = new Set<string>();
  readonly #early = new Map<string, Early[]>();
  #earlyBytes = 0;

  take(s: ReceivedStream): void {
    if (s.kind !== 'blob' || !isAllReduceMessage(s.bytes)) return; // someone else's push
    const round = peekRound(s.bytes);
    if (round === undefined) {
      // Unreadable even to its round id: the sender is broken or hostile in whatever round it is in.
      const err = new HearthError(
        'net/protocol',
        `Peer ${s.from} sent an all-reduce message without a readable round id.`,
        {
          details: { peer: s.from, field: 'round' },
        },
      );
      for (const run of this.rounds.values()) run.reject(s.from, err);
      return;
    }
    const run = this.rounds.get(round);
    if (run) {
      run.take(s.from, s.bytes);
      return;
    }
    if (this.finished.has(round)) return; // a late frame of a round that is over
    // A neighbour can start a round a moment before this peer does; keep its first messages.
    this.#expire();
    if (this.#earlyBytes + s.bytes.byteLength > EARLY_LIMIT_BYTES) return;
    const list = this.#early.get(round) ?? [];
    list.push({ from: s.from, bytes: s.bytes, at: performance.now() });
    this.#early.set(round, list);
    this.#earlyBytes += s.bytes.byteLength;
  }

  takeEarly(round: string): Early[] {
    const list = this.#early.get(round) ?? [];
    this.#early.delete(round);
    for (const e of list) this.#earlyBytes -= e.bytes.byteLength;
    return list;
  }

  remember(round: string): void {
    this.finished.add(round);
    if (this.finished.size > FINISHED_MEMORY)
      this.finished.delete(this.finished.values().next().value as string);
  }

  #expire(): void {
    const old = performance.now() - EARLY_TTL_MS;
    for (const [round, list] of this.#early) {
      if (list[0] && list[0].at < old) this.takeEarly(round);
    }
  }
}

const inboxes = new WeakMap<PeerNode, AllReduceInbox>();

/**
 * The all-reduce protocol: pass it to {@link PeerNode.open} so that the node routes all-reduce
 * messages from the moment it opens; `allReduceMean` refuses a node opened without it.
 *
 * @example
 * const node = await PeerNode.open({ host, port, protocols: [allReduceProtocol] });
 * const { mean } = await allReduceMean(node, { round, group, tensor });
 */
export const allReduceProtocol: PeerProtocol = {
  name: 'all-reduce',
  attach(node) {
    if (inboxes.has(node)) return;
    const inbox = new AllReduceInbox();
    inboxes.set(node, inbox);
    node.addPushListener((s) => inbox.take(s));
  },
};

/** The node's all-reduce inbox; 'input/invalid' when it was opened without {@link allReduceProtocol}. */
export function inboxOf(node: PeerNode): AllReduceInbox {
  const inbox = inboxes.get(node);
  if (!inbox) {
    throw new HearthError(
      'input/invalid',
      'allReduceMean: this peer node was opened without the all-reduce protocol; open it with ' +
        '`PeerNode.open({ …, protocols: [allReduceProtocol] })` so that no early message is lost.',
    );
  }
  return inbox;
}
