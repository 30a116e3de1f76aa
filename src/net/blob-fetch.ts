// Fetching one blob from several holders at once: the I/O around the piece scheduler. Links are
// dialled, ranges requested two at a time per holder, holders that turn up mid-fetch join, and a
// holder that dies, stalls or lies drops out and hands its pieces back (piece-scheduler.ts
// decides which pieces go where). The whole blob's hash is checked here; a mismatch without a
// piece list is sorted out by asking one holder at a time.
import { at } from '../core/at.ts';
import { HearthError, isHearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import type { PieceHashes } from '../protocol/blob-pieces.ts';
import type { PartialBlob } from './partial-blob.ts';
import type { PeerLink } from './peer-link.ts';
import type { PeerScores } from './peer-score.ts';
import { type PieceRange, PieceScheduler } from './piece-scheduler.ts';

/** Requests a fetch keeps in flight to each holder. */
const LANES = 2;

/** Holders as `moreHolders` may name them: full holders, and peers still fetching the blob. */
export interface HolderLists {
  /** Peers holding the whole blob. */
  readonly peers: readonly string[];
  /** Peers still fetching it that serve the pieces they have (see {@link FetchBlobOptions.partialHolders}). */
  readonly partial?: readonly string[];
}

/** One holder's part in one pass of a fetch. */
export interface FetchAttempt {
  readonly peer: string;
  /** The lowest piece this holder delivered (the first it was asked for when it delivered none). */
  readonly fromPiece: number;
  /** One past the highest piece this holder delivered (fromPiece when none). */
  readonly toPiece: number;
  /** Pieces this holder delivered that landed (and passed their piece check, with a piece list). */
  readonly pieces: number;
  /** Why this holder dropped out; absent for one that served every piece it was given. */
  readonly error?: HearthError;
}

export interface FetchResult {
  /** The blob, verified against its SHA-256. */
  readonly bytes: Uint8Array;
  readonly attempts: readonly FetchAttempt[];
}

export interface FetchBlobOptions {
  /** Piece size to ask for. Default: the holder's (a piece list's when `pieces` is given). */
  readonly pieceSize?: number;
  /**
   * Each piece's SHA-256 from a trusted source (the hub's `GET /v1/blobs/:sha256/pieces`): every
   * piece is checked as it lands, and a bad one is pinned on the one holder that sent it.
   * Without it, only the whole blob is checked (and a mismatch among several holders is sorted
   * out by asking them one at a time).
   */
  readonly pieces?: PieceHashes;
  /**
   * Asked now and then while fewer than `parallel` holders are at work: holders that turned up
   * since the fetch began (peers that finished their copy) join it and take a share.
   *
   * Full holders as a list, or full and partial holders as {@link HolderLists}.
   *
   * @example
   * node.fetchBlob(first, sha256, { moreHolders: async () => (await askHubForHolders(sha256)).peers });
   */
  readonly moreHolders?: () => Promise<readonly string[] | HolderLists>;
  /**
   * Peers that are fetching the blob themselves (the hub names them): each serves the pieces it
   * has already checked against the hub's piece list, waiting a little for one still on its
   * way. They work beside the full holders, after them in line; a range one cannot supply goes
   * back to the others, and after a few such misses in a row it leaves the fetch. Useful only
   * with `pieces` (a partial holder serves only a blob whose pieces it could check).
   */
  readonly partialHolders?: readonly string[];
  /** How often `moreHolders` is asked. Default 2 s. */
  readonly moreHoldersEveryMs?: number;
  /**
   * Holders asked at once, each for its own share of the pieces. Default 4. 1: one holder at a
   * time, one request at a time, pieces in order (the next holder resumes at the first hole).
   */
  readonly parallel?: number;
  /** Called after each piece lands, with the holder that sent it. */
  readonly onProgress?: (peer: string, piecesDone: number, pieceCount: number) => void;
  /**
   * Stops the fetch: no further range is asked, and it rejects with the signal's reason (a
   * HearthError) or 'net/timeout'. Ranges already asked finish or fail on their own.
   *
   * @example
   * const stop = new AbortController();
   * node.fetchBlob(holders, sha256, { signal: stop.signal }); // stop.abort(reason) to give up
   */
  readonly signal?: AbortSignal;
  /**
   * With `moreHolders` and `signal`: when every holder has dropped out, pause
   * (`moreHoldersEveryMs`), ask `moreHolders` again and go on with whoever it names — holders
   * that timed out, were unreachable or lacked pieces get another go, liars do not — until the
   * blob is in or the signal stops the fetch. For a caller that judges progress itself (the
   * volunteer's blob fetcher stops a fetch that lands nothing for a while): on a loaded machine a
   * starved holder misses its heartbeats and answers again a moment later. Default false: the
   * fetch fails with 'blob/missing' when the holders run out.
   */
  readonly keepTrying?: boolean;
}

/** What a fetch needs of the node it runs on. */
export interface FetchHost {
  /** This node's peer id (never asked for its own blob). */
  readonly id: string;
  readonly scores: PeerScores;
  /** Whether the node was closed (the fetch stops asking). */
  isClosed(): boolean;
  /** An open link to `peer`. */
  connect(peer: string): Promise<PeerLink>;
  /** Closes the link to a peer that lied. */
  drop(peer: string): void;
}

/** Why a fetch was stopped by its signal. */
function abortReason(signal: AbortSignal): HearthError {
  const r: unknown = signal.reason;
  return isHearthError(r)
    ? r
    : new HearthError('net/timeout', 'The peer fetch was stopped.', r === undefined ? {} : { cause: r });
}

/**
 * Fetches `partial` from `queue` (holders best first; `partialHolders` among them are peers still
 * fetching it), pass after pass until its SHA-256 checks or the holders run out ('blob/missing'),
 * or — with `keepTrying` — until the signal stops it.
 */
export async function fetchFromHolders(
  host: FetchHost,
  initial: string[],
  partial: PartialBlob,
  partialHolders: Set<string>,
  namedCount: number,
  options: FetchBlobOptions,
): Promise<FetchResult> {
  const attempts: FetchAttempt[] = [];
  let queue = initial;
  const sha256 = partial.sha256;
  let parallel = Math.max(1, Math.floor(options.parallel ?? 4));
  let secondChance = false;
  for (;;) {
    while (queue.length > 0) {
      const pass = await fetchPass(host, queue, partial, parallel, options, partialHolders, secondChance);
      attempts.push(...pass.attempts);
      queue = queue.filter((p) => !pass.failed.has(p));
      if (options.signal?.aborted) throw abortReason(options.signal);
      if (!partial.complete) break;
      const got = await sha256Hex(partial.bytes);
      if (got === sha256) {
        for (const peer of pass.senders) if (!pass.failed.has(peer)) host.scores.reward(peer);
        return { bytes: partial.bytes, attempts };
      }
      const senders = [...pass.senders];
      const what = `${partial.totalBytes} bytes that hash to ${got}, not ${sha256}`;
      for (let i = attempts.length - pass.attempts.length; i < attempts.length; i++) {
        const a = at(attempts, i, 'fetch attempts');
        if (!pass.senders.has(a.peer) || a.error) continue;
        const error =
          senders.length === 1
            ? new HearthError('blob/corrupt', `Peer ${a.peer} sent ${what}; the peer was dropped.`, {
                details: { peer: a.peer, expected: sha256, got },
              })
            : new HearthError(
                'blob/corrupt',
                `Pieces from ${senders.length} peers assembled into ${what}; asking one peer at a time.`,
                { details: { peer: a.peer, peers: senders, expected: sha256, got } },
              );
        attempts[i] = { ...a, error };
      }
      const liar = senders.length === 1 ? senders[0] : undefined;
      if (liar !== undefined) {
        // The one sender lied: drop it, as a link does when a whole blob hashes wrong.
        host.scores.penalize(liar, 'blob/corrupt');
        host.drop(liar);
        queue = queue.filter((p) => p !== liar);
      } else {
        // No piece list says whose piece was bad: one holder at a time pins it on one.
        parallel = 1;
      }
      partial.reset();
    }
    if (!options.keepTrying || !options.moreHolders || !options.signal) break;
    // Peers the PeerServer does not know get no second chance (nobody is there to answer).
    const gone = new Set(attempts.filter((a) => a.error?.details.unknown === true).map((a) => a.peer));
    queue = await holdersAgain(host, options.moreHolders, options, partialHolders, options.signal, gone);
    if (queue.length === 0) break;
    secondChance = true;
  }
  throw new HearthError(
    'blob/missing',
    `No peer delivered blob ${sha256} (asked ${new Set(attempts.map((a) => a.peer)).size} of ${namedCount}): ` +
      (attempts.map((a) => `${a.peer}: ${a.error?.code}`).join(', ') || 'no holder left to ask') +
      '. Fetch it from the hub.',
    { details: { sha256, attempts: attempts.map((a) => ({ ...a, error: a.error?.toJSON() })) } },
  );
}

/** Codes after which a holder gets no second chance in a fetch that keeps trying. */
const NO_SECOND_CHANCE = new Set(['blob/corrupt', 'net/protocol']);

/**
 * After every holder dropped out (`keepTrying`): pauses, asks `moreHolders` (again while it
 * fails) and returns whom it names, full holders first, without this node, banned peers, peers
 * that lied and peers the PeerServer does not know; empty when that leaves nobody.
 */
async function holdersAgain(
  host: FetchHost,
  more: NonNullable<FetchBlobOptions['moreHolders']>,
  options: FetchBlobOptions,
  partialHolders: Set<string>,
  signal: AbortSignal,
  gone: ReadonlySet<string>,
): Promise<string[]> {
  const every = options.moreHoldersEveryMs ?? 2000;
  for (;;) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, every);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
    if (signal.aborted) throw abortReason(signal);
    let answer: readonly string[] | HolderLists;
    try {
      answer = await more();
    } catch {
      continue;
    }
    const full = (Array.isArray(answer) ? answer : (answer as HolderLists).peers).filter(
      (p): p is string => typeof p === 'string',
    );
    const part = Array.isArray(answer) ? [] : ((answer as HolderLists).partial ?? []);
    for (const p of full) partialHolders.delete(p);
    for (const p of part) if (typeof p === 'string' && !full.includes(p)) partialHolders.add(p);
    const fit = (p: unknown): p is string => {
      if (typeof p !== 'string' || p === host.id || gone.has(p) || host.scores.banned(p)) return false;
      const why = host.scores.get(p)?.lastReason;
      return why === undefined || !NO_SECOND_CHANCE.has(why);
    };
    // Nobody worth another go (none named, or only liars and peers that are gone): give up now,
    // so the caller falls back at once rather than after its silence window.
    return [...new Set([...full.filter(fit), ...part.filter(fit)])];
  }
}

/**
 * One pass over `queue`: up to `parallel` holders fetch the missing pieces into `partial`, as the
 * scheduler deals them, until it is complete, every holder dropped out, or the signal stops it.
 */
async function fetchPass(
  host: FetchHost,
  queue: string[],
  partial: PartialBlob,
  parallel: number,
  options: FetchBlobOptions,
  partialHolders: Set<string>,
  secondChance = false,
): Promise<{ attempts: FetchAttempt[]; failed: Set<string>; senders: Set<string> }> {
  const sha256 = partial.sha256;
  const failed = new Set<string>();
  const senders = new Set<string>();
  // Smaller ranges where holders may still join, so there is more for them to take over.
  const sched = new PieceScheduler({
    lanes: parallel === 1 ? 1 : LANES,
    shares: options.moreHolders ? parallel : Math.min(parallel, queue.length),
  });
  /** Sizes the schedule once the blob's size is known (a piece list, or the first header). */
  const sized = () => {
    if (!sched.sized && partial.started) {
      sched.size(partial.pieceCount, {
        // With partial holders in the swarm, each requester starts its full holders on another
        // part of the blob, so the partial holders soon hold different pieces to serve one
        // another instead of all waiting on the same first share.
        rotate: partialHolders.size > 0,
        landed: (i) => partial.has(i),
      });
    }
    return sched.sized;
  };
  let wake: () => void = () => {};
  let changed = new Promise<void>((r) => (wake = r));
  const notify = () => {
    const w = wake;
    changed = new Promise<void>((r) => (wake = r));
    w();
  };
  const signal = options.signal;
  const stopped = () => signal?.aborted === true;
  signal?.addEventListener('abort', notify, { once: true });

  const attempts: FetchAttempt[] = [];
  const run = async (peer: string, index: number): Promise<void> => {
    let pieces = 0;
    let lo = Number.POSITIVE_INFINITY;
    let hi = -1;
    let asked = -1;
    let error: HearthError | undefined;
    const isPartial = partialHolders.has(peer);
    const asError = (e: unknown) =>
      isHearthError(e) ? e : new HearthError('net/unreachable', String(e), { cause: e });
    let link: PeerLink | undefined;
    try {
      link = await host.connect(peer);
    } catch (e) {
      error = asError(e);
      // A link lowers the score itself where the failure was the peer's fault; a dial does not.
      host.scores.penalize(peer, error.code);
    }
    /** One request at a time, taking the next range as the last one lands. */
    const lane = async (l: PeerLink) => {
      while (!error && !partial.complete && !host.isClosed() && !stopped()) {
        sized();
        const range: PieceRange | undefined = sched.take(index);
        if (!range) {
          if (sched.lacksSome(index)) {
            // What is left may be only pieces this partial holder lacked a moment ago: ask it
            // again after a short wait (its misses still count), never wait on nothing.
            let timer: ReturnType<typeof setTimeout> | undefined;
            await Promise.race([changed, new Promise((r) => (timer = setTimeout(r, 1000)))]);
            clearTimeout(timer);
            sched.forgive(index);
          } else await changed;
          continue;
        }
        if (asked < 0) asked = range[0];
        const before = pieces;
        try {
          await l.fetch(sha256, {
            partial,
            fromPiece: range[0],
            toPiece: range[1],
            ...(options.pieceSize === undefined ? {} : { pieceSize: options.pieceSize }),
            onPiece: (i) => {
              sized();
              sched.land(i, index);
              pieces++;
              lo = Math.min(lo, i);
              hi = Math.max(hi, i);
              senders.add(peer);
              notify();
            },
            onProgress: (done, count) => options.onProgress?.(peer, done, count),
          });
        } catch (e) {
          if (isPartial && isHearthError(e, 'blob/missing') && !l.closeReason) {
            // A partial holder lacked a piece in time: the rest of the range goes to others.
            // Not its fault; after a few misses in a row it leaves this fetch.
            sized();
            const gotAny = pieces > before;
            if (sched.lacked(index, range, gotAny)) error ??= asError(e);
            else if (!gotAny) {
              notify();
              // A pause before asking again: no spin where it answers at once (its own fetch
              // has not begun, or it has no piece list and so serves nothing).
              await new Promise((r) => setTimeout(r, 100 * sched.misses(index)));
            }
          } else error ??= asError(e);
        } finally {
          // Whatever landed stays; the rest of the range is anybody's again.
          sched.finish(index, range);
          notify();
        }
      }
    };
    // Two requests in flight per holder, so the round trip between ranges costs no time; one
    // when asked for one holder at a time, so pieces arrive in order and a resume starts where
    // the last holder stopped.
    const lanes = parallel === 1 ? 1 : LANES;
    if (link) await Promise.all(Array.from({ length: lanes }, () => lane(link)));
    if (error) {
      failed.add(peer);
      sched.release(index);
      notify();
    }
    const from = hi < 0 ? Math.max(0, asked) : lo;
    attempts[index] = {
      peer,
      fromPiece: from,
      toPiece: hi < 0 ? from : hi + 1,
      pieces,
      ...(error ? { error } : {}),
    };
  };

  // Up to `parallel` holders; one that drops out is replaced by the next in line. Holders with a
  // negative score stand in only for one that dropped out.
  const running = new Set<Promise<void>>();
  const started = new Set<string>();
  const startOne = (anyScore: boolean) => {
    // A second chance (keepTrying) goes by the order given, full holders first, whatever the
    // score: the holders that ran out a moment ago are all there is.
    const ok = (p: string) => !started.has(p) && (secondChance || host.scores.score(p) >= 0);
    const peer =
      queue.find((p) => ok(p) && !partialHolders.has(p)) ??
      queue.find(ok) ??
      (anyScore ? queue.find((p) => !started.has(p)) : undefined);
    if (peer === undefined) return false;
    started.add(peer);
    const index = sched.addHolder(partialHolders.has(peer));
    const p: Promise<void> = run(peer, index).finally(() => running.delete(p));
    running.add(p);
    return true;
  };
  while (!stopped() && running.size < parallel && startOne(running.size === 0)) {}
  // Holders that turn up while the fetch runs (peers that finished their copy) join it: asked at
  // most once per interval, and only while a holder slot is free.
  const every = options.moreHoldersEveryMs ?? 2000;
  let asking = false;
  let lastAsked = performance.now();
  let wakePass: () => void = () => {};
  const askMore = () => {
    const more = options.moreHolders;
    if (!more || asking || partial.complete || stopped() || running.size >= parallel) return;
    if (performance.now() - lastAsked < every) return;
    asking = true;
    more()
      .then((answer) => {
        let added = false;
        const full = Array.isArray(answer) ? answer : (answer as HolderLists).peers;
        const part = Array.isArray(answer) ? [] : ((answer as HolderLists).partial ?? []);
        for (const p of full) {
          // A partial holder that finished is a full one now (one already at work stays so for
          // this pass: it has its misses counted).
          if (typeof p === 'string' && !started.has(p)) partialHolders.delete(p);
        }
        for (const [list, isPartial] of [
          [full, false],
          [part, true],
        ] as const) {
          for (const p of list) {
            if (typeof p === 'string' && p !== host.id && !queue.includes(p) && !host.scores.banned(p)) {
              if (isPartial) partialHolders.add(p);
              queue.push(p);
              added = true;
            }
          }
        }
        if (added) wakePass();
      })
      .catch(() => {
        // No news is no loss: the holders already known carry on.
      })
      .finally(() => {
        asking = false;
        lastAsked = performance.now();
      });
  };
  while (running.size > 0) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = new Promise<void>((resolve) => {
      wakePass = resolve;
      if (options.moreHolders) timer = setTimeout(resolve, every);
    });
    await Promise.race([...running, tick]);
    clearTimeout(timer);
    askMore();
    while (!partial.complete && !stopped() && running.size < parallel && startOne(failed.size > 0)) {}
  }
  signal?.removeEventListener('abort', notify);
  return { attempts: attempts.filter((a) => a !== undefined), failed, senders };
}
