// The peer directory on PostgreSQL (peer-directory.ts; tables in pg-migrations/002-peers.sql).
// A peer id issued and a blob announced wait for their row (one round trip each: once the
// volunteer hears of it, every hub sees it), as do the reads (holders, where a peer is); a
// release, a public key and the heartbeat are posted without a wait, in order on the store's
// connection. Signalling messages travel by NOTIFY on a channel per hub,
// sent on the same ordered connection, so one peer's OFFER and its CANDIDATEs arrive in order.
import { HearthError } from '../core/errors.ts';
import { type DirectoryPeer, MAX_RELAYED_BYTES, type PeerDirectory } from './peer-directory.ts';
import type { PgChannel, Statement } from './pg-channel.ts';

export interface PgPeersOptions {
  /** How often this hub says it is alive (default 5 s). */
  readonly heartbeatMs?: number;
  /**
   * A hub not heard of for this long is dead: its peers are named to nobody (default 15 s). This
   * bounds how long a SIGKILLed hub's peers are still offered as holders.
   */
  readonly leaseMs?: number;
  /** How long a closed peer id is remembered for audits (default 1 hour). */
  readonly closedTtlMs?: number;
  /** How long a list of another hub's holders is reused for the same blob (default 1 s). */
  readonly holdersCacheMs?: number;
}

/** The NOTIFY channel on which `hub` hears signalling messages for its peers. */
export const relayChannel = (hub: string): string => `hearth_p2p_${hub}`;

/** Holders read at once per blob (a sample of `n` is drawn from them for each asker). */
const HOLDERS_READ = 64;
/** Peer ids whose place is remembered (a peer id never moves: it is admitted by one hub only). */
const LOCATED_KEPT = 10_000;

type PeerRow = { hub: string; volunteer: string; public_key: string | null; open: boolean };

/**
 * @example
 * const peers = new PgPeers(pg, 'hub-1f…', { leaseMs: 15_000 });
 * await peers.start((m) => console.log('for a peer of mine:', m));
 */
export class PgPeers implements PeerDirectory {
  readonly hub: string;
  readonly #pg: PgChannel;
  readonly #heartbeatMs: number;
  readonly #leaseMs: number;
  readonly #closedTtlMs: number;
  readonly #cacheMs: number;
  readonly #located = new Map<string, DirectoryPeer>();
  readonly #cache = new Map<string, { at: number; peers: string[] }>();
  /**
   * This hub's open peers and what each holds: what it writes again when it finds that the other
   * hubs took it for dead (its heartbeat lapsed: a database outage, a long stall) and swept it.
   */
  readonly #mine = new Map<string, { volunteer: string; publicKey?: string; blobs: Set<string> }>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #beating = false;
  /** Times this hub found itself swept and wrote its peers again (for tests). */
  revivals = 0;
  #closed = false;
  /** Whether this hub wrote anything (a store that never served peers has nothing to remove). */
  #used = false;

  constructor(pg: PgChannel, hub: string, opts: PgPeersOptions = {}) {
    this.#pg = pg;
    this.hub = hub;
    this.#heartbeatMs = opts.heartbeatMs ?? 5_000;
    this.#leaseMs = opts.leaseMs ?? 15_000;
    this.#closedTtlMs = opts.closedTtlMs ?? 3_600_000;
    this.#cacheMs = opts.holdersCacheMs ?? 1_000;
    if (!(this.#leaseMs > this.#heartbeatMs)) {
      throw new HearthError('input/invalid', 'peers.leaseMs must be longer than peers.heartbeatMs.', {
        details: { leaseMs: this.#leaseMs, heartbeatMs: this.#heartbeatMs },
      });
    }
  }

  async start(onMessage: (message: string) => void): Promise<void> {
    if (this.#timer) return;
    this.#used = true;
    await this.#pg.listen(relayChannel(this.hub), (m) => {
      if (!this.#closed) onMessage(m);
    });
    // The first beat waits: a hub is alive before it names a single peer.
    this.#pg.run(this.#beat());
    this.#timer = setInterval(() => this.#heartbeat(), this.#heartbeatMs);
    this.#timer.unref();
  }

  #heartbeat(): void {
    // One at a time: beats do not pile up behind a database that does not answer.
    if (this.#beating || this.#closed) return;
    this.#beating = true;
    this.#pg
      .ask(this.#beat())
      .then((out) => {
        const lapsed = (out[0] as { lapsed: boolean }[] | undefined)?.[0]?.lapsed === true;
        if (lapsed && this.#mine.size > 0) this.#revive();
      })
      .catch(() => {
        // Missed: the next beat says it; past the lease, the others take this hub for dead.
      })
      .finally(() => {
        this.#beating = false;
      });
  }

  /** Opens this hub's peers again and lists their blobs again (the other hubs swept them). */
  #revive(): void {
    this.revivals++;
    const peers = [...this.#mine];
    const held = peers.flatMap(([p, m]) => [...m.blobs].map((b) => [b, p] as const));
    this.#post([
      {
        sql: `INSERT INTO peer_ids (peer, hub, volunteer, public_key)
              SELECT p, $4, v, k FROM unnest($1::text[], $2::text[], $3::text[]) AS t(p, v, k)
              ON CONFLICT (peer) DO UPDATE SET closed_at = NULL,
                public_key = coalesce(excluded.public_key, peer_ids.public_key)
              WHERE peer_ids.hub = excluded.hub`,
        params: [
          peers.map(([p]) => p),
          peers.map(([, m]) => m.volunteer),
          peers.map(([, m]) => m.publicKey ?? null),
          this.hub,
        ],
        want: 'none',
      },
      {
        sql: `INSERT INTO blob_holders (blob, peer, hub)
              SELECT b, p, $3 FROM unnest($1::text[], $2::text[]) AS t(b, p) ON CONFLICT DO NOTHING`,
        params: [held.map(([b]) => b), held.map(([, p]) => p), this.hub],
        want: 'none',
      },
    ]);
  }

  /**
   * Alive now, and whether another hub had swept this one meanwhile (read and cleared under the
   * row's lock, which a sweep's mark takes too: a sweep is either seen here or finds this hub
   * alive); then, for every hub, the sweep of dead hubs and of old closed ids.
   */
  #beat(): Statement[] {
    const lease = `${this.#leaseMs} milliseconds`;
    const dead = 'SELECT hub FROM hub_alive WHERE swept';
    return [
      {
        sql: `WITH old AS (SELECT swept FROM hub_alive WHERE hub = $1 FOR UPDATE)
              INSERT INTO hub_alive (hub, seen_at) VALUES ($1, now())
              ON CONFLICT (hub) DO UPDATE SET seen_at = now(), swept = false
              RETURNING coalesce((SELECT swept FROM old), true) AS lapsed`,
        params: [this.hub],
        want: 'rows',
      },
      {
        sql: 'UPDATE hub_alive SET swept = true WHERE NOT swept AND seen_at < now() - $1::interval',
        params: [lease],
        want: 'none',
      },
      { sql: `DELETE FROM blob_holders WHERE hub IN (${dead})`, want: 'none' },
      {
        sql: `UPDATE peer_ids SET closed_at = now() WHERE closed_at IS NULL AND hub IN (${dead})`,
        want: 'none',
      },
      {
        sql: 'DELETE FROM peer_ids WHERE closed_at < now() - $1::interval',
        params: [`${this.#closedTtlMs} milliseconds`],
        want: 'none',
      },
      // A dead hub's row goes once nothing of it is left to sweep.
      {
        sql: "DELETE FROM hub_alive WHERE swept AND seen_at < now() - $1::interval - interval '1 minute'",
        params: [lease],
        want: 'none',
      },
    ];
  }

  register(peer: string, volunteer: string, publicKey?: string): void {
    this.#used = true;
    const mine = this.#mine.get(peer);
    if (mine) {
      if (publicKey !== undefined) mine.publicKey = publicKey;
    } else if (publicKey === undefined) {
      this.#mine.set(peer, { volunteer, blobs: new Set() });
    }
    // A key that comes after its peer's release only completes the row (for audits).
    const row: Statement = {
      sql: `INSERT INTO peer_ids (peer, hub, volunteer, public_key) VALUES ($1, $2, $3, $4)
            ON CONFLICT (peer) DO UPDATE SET public_key = coalesce(excluded.public_key, peer_ids.public_key)
            WHERE peer_ids.hub = excluded.hub`,
      params: [peer, this.hub, volunteer, publicKey ?? null],
      want: 'none',
    };
    // The first write waits (one round trip per connection): once the volunteer has its peer id,
    // any hub finds where it is, so a dial from another hub's peer right after is relayed.
    if (mine || publicKey !== undefined) this.#post([row]);
    else this.#pg.run([row]);
  }

  release(peer: string): void {
    this.#mine.delete(peer);
    this.#post([
      { sql: 'DELETE FROM blob_holders WHERE peer = $1', params: [peer], want: 'none' },
      {
        sql: 'UPDATE peer_ids SET closed_at = now() WHERE peer = $1 AND hub = $2 AND closed_at IS NULL',
        params: [peer, this.hub],
        want: 'none',
      },
    ]);
  }

  lookup(peer: string): DirectoryPeer | undefined {
    const known = this.#located.get(peer);
    // Where a peer is never changes; whether it is open and its key may.
    if (known?.publicKey !== undefined && !known.open) return known;
    const [rows] = this.#pg.run([
      {
        sql: 'SELECT hub, volunteer, public_key, closed_at IS NULL AS open FROM peer_ids WHERE peer = $1',
        params: [peer],
        want: 'rows',
      },
    ]) as [PeerRow[]];
    const r = rows[0];
    if (!r) return undefined;
    const found: DirectoryPeer = {
      hub: r.hub,
      volunteer: r.volunteer,
      open: r.open,
      ...(r.public_key === null ? {} : { publicKey: r.public_key }),
    };
    this.#located.set(peer, found);
    if (this.#located.size > LOCATED_KEPT) {
      const oldest = this.#located.keys().next();
      if (!oldest.done) this.#located.delete(oldest.value);
    }
    return found;
  }

  /** The hub `peer` is on, from memory after the first time (it never moves). */
  hubOf(peer: string): string | undefined {
    return this.#located.get(peer)?.hub ?? this.lookup(peer)?.hub;
  }

  announce(peer: string, blobs: readonly string[]): void {
    if (blobs.length === 0 || this.#closed) return;
    const mine = this.#mine.get(peer);
    if (!mine) return;
    for (const b of blobs) mine.blobs.add(b);
    // Waited for (one round trip, once per blob a volunteer gets): once the volunteer hears
    // `announced`, every hub names it.
    this.#pg.run([
      {
        sql: `INSERT INTO blob_holders (blob, peer, hub)
              SELECT b, $2, $3 FROM unnest($1::text[]) AS b
              WHERE EXISTS (SELECT 1 FROM peer_ids WHERE peer = $2 AND closed_at IS NULL)
              ON CONFLICT DO NOTHING`,
        params: [blobs, peer, this.hub],
        want: 'none',
      },
    ]);
  }

  holders(blob: string, n: number, except?: string): string[] {
    if (n <= 0) return [];
    const now = Date.now();
    let hit = this.#cache.get(blob);
    if (!hit || now - hit.at > this.#cacheMs) {
      const [rows] = this.#pg.run([
        {
          sql: `SELECT h.peer FROM blob_holders h JOIN hub_alive a ON a.hub = h.hub
                WHERE h.blob = $1 AND h.hub <> $2 AND NOT a.swept AND a.seen_at >= now() - $3::interval
                ORDER BY random() LIMIT ${HOLDERS_READ}`,
          params: [blob, this.hub, `${this.#leaseMs} milliseconds`],
          want: 'rows',
        },
      ]) as [{ peer: string }[]];
      hit = { at: now, peers: rows.map((r) => r.peer) };
      this.#cache.set(blob, hit);
      // Old entries go as new blobs are asked for: the cache holds what was asked within its window.
      for (const [b, c] of this.#cache) {
        if (now - c.at <= this.#cacheMs) break;
        this.#cache.delete(b);
      }
    }
    const all = hit.peers.filter((p) => p !== except);
    for (let i = 0; i < Math.min(n, all.length); i++) {
      const j = i + Math.floor(Math.random() * (all.length - i));
      const t = all[i] as string;
      all[i] = all[j] as string;
      all[j] = t;
    }
    return all.slice(0, n);
  }

  relay(hub: string, message: string): void {
    if (Buffer.byteLength(message) > MAX_RELAYED_BYTES) return;
    this.#post([{ sql: 'SELECT pg_notify($1, $2)', params: [relayChannel(hub), message], want: 'none' }]);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#mine.clear();
    if (!this.#used) return;
    try {
      this.#pg.run([
        { sql: 'DELETE FROM blob_holders WHERE hub = $1', params: [this.hub], want: 'none' },
        {
          sql: 'UPDATE peer_ids SET closed_at = now() WHERE hub = $1 AND closed_at IS NULL',
          params: [this.hub],
          want: 'none',
        },
        { sql: 'DELETE FROM hub_alive WHERE hub = $1', params: [this.hub], want: 'none' },
      ]);
    } catch {
      // A store already gone: the other hubs' sweeps treat this hub as one that died.
    }
  }

  #post(stmts: Statement[]): void {
    if (this.#closed) return;
    this.#pg.post(stmts).catch(() => {
      // A lost write costs the swarm a holder or a peer a dial; the heartbeat's sweep and the
      // liveness join keep what others are told right.
    });
  }
}
