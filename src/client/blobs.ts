// Blobs a volunteer needs (models, input tensors, uniforms), by SHA-256: from the local cache
// first, then from peers (several at once, each piece checked against the hub's piece list), then
// from the hub's `GET /v1/blobs/:sha256` (the data plane's fallback route). Every byte is checked
// against its hash before anything uses it.
import { HearthError, isHearthError } from '../core/errors.ts';
import { isSha256Hex, sha256Hex } from '../core/hash.ts';
import { type PieceHashes, parsePieceHashes } from '../protocol/blob-pieces.ts';

/** Somewhere verified blobs are kept: the IndexedDB BlobCache in a tab, a Map in Node. */
export interface BlobStore {
  /** The verified bytes, or null when absent. */
  get(sha256: string): Promise<Uint8Array | null>;
  /** Stores bytes that must hash to `sha256` (a 'blob/corrupt' error otherwise). */
  put(bytes: Uint8Array, options: { sha256: string }): Promise<string>;
}

/** A BlobStore in memory (Node volunteers, tests). Verifies like the IndexedDB cache does. */
export class MemoryBlobStore implements BlobStore {
  readonly #blobs = new Map<string, Uint8Array>();

  async get(sha256: string): Promise<Uint8Array | null> {
    return this.#blobs.get(sha256) ?? null;
  }

  async put(bytes: Uint8Array, options: { sha256: string }): Promise<string> {
    const got = await sha256Hex(bytes);
    if (got !== options.sha256) {
      throw new HearthError(
        'blob/corrupt',
        `${bytes.byteLength} bytes hash to ${got}, not ${options.sha256}.`,
        {
          details: { expected: options.sha256, got },
        },
      );
    }
    this.#blobs.set(got, bytes);
    return got;
  }

  get size(): number {
    return this.#blobs.size;
  }
}

/** What BlobFetcher hands a peer fetch besides the holders. */
export interface PeerFetchOptions {
  readonly pieces?: PieceHashes;
  readonly moreHoldersEveryMs?: number;
  /** Peers still fetching the blob that serve the pieces they have (only with `pieces`). */
  readonly partialHolders?: readonly string[];
  readonly moreHolders?: () => Promise<{ peers: readonly string[]; partial?: readonly string[] }>;
  /** Called after each piece lands (verified against the piece list where there is one). */
  readonly onProgress?: (peer: string, piecesDone: number, pieceCount: number) => void;
  /** Stops the fetch (no further range is asked); it then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Holders that all dropped out are asked for again (`moreHolders`) until `signal` stops the fetch. */
  readonly keepTrying?: boolean;
}

/** Peers as a blob source: who holds a blob (the hub says), fetching from them, announcing. */
export interface PeerBlobSource {
  /**
   * Peer ids of volunteers that announced the blob (never this one), how many others are
   * fetching it from the hub right now (worth waiting for when there are no peers yet), and,
   * with peers, others fetching it from peers (`partial`: they serve the pieces they have).
   */
  holders(sha256: string): Promise<{ peers: string[]; fetching: number; partial?: string[] }>;
  /**
   * The blob from these holders (several at once), verified; rejects when none delivered. With
   * `pieces` (the hub's piece list) each piece is checked as it lands, so a bad one is pinned on
   * the one peer that sent it; `moreHolders` asks the hub again for holders that turned up since;
   * `partialHolders` are peers still fetching it, asked beside the full holders (pass all of
   * them to `PeerNode.fetchBlob`).
   */
  fetch(holders: readonly string[], sha256: string, options?: PeerFetchOptions): Promise<Uint8Array>;
  /** Tells the hub this volunteer now holds the blob (fire and forget). */
  announce(sha256: string): void;
}

export interface BlobFetcherOptions {
  /** The hub's base URL, e.g. `http://127.0.0.1:8080`. */
  readonly hubUrl: string;
  readonly store: BlobStore;
  /** Largest blob this volunteer accepts (the hub's own limit bounds it too). */
  readonly maxBytes?: number;
  /** How long one download may take before it fails with 'net/timeout'. Default 120 s. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  /**
   * A peer fetch that has landed pieces and then lands no new one (verified against the hub's
   * piece list where there is one) for this long is stopped, and the hub's route is used at once.
   * Progress, not elapsed time: a fetch whose holders keep delivering goes on however long it
   * takes, one whose holders stop falls back after this window. Default
   * {@link DEFAULT_PEER_STALL_MS}.
   *
   * @example
   * new BlobFetcher({ hubUrl, store, peerStallMs: 5000, peerStartMs: 15_000 }); // impatient
   */
  readonly peerStallMs?: number;
  /**
   * The same window before the first piece: dialling the holders (several tries each on a busy
   * machine) and their first answer. Default {@link DEFAULT_PEER_START_MS}.
   */
  readonly peerStartMs?: number;
  /**
   * How long at most to wait for another volunteer's copy when nobody holds a blob yet but the
   * hub says someone is fetching it from the hub, polling every 300 ms. The wait ends as soon as
   * a holder is named (then the peers), or the hub stops counting a fetcher (it left, or the
   * hub's own window for it passed: then the hub's route). Default
   * {@link DEFAULT_PEER_WAIT_MS}, the hub's default window (`BlobSwarm` `fetchingForMs`): a slow
   * first fetcher on a busy machine is still the cheaper copy.
   */
  readonly peerWaitMs?: number;
  /** How long the hub's piece list (asked before a peer fetch) may take. Default 10 s. */
  readonly pieceListTimeoutMs?: number;
}

/** Default {@link BlobFetcherOptions.peerStallMs}: a peer fetch silent this long falls back to the hub. */
export const DEFAULT_PEER_STALL_MS = 20_000;

/** Default {@link BlobFetcherOptions.peerStartMs}: no first piece from peers within this → the hub. */
export const DEFAULT_PEER_START_MS = 45_000;

/** Default {@link BlobFetcherOptions.peerWaitMs}: the hub's own window for a first fetcher. */
export const DEFAULT_PEER_WAIT_MS = 120_000;

/**
 * Gets blobs by hash: cache, else the hub. Concurrent requests for the same blob share one
 * download.
 *
 * @example
 * const blobs = new BlobFetcher({ hubUrl: 'http://127.0.0.1:8080', store: new MemoryBlobStore() });
 * const model = await blobs.get(manifest.model); // verified bytes
 */
export class BlobFetcher {
  readonly #opts: BlobFetcherOptions;
  readonly #inflight = new Map<string, Promise<Uint8Array>>();
  /** Bytes downloaded from the hub so far (cache hits are free). */
  downloadedBytes = 0;
  /** Bytes fetched from peers so far. */
  peerBytes = 0;
  /** Peer fetches that failed and fell back to the hub. */
  peerFallbacks = 0;
  /** Of those, fetches stopped because no piece landed for `peerStallMs` (or `peerStartMs`). */
  peerStalls = 0;
  /** Waits for another volunteer's copy that ran out (`peerWaitMs`), so the hub's route was used. */
  peerWaitsExpired = 0;
  /** Why the last peer fetch fell back (diagnostics). */
  lastPeerError: HearthError | undefined;
  /**
   * Peers to try before the hub, set while a connection with a peer id is up (the swarm); the
   * hub's route is always the fallback, so a missing or silent swarm costs time, never the blob.
   */
  peers: PeerBlobSource | undefined;

  #hubUrl: string;

  constructor(opts: BlobFetcherOptions) {
    this.#opts = opts;
    this.#hubUrl = opts.hubUrl;
  }

  /** The hub whose blob route is the fallback: the one the volunteer is connected to now. */
  get hubUrl(): string {
    return this.#hubUrl;
  }

  set hubUrl(url: string) {
    this.#hubUrl = url;
  }

  get(sha256: string): Promise<Uint8Array> {
    if (!isSha256Hex(sha256)) {
      return Promise.reject(
        new HearthError(
          'input/invalid',
          `blob: expected a SHA-256 as 64 lowercase hex digits, got ${JSON.stringify(sha256)}.`,
        ),
      );
    }
    let p = this.#inflight.get(sha256);
    if (!p) {
      p = this.#load(sha256).finally(() => this.#inflight.delete(sha256));
      this.#inflight.set(sha256, p);
    }
    return p;
  }

  async #load(sha256: string): Promise<Uint8Array> {
    const peers = this.peers;
    const cached = await this.#opts.store.get(sha256);
    if (cached) {
      peers?.announce(sha256);
      return cached;
    }
    const bytes = (peers && (await this.#fromPeers(peers, sha256))) || (await this.#download(sha256));
    // put() hashes the bytes again and refuses a mismatch: a lying hub or peer cannot poison the cache.
    await this.#opts.store.put(bytes, { sha256 });
    peers?.announce(sha256);
    return bytes;
  }

  /** The blob from peers, or undefined (no holder, or none delivered in time): use the hub. */
  async #fromPeers(peers: PeerBlobSource, sha256: string): Promise<Uint8Array | undefined> {
    let holders: string[] = [];
    let partial: string[] = [];
    const waitUntil = Date.now() + (this.#opts.peerWaitMs ?? DEFAULT_PEER_WAIT_MS);
    for (;;) {
      let answer: { peers: string[]; fetching: number; partial?: string[] };
      try {
        answer = await peers.holders(sha256);
      } catch {
        return undefined;
      }
      holders = answer.peers;
      partial = answer.partial ?? [];
      // Nobody holds it yet, but someone is fetching it from the hub: its copy is the cheaper one.
      if (holders.length > 0 || answer.fetching === 0) break;
      if (Date.now() >= waitUntil) {
        this.peerWaitsExpired++;
        break;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    if (holders.length === 0) return undefined;
    const pieces = await this.#pieceList(sha256);
    const stallMs = this.#opts.peerStallMs ?? DEFAULT_PEER_STALL_MS;
    const startMs = this.#opts.peerStartMs ?? DEFAULT_PEER_START_MS;
    let landedAny = false;
    // The fetch goes on while pieces land; a silence of stallMs stops it and the hub's route
    // takes over at once (the stopped fetch winds down behind, asking for nothing more).
    const stop = new AbortController();
    let lastProgress = performance.now();
    let stalled = false;
    const window = () => (landedAny ? stallMs : startMs);
    const stallError = () =>
      new HearthError(
        'net/timeout',
        `peers: ${landedAny ? 'no new piece' : 'no piece yet'} of blob ${sha256} for ${window()} ms`,
        { details: { sha256, ms: window(), landedAny } },
      );
    const gaveUp = new Promise<never>((_, reject) => {
      stop.signal.addEventListener('abort', () => reject(stop.signal.reason), { once: true });
    });
    // A silence must be seen on two ticks in a row: a tab starved of CPU runs this timer before
    // the pieces that arrived meanwhile, and one tick later they have landed.
    let overdue = false;
    const watch = setInterval(
      () => {
        if (performance.now() - lastProgress < window()) {
          overdue = false;
          return;
        }
        if (!overdue) {
          overdue = true;
          return;
        }
        stalled = true;
        stop.abort(stallError());
      },
      Math.max(50, Math.min(1000, stallMs / 4, startMs / 4)),
    );
    try {
      const bytes = await Promise.race([
        peers.fetch(holders, sha256, {
          // Partial holders serve only pieces checked against the piece list: without one, none.
          ...(pieces ? { pieces, ...(partial.length > 0 ? { partialHolders: partial } : {}) } : {}),
          // Sooner than the default: partial holders turn up within a second of each other.
          moreHoldersEveryMs: 1000,
          moreHolders: async () => {
            const a = await peers.holders(sha256);
            return { peers: a.peers, ...(pieces && a.partial ? { partial: a.partial } : {}) };
          },
          onProgress: () => {
            landedAny = true;
            lastProgress = performance.now();
          },
          signal: stop.signal,
          // The holders' links drop a holder that misses its heartbeats (a tab starved on a busy
          // machine); ask again and go on, for as long as pieces keep landing.
          keepTrying: true,
        }),
        gaveUp,
      ]);
      this.peerBytes += bytes.byteLength;
      return bytes;
    } catch (e) {
      this.peerFallbacks++;
      if (stalled) this.peerStalls++;
      this.lastPeerError = isHearthError(e)
        ? e
        : new HearthError('net/unreachable', `peers: ${String(e)}`, { cause: e });
      return undefined;
    } finally {
      clearInterval(watch);
      // Whatever ended the race, the peer fetch asks for nothing more.
      if (!stop.signal.aborted) stop.abort();
      gaveUp.catch(() => {});
    }
  }

  /**
   * The hub's piece list for a blob (one small GET), or undefined when it cannot be had: peers are
   * then checked on the whole blob only, which is slower to blame a liar but as safe.
   */
  async #pieceList(sha256: string): Promise<PieceHashes | undefined> {
    const url = `${this.#hubUrl.replace(/\/+$/, '')}/v1/blobs/${sha256}/pieces`;
    const doFetch = this.#opts.fetch ?? fetch;
    try {
      const res = await doFetch(url, {
        signal: AbortSignal.timeout(this.#opts.pieceListTimeoutMs ?? 10_000),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      return parsePieceHashes(await res.json(), sha256, {
        maxTotalBytes: this.#opts.maxBytes ?? 1024 * 1024 * 1024,
      });
    } catch {
      return undefined;
    }
  }

  async #download(sha256: string): Promise<Uint8Array> {
    const url = `${this.#hubUrl.replace(/\/+$/, '')}/v1/blobs/${sha256}`;
    const doFetch = this.#opts.fetch ?? fetch;
    const timeoutMs = this.#opts.timeoutMs ?? 120_000;
    const signal = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await doFetch(url, { signal });
    } catch (e) {
      throw netError(e, `fetching blob ${sha256} from ${url}`, timeoutMs);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      throw new HearthError('blob/missing', `The hub has no blob ${sha256}.`, { details: { sha256 } });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new HearthError('net/refused', `The hub answered ${res.status} for blob ${sha256}.`, {
        details: { sha256, status: res.status },
      });
    }
    const max = this.#opts.maxBytes ?? 1024 * 1024 * 1024;
    const declared = Number(res.headers.get('content-length') ?? Number.NaN);
    if (declared > max) {
      await res.body?.cancel();
      throw new HearthError(
        'input/invalid',
        `Blob ${sha256} is ${declared} bytes, over this volunteer's ${max}-byte limit.`,
        {
          details: { sha256, bytes: declared, max },
        },
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw netError(e, `reading blob ${sha256}`, timeoutMs);
    }
    if (bytes.byteLength > max) {
      throw new HearthError('input/invalid', `Blob ${sha256} is over this volunteer's ${max}-byte limit.`, {
        details: { sha256, max },
      });
    }
    this.downloadedBytes += bytes.byteLength;
    return bytes;
  }
}

/** A failed fetch as 'net/timeout' or 'net/unreachable', keeping the cause. */
export function netError(e: unknown, what: string, timeoutMs: number): HearthError {
  const name = (e as { name?: string } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new HearthError('net/timeout', `${what}: no answer within ${timeoutMs} ms.`, { cause: e });
  }
  return new HearthError('net/unreachable', `${what}: ${(e as Error)?.message ?? String(e)}.`, { cause: e });
}
