// All-reduce rounds averaged through the hubs when several share one PostgreSQL database (issue
// 15): the RoundExchange of rounds.ts. Each hub keeps its own members' tickets, bounds and
// waiters (HubRounds); what members on different hubs must share is here, in two tables
// (pg-migrations/002-peers.sql): the round's group and size, checked on every hub's first join;
// each member's checked tensor; and the mean, written once, by the first hub to settle the round
// (every member uploaded, or that hub's deadline passed) under the round row's lock, then read by
// every other hub — so every member of the round gets the same bits, whichever hub it asked. A
// settled round is announced by NOTIFY; a lost notice costs the waiters their hub's deadline, at
// which they read the stored mean.
import { HearthError } from '../core/errors.ts';
import type { PgChannel, Statement } from './pg-channel.ts';
import type { RoundExchange, SharedContribution } from './rounds.ts';

/** Where hubs tell each other that a round was averaged. */
const ROUNDS_CHANNEL = 'hearth_rounds';

export interface PgRoundsOptions {
  /** How long a round's row (and its mean) is kept (default 10 minutes). */
  readonly keepMs?: number;
}

type Contributor = { peer: string; volunteer: string; sha256: string };

/** As rounds.ts answers the same cases: a HearthError with the HTTP status of its route. */
const err = (code: 'input/invalid' | 'net/refused', message: string, details = {}) =>
  new HearthError(code, message, { details: { status: 409, ...details } });

const f32 = (bytes: Uint8Array): Float32Array =>
  new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));

/**
 * @example
 * const rounds = new HubRounds({ exchange: new PgRounds(pg, 'hub-1f…') });
 */
export class PgRounds implements RoundExchange {
  readonly #pg: PgChannel;
  readonly #hub: string;
  readonly #keepMs: number;

  constructor(pg: PgChannel, hub: string, opts: PgRoundsOptions = {}) {
    this.#pg = pg;
    this.#hub = hub;
    this.#keepMs = opts.keepMs ?? 600_000;
  }

  join(round: string, group: readonly string[], elements: number): void {
    const [, , rows] = this.#pg.run([
      {
        sql: 'DELETE FROM allreduce_contributions WHERE round IN (SELECT round FROM allreduce_rounds WHERE created_at < now() - $1::interval)',
        params: [`${this.#keepMs} milliseconds`],
        want: 'none',
      },
      {
        sql: 'DELETE FROM allreduce_rounds WHERE created_at < now() - $1::interval',
        params: [`${this.#keepMs} milliseconds`],
        want: 'none',
      },
      {
        sql: `WITH made AS (
                INSERT INTO allreduce_rounds (round, grp, elements) VALUES ($1, $2::text::jsonb, $3)
                ON CONFLICT (round) DO NOTHING RETURNING grp, elements, false AS done)
              SELECT grp, elements, done FROM made
              UNION ALL
              SELECT grp, elements, mean IS NOT NULL AS done FROM allreduce_rounds WHERE round = $1`,
        params: [round, JSON.stringify(group), elements],
        want: 'rows',
      },
    ]) as [null, null, { grp: string[]; elements: number; done: boolean }[]];
    const r = rows[0];
    if (!r) return;
    if (r.done) throw err('net/refused', `round ${round} is already averaged; run a new round.`);
    if (r.grp.length !== group.length || r.grp.some((p, i) => p !== group[i])) {
      throw err('input/invalid', `round ${round}: another member named another group (or order).`, {
        path: 'message.group',
      });
    }
    if (r.elements !== elements) {
      throw err('input/invalid', `round ${round}: tensors have ${r.elements} elements, not ${elements}.`, {
        path: 'message.elements',
      });
    }
  }

  contribute(round: string, c: SharedContribution): Promise<void> {
    return this.#pg.post([
      {
        sql: `INSERT INTO allreduce_contributions (round, peer, volunteer, sha256, data)
              SELECT $1, $2, $3, $4, $5::bytea WHERE EXISTS
                (SELECT 1 FROM allreduce_rounds WHERE round = $1 AND mean IS NULL)
              ON CONFLICT DO NOTHING`,
        params: [
          round,
          c.peer,
          c.volunteer,
          c.sha256,
          new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength),
        ],
        want: 'none',
      },
    ]);
  }

  complete(round: string, group: readonly string[]): boolean {
    const [rows] = this.#pg.run([
      {
        sql: `SELECT coalesce((SELECT mean IS NOT NULL FROM allreduce_rounds WHERE round = $1), false) AS done,
                     (SELECT count(*)::int FROM allreduce_contributions WHERE round = $1 AND peer = ANY($2::text[])) AS n`,
        params: [round, group],
        want: 'rows',
      },
    ]) as [{ done: boolean; n: number }[]];
    const r = rows[0];
    return r !== undefined && (r.done || r.n >= group.length);
  }

  settle(
    round: string,
    group: readonly string[],
    average: (members: readonly SharedContribution[]) => Float32Array,
  ): { readonly contributions: readonly Contributor[]; readonly mean: Float32Array } | undefined {
    // One transaction over two batches with no await between them: nothing else of this hub's
    // runs on the connection meanwhile. The round row's lock makes hubs settling at once take turns.
    let open = true;
    try {
      const [, stored, rows] = this.#pg.run([
        { sql: 'BEGIN', want: 'none' },
        {
          sql: 'SELECT mean, contributors FROM allreduce_rounds WHERE round = $1 FOR UPDATE',
          params: [round],
          want: 'rows',
        },
        {
          sql: 'SELECT peer, volunteer, sha256, data FROM allreduce_contributions WHERE round = $1',
          params: [round],
          want: 'rows',
        },
      ]) as [
        null,
        { mean: Uint8Array | null; contributors: Contributor[] | null }[],
        (Contributor & { data: Uint8Array })[],
      ];
      const row = stored[0];
      if (row?.mean && row.contributors) {
        this.#pg.run([{ sql: 'COMMIT', want: 'none' }]);
        open = false;
        return { contributions: row.contributors, mean: f32(row.mean) };
      }
      const byPeer = new Map(rows.map((c) => [c.peer, c]));
      const members: SharedContribution[] = [];
      for (const p of group) {
        const c = byPeer.get(p);
        if (c) members.push({ peer: c.peer, volunteer: c.volunteer, sha256: c.sha256, data: f32(c.data) });
      }
      if (!row || members.length === 0) {
        this.#pg.run([{ sql: 'ROLLBACK', want: 'none' }]);
        open = false;
        return undefined;
      }
      const mean = average(members);
      const contributions = members.map((m) => ({ peer: m.peer, volunteer: m.volunteer, sha256: m.sha256 }));
      const done: Statement[] = [
        {
          sql: 'UPDATE allreduce_rounds SET mean = $2::bytea, contributors = $3::text::jsonb WHERE round = $1',
          params: [
            round,
            new Uint8Array(mean.buffer, mean.byteOffset, mean.byteLength),
            JSON.stringify(contributions),
          ],
          want: 'none',
        },
        { sql: 'DELETE FROM allreduce_contributions WHERE round = $1', params: [round], want: 'none' },
        { sql: 'COMMIT', want: 'none' },
        { sql: 'SELECT pg_notify($1, $2)', params: [ROUNDS_CHANNEL, `${this.#hub} ${round}`], want: 'none' },
      ];
      this.#pg.run(done);
      open = false;
      return { contributions, mean };
    } catch (e) {
      if (open) {
        try {
          this.#pg.run([{ sql: 'ROLLBACK', want: 'none' }]);
        } catch {}
      }
      throw e;
    }
  }

  onSettled(fn: (round: string) => void): void {
    this.#pg
      .listen(ROUNDS_CHANNEL, (payload) => {
        const space = payload.indexOf(' ');
        if (space < 0 || payload.slice(0, space) === this.#hub) return;
        fn(payload.slice(space + 1));
      })
      .catch(() => {
        // Without notices, waiters on this hub read the stored mean at their deadline.
      });
  }
}
