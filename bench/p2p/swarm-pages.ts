// Hub egress with the test page instead of the volunteer runtime: `count` Chromium tabs each want
// the same blob (already uploaded to the hub). A tiny tracker in Node plays the hub's part: it
// hands each requester up to three holders that announced the blob (least asked first, so the
// load spreads), and while nobody holds it but a tab is already downloading it from the hub, a
// requester waits (bounded) for that tab to announce rather than downloading a second copy. A tab
// fetches from its holders (PeerNode.fetchBlob: pieces from several holders at once, verified) and falls back
// to the hub's `GET /v1/blobs/:sha256` when none delivers; then it serves the blob and announces.
import type { Browser } from 'playwright-core';
import type { Hub } from '../../src/node/hub-server.ts';
import { chromiumPeer } from '../../test/net/chromium-peers.ts';

export interface SwarmRow {
  readonly tab: number;
  readonly via: string;
  readonly ms: number;
  readonly holdersOffered: number;
  /** Holders that sent this tab at least one piece. */
  readonly holdersServed: number;
}

export interface SwarmResult {
  readonly servedBytes: number;
  readonly copies: number;
  readonly rows: readonly SwarmRow[];
  readonly seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Tracker {
  readonly #holders: string[] = [];
  readonly #asked = new Map<string, number>();
  #hubFetches = 0;

  /** Up to `n` holders, least asked first; [] means "download it from the hub". */
  async ask(n = 3, waitMs = 60_000): Promise<string[]> {
    const deadline = Date.now() + waitMs;
    while (this.#holders.length === 0 && this.#hubFetches > 0 && Date.now() < deadline) await sleep(50);
    if (this.#holders.length === 0) {
      this.#hubFetches++;
      return [];
    }
    const picked = [...this.#holders]
      .sort((a, b) => (this.#asked.get(a) ?? 0) - (this.#asked.get(b) ?? 0))
      .slice(0, n);
    for (const p of picked) this.#asked.set(p, (this.#asked.get(p) ?? 0) + 1);
    return picked;
  }

  announce(peer: string): void {
    if (!this.#holders.includes(peer)) this.#holders.push(peer);
  }
}

export async function pageSwarm(
  browser: Browser,
  hub: Hub,
  sha256: string,
  size: number,
  count: number,
): Promise<SwarmResult> {
  const tabs = await Promise.all(Array.from({ length: count }, () => chromiumPeer(browser, hub.url)));
  try {
    // Generous liveness: eight tabs on two shared cores starve each other's timers.
    const tuning = { idleTimeoutMs: 15_000, stallTimeoutMs: 20_000, ackTimeoutMs: 30_000 };
    const ids = await Promise.all(tabs.map((t) => t.open({ tuning })));
    const tracker = new Tracker();
    const before = hub.stats.blobBytesServed;
    const t0 = performance.now();
    const rows = await Promise.all(
      tabs.map(async (tab, i): Promise<SwarmRow> => {
        const holders = await tracker.ask();
        const got = await tab.fetchOrHub(holders, sha256);
        if (!got.ok) throw new Error(`tab ${i} got no blob: ${got.error.code}: ${got.error.message}`);
        if (got.sha256 !== sha256 || got.bytes !== size) throw new Error(`tab ${i} got other bytes`);
        tracker.announce(ids[i]!);
        const holdersServed = new Set(got.attempts.filter((a) => a.toPiece > a.fromPiece).map((a) => a.peer))
          .size;
        return { tab: i, via: got.via, ms: got.ms, holdersOffered: holders.length, holdersServed };
      }),
    );
    const servedBytes = hub.stats.blobBytesServed - before;
    return { servedBytes, copies: servedBytes / size, rows, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const t of tabs) await t.kill();
  }
}
