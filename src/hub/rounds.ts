// Averaging through the hub: the fallback for an all-reduce round whose ring cannot finish (too
// few members reachable, every dial failed, the ring ran out of time). Each member that falls back
// gets a ticket on the control plane (`allreduce-fallback`), uploads its tensor's raw f32 bytes
// with it, and waits for the mean. The hub averages the members' tensors once all have arrived or
// the round's deadline passed, in group order and in f32 — the same walk for every member, so
// every member gets the same bits (the hub sends one buffer to all of them anyway).
//
// Everything is bounded (DESIGN.md invariant 7): the tensor size, the number of rounds held at
// once, the bytes held in all; a round's tensors are freed as soon as its mean is made, and the
// mean itself after a TTL.
import { randomBytes } from 'node:crypto';
import { HearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';

export interface HubRoundsOptions {
  /** Largest tensor one member may upload, in bytes (default 64 MiB). */
  readonly maxTensorBytes?: number;
  /** Rounds held at once, finished ones included until their TTL (default 64). */
  readonly maxRounds?: number;
  /** Rounds one volunteer may have started that are still being averaged (default 4). */
  readonly maxRoundsPerVolunteer?: number;
  /** Uploaded bytes held at once over all rounds (default 512 MiB). */
  readonly maxTotalBytes?: number;
  /** From a round's first fallback request to the mean of what has arrived (default 30 s). */
  readonly roundTimeoutMs?: number;
  /** How long a finished round's mean is kept for late readers (default 60 s). */
  readonly resultTtlMs?: number;
  /** Clock, ms since the epoch (default Date.now). */
  readonly now?: () => number;
  /**
   * Where the members' tensors meet when several hubs share one database (pg-rounds.ts):
   * members connected to different hubs then get one mean. Without it, a round is this hub's.
   */
  readonly exchange?: RoundExchange;
}

/** A member's tensor as the hubs share it. */
export interface SharedContribution {
  readonly peer: string;
  readonly volunteer: string;
  readonly sha256: string;
  readonly data: Float32Array;
}

/**
 * A round's tensors and mean in a place every hub on one database sees (PgRounds). The first hub
 * to settle a round stores its mean; every other gets those bits.
 */
export interface RoundExchange {
  /** Checks (and records) that a round has this group and size everywhere; throws as `join`. */
  join(round: string, group: readonly string[], elements: number): void;
  /** Puts a checked tensor where every hub sees it; resolves once it is there. */
  contribute(round: string, c: SharedContribution): Promise<void>;
  /** Whether every member of the round's group has contributed, on any hub. */
  complete(round: string, group: readonly string[]): boolean;
  /**
   * The round's mean: the stored one, or (first hub to ask) `average` of what was contributed,
   * stored. Undefined when nobody contributed.
   */
  settle(
    round: string,
    group: readonly string[],
    average: (members: readonly SharedContribution[]) => Float32Array,
  ):
    | { readonly contributions: readonly Omit<SharedContribution, 'data'>[]; readonly mean: Float32Array }
    | undefined;
  /** Hears that another hub settled a round. */
  onSettled(fn: (round: string) => void): void;
}

/**
 * The hub's mean of `members` (in group order, all the same length): an f32 walk in that order —
 * each + rounds to f32 (a Float32Array store), then one division — so every hub that averages the
 * same tensors gets the same bits.
 */
export function averageInOrder(members: readonly { readonly data: Float32Array }[]): Float32Array {
  const head = members[0];
  if (!head) return new Float32Array(0);
  const sum = Float32Array.from(head.data);
  for (const m of members.slice(1)) {
    const x = m.data;
    for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (x[i] as number);
  }
  for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) / members.length;
  return sum;
}

/** A mean made by the hub. */
export interface HubMean {
  readonly round: string;
  readonly group: readonly string[];
  /** Members whose tensors are in the mean, in group order. */
  readonly contributors: readonly string[];
  /** Each contributor's volunteer (from its authenticated connection) and its tensor's SHA-256. */
  readonly contributions: readonly {
    readonly peer: string;
    readonly volunteer: string;
    readonly sha256: string;
  }[];
  readonly mean: Float32Array;
  /** SHA-256 of the mean's bytes. */
  readonly sha256: string;
}

interface Member {
  readonly peer: string;
  readonly volunteer: string;
  readonly ticket: string;
  readonly sha256: string;
  data?: Float32Array;
}

interface Round {
  readonly id: string;
  readonly group: readonly string[];
  readonly elements: number;
  readonly deadline: number;
  /** The volunteer whose request made the round (counted against its open rounds). */
  readonly creator: string;
  readonly members: Map<string, Member>;
  readonly timer: ReturnType<typeof setTimeout>;
  /** Settles with the mean (or why there is none); members wait on it. */
  readonly result: Promise<HubMean>;
  readonly settle: { resolve(m: HubMean): void; reject(e: unknown): void };
  /** Set once averaging started; the round is then deleted after the TTL. */
  done?: Promise<void>;
  expiry?: ReturnType<typeof setTimeout>;
}

/** A HearthError with the HTTP status the hub's routes answer it with. */
const err = (code: 'input/invalid' | 'net/refused', status: number, message: string, details = {}) =>
  new HearthError(code, message, { details: { status, ...details } });

/**
 * The hub's fallback rounds, in memory.
 *
 * @example
 * const rounds = new HubRounds({ roundTimeoutMs: 10_000 });
 * const { ticket } = rounds.join({ round, group, elements, sha256, peer, volunteer });
 * await rounds.upload(round, ticket, bytes);
 * const { mean, contributors } = await rounds.mean(round, ticket);
 */
export class HubRounds {
  readonly #rounds = new Map<string, Round>();
  readonly #maxTensorBytes: number;
  readonly #maxRounds: number;
  readonly #maxPerVolunteer: number;
  readonly #maxTotalBytes: number;
  readonly #timeoutMs: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #exchange: RoundExchange | undefined;
  #heldBytes = 0;
  #closed = false;

  constructor(opts: HubRoundsOptions = {}) {
    this.#maxTensorBytes = opts.maxTensorBytes ?? 64 * 2 ** 20;
    this.#maxRounds = opts.maxRounds ?? 64;
    this.#maxPerVolunteer = opts.maxRoundsPerVolunteer ?? 4;
    this.#maxTotalBytes = opts.maxTotalBytes ?? 512 * 2 ** 20;
    this.#timeoutMs = opts.roundTimeoutMs ?? 30_000;
    this.#ttlMs = opts.resultTtlMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
    this.#exchange = opts.exchange;
    // Another hub averaged a round some of whose members wait here: their mean is stored.
    this.#exchange?.onSettled((id) => {
      const r = this.#closed ? undefined : this.#rounds.get(id);
      if (r && !r.done) this.#finish(r);
    });
  }

  /** Rounds held right now. */
  get size(): number {
    return this.#rounds.size;
  }

  /** Uploaded bytes held right now. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /**
   * Admits `peer` (the asking connection's issued peer id) to the round, making the round on the
   * first request. Later requests must name the same group and element count. Asking again
   * before uploading returns the same ticket. Throws 'input/invalid' (a mismatch, not a member,
   * too large) or 'net/refused' (too many rounds, the round is over), details.status the HTTP
   * status that says so.
   */
  join(req: {
    readonly round: string;
    readonly group: readonly string[];
    readonly elements: number;
    readonly sha256: string;
    readonly peer: string;
    readonly volunteer: string;
  }): { readonly ticket: string; readonly deadline: number } {
    if (this.#closed) throw err('net/refused', 503, 'The hub is shutting down.');
    if (!req.group.includes(req.peer)) {
      throw err(
        'input/invalid',
        403,
        `message.group: this connection's peer id ${req.peer} is not in round ${req.round}'s group.`,
        {
          path: 'message.group',
        },
      );
    }
    if (req.elements * 4 > this.#maxTensorBytes) {
      throw err(
        'input/invalid',
        413,
        `round ${req.round}: ${req.elements * 4} bytes is over the hub's limit of ${this.#maxTensorBytes} per tensor.`,
        { path: 'message.elements', reason: 'too-large' },
      );
    }
    let r = this.#rounds.get(req.round);
    if (!r) {
      if (this.#rounds.size >= this.#maxRounds) {
        throw err('net/refused', 503, `The hub holds ${this.#maxRounds} rounds already; try again later.`);
      }
      let mine = 0;
      for (const x of this.#rounds.values()) if (x.creator === req.volunteer && !x.done) mine++;
      if (mine >= this.#maxPerVolunteer) {
        throw err(
          'net/refused',
          429,
          `This volunteer has ${mine} rounds being averaged already (the limit is ${this.#maxPerVolunteer}).`,
        );
      }
      const id = req.round;
      this.#exchange?.join(id, req.group, req.elements);
      const deadline = this.#now() + this.#timeoutMs;
      let settle!: Round['settle'];
      const result = new Promise<HubMean>((resolve, reject) => {
        settle = { resolve, reject };
      });
      // Nobody may be waiting (every member failed to upload): not an unhandled rejection.
      result.catch(() => {});
      const made: Round = {
        id,
        group: [...req.group],
        elements: req.elements,
        deadline,
        creator: req.volunteer,
        members: new Map(),
        timer: setTimeout(() => this.#finish(made), this.#timeoutMs),
        result,
        settle,
      };
      made.timer.unref?.();
      this.#rounds.set(id, made);
      r = made;
    } else {
      if (r.done) throw err('net/refused', 409, `round ${req.round} is already averaged; run a new round.`);
      if (r.group.length !== req.group.length || r.group.some((p, i) => p !== req.group[i])) {
        throw err(
          'input/invalid',
          409,
          `round ${req.round}: another member named another group (or order).`,
          {
            path: 'message.group',
          },
        );
      }
      if (r.elements !== req.elements) {
        throw err(
          'input/invalid',
          409,
          `round ${req.round}: tensors have ${r.elements} elements, not ${req.elements}.`,
          {
            path: 'message.elements',
          },
        );
      }
    }
    const had = r.members.get(req.peer);
    if (had) {
      if (had.volunteer !== req.volunteer || had.sha256 !== req.sha256 || had.data) {
        throw err('input/invalid', 409, `round ${req.round}: ${req.peer} has already joined.`, {
          path: 'message.sha256',
        });
      }
      return { ticket: had.ticket, deadline: r.deadline };
    }
    const ticket = randomBytes(32).toString('hex');
    r.members.set(req.peer, { peer: req.peer, volunteer: req.volunteer, ticket, sha256: req.sha256 });
    return { ticket, deadline: r.deadline };
  }

  /** The longest upload a route should read for `round` (0 for an unknown round). */
  expectedBytes(round: string): number {
    const r = this.#rounds.get(round);
    return r ? r.elements * 4 : 0;
  }

  /**
   * Takes a member's tensor (raw little-endian f32 bytes). Checks its length and its SHA-256
   * against what the member declared; averages the round at once when it was the last one.
   */
  async upload(round: string, ticket: string, bytes: Uint8Array): Promise<void> {
    const { r, m } = this.#member(round, ticket);
    if (r.done)
      throw err('net/refused', 409, `round ${round} is already averaged: this upload came too late.`);
    if (m.data) throw err('input/invalid', 409, `round ${round}: this ticket has already uploaded.`);
    if (bytes.byteLength !== r.elements * 4) {
      throw err(
        'input/invalid',
        400,
        `round ${round}: expected ${r.elements * 4} bytes (${r.elements} f32), got ${bytes.byteLength}.`,
        {
          path: 'body',
        },
      );
    }
    if (this.#heldBytes + bytes.byteLength > this.#maxTotalBytes) {
      throw err('net/refused', 503, 'The hub holds as many tensors as it may; try again later.');
    }
    const got = await sha256Hex(bytes);
    if (got !== m.sha256) {
      throw err(
        'input/invalid',
        400,
        `round ${round}: the bytes hash to ${got}, not the declared ${m.sha256}.`,
        {
          path: 'body',
        },
      );
    }
    // Checked again after the await: another upload with this ticket may have won meanwhile.
    if (m.data || r.done)
      throw err('input/invalid', 409, `round ${round}: this ticket has already uploaded.`);
    m.data = new Float32Array(bytes.slice().buffer);
    this.#heldBytes += bytes.byteLength;
    const x = this.#exchange;
    if (x) {
      await x.contribute(r.id, { peer: m.peer, volunteer: m.volunteer, sha256: m.sha256, data: m.data });
      if (!r.done && x.complete(r.id, r.group)) this.#finish(r);
      return;
    }
    if (r.group.every((p) => r.members.get(p)?.data)) this.#finish(r);
  }

  /** Resolves with the round's mean once it is made (all members uploaded, or the deadline). */
  mean(round: string, ticket: string): Promise<HubMean> {
    return this.#member(round, ticket).r.result;
  }

  /** Forgets every round (their waiters fail). */
  close(): void {
    this.#closed = true;
    for (const r of this.#rounds.values()) {
      if (!r.done && this.#exchange) {
        // Not averaged here: the other hubs' members still settle the round (a mean made now
        // would be of a part of it, and theirs too).
        clearTimeout(r.timer);
        r.done = Promise.resolve();
        r.settle.reject(err('net/refused', 503, 'The hub is shutting down.'));
      } else if (!r.done) this.#finish(r);
      this.#forget(r);
    }
  }

  #member(round: string, ticket: string): { r: Round; m: Member } {
    const r = this.#rounds.get(round);
    const m = r ? [...r.members.values()].find((x) => x.ticket === ticket) : undefined;
    if (!r || !m) {
      throw err(
        'input/invalid',
        404,
        `round ${round}: no such round, or the ticket is not one of its own (tickets last until the round's mean expires).`,
      );
    }
    return { r, m };
  }

  #finish(r: Round): void {
    if (r.done) return;
    clearTimeout(r.timer);
    r.done = (async () => {
      const x = this.#exchange;
      const shared = x?.settle(r.id, r.group, averageInOrder);
      const members = shared
        ? shared.contributions
        : r.group
            .map((p) => r.members.get(p))
            .filter((m): m is Member & { data: Float32Array } => m?.data !== undefined);
      if (members.length === 0) {
        throw err('net/refused', 410, `round ${r.id}: no member uploaded its tensor before the deadline.`);
      }
      // Every upload was checked to be r.elements long.
      const mean = shared?.mean ?? averageInOrder(members as readonly (Member & { data: Float32Array })[]);
      const contributions = members.map((m) => ({ peer: m.peer, volunteer: m.volunteer, sha256: m.sha256 }));
      this.#free(r);
      return {
        round: r.id,
        group: r.group,
        contributors: members.map((m) => m.peer),
        contributions,
        mean,
        sha256: await sha256Hex(new Uint8Array(mean.buffer, mean.byteOffset, mean.byteLength)),
      };
    })().then(r.settle.resolve, r.settle.reject);
    r.expiry = setTimeout(() => this.#forget(r), this.#ttlMs);
    r.expiry.unref?.();
  }

  #free(r: Round): void {
    for (const m of r.members.values()) {
      if (m.data) this.#heldBytes -= m.data.byteLength;
      delete m.data;
    }
  }

  #forget(r: Round): void {
    clearTimeout(r.timer);
    if (r.expiry) clearTimeout(r.expiry);
    this.#free(r);
    if (this.#rounds.get(r.id) === r) this.#rounds.delete(r.id);
  }
}
