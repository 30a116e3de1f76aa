// Accountable all-reduce on the hub's side (issue 5): every member that finishes a round reports
// the round's signed contributions (`allreduce-report`). The hub checks each one against what it
// knows for sure — which volunteer it issued the peer id to, and that volunteer's public key from
// its authenticated connection — and keeps the reports. Later, anyone who learns what a member
// should have contributed (a recomputation, a replica) compares hashes: the one that differs
// names its volunteer, who signed it, and the round is run again without that peer.
import { at } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';
import { contributionMessage } from '../protocol/allreduce.ts';
import {
  CONTROL_LIMITS,
  type ContributionVerdict,
  fromBase64Url,
  type ReportedContribution,
} from '../protocol/control.ts';
import type { VolunteerKey } from './identity.ts';
import type { AllReduceReportRecord } from './store.ts';

/** Who the hub gave a peer id to. */
export interface IssuedPeer {
  readonly volunteer: VolunteerKey;
}

export interface IssuedPeersOptions {
  /** How long a peer id is remembered after its connection closed (default 1 hour). */
  readonly ttlMs?: number;
  /** Peer ids remembered at most; the oldest closed ones go first (default 100,000). */
  readonly max?: number;
  readonly now?: () => number;
}

/**
 * Peer ids the control plane issued, and to whom: kept while the connection is open and for a
 * while after (a member reports a round in which another member has since left).
 */
export class IssuedPeers {
  readonly #open = new Map<string, IssuedPeer>();
  /** Closed ones, oldest first (a Map keeps insertion order). */
  readonly #closed = new Map<string, IssuedPeer & { readonly at: number }>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(opts: IssuedPeersOptions = {}) {
    this.#ttlMs = opts.ttlMs ?? 3_600_000;
    this.#max = opts.max ?? 100_000;
    this.#now = opts.now ?? Date.now;
  }

  issue(peer: string, volunteer: VolunteerKey): void {
    this.#open.set(peer, { volunteer });
  }

  /** The connection that held `peer` closed: remember it for the TTL. */
  release(peer: string): void {
    const p = this.#open.get(peer);
    if (!p) return;
    this.#open.delete(peer);
    this.#closed.set(peer, { ...p, at: this.#now() });
    this.#trim();
  }

  get(peer: string): IssuedPeer | undefined {
    this.#trim();
    return this.#open.get(peer) ?? this.#closed.get(peer);
  }

  /** As `get`, and where the hubs share a database also a peer id another hub issued. */
  find(peer: string): Promise<IssuedPeer | undefined> {
    return Promise.resolve(this.get(peer));
  }

  #trim(): void {
    const old = this.#now() - this.#ttlMs;
    for (const [peer, p] of this.#closed) {
      if (p.at >= old && this.#open.size + this.#closed.size <= this.#max) break;
      this.#closed.delete(peer);
    }
  }
}

/**
 * The hub's verdict on one reported contribution: the peer id must have been issued to the
 * volunteer named, and the signature must verify with that volunteer's key.
 */
export async function verifyContribution(
  round: string,
  c: ReportedContribution,
  issued: IssuedPeers,
): Promise<ContributionVerdict> {
  const p = await issued.find(c.peer);
  if (!p) return 'unknown-peer';
  if (p.volunteer.id !== c.volunteer) return 'wrong-volunteer';
  try {
    const sig = fromBase64Url(c.signature, 'signature', CONTROL_LIMITS.maxSignatureChars);
    if (sig.byteLength !== 64) return 'bad-signature';
    const ok = await crypto.subtle.verify(
      { name: 'ECDSA', hash: 'SHA-256' },
      p.volunteer.key,
      sig,
      new TextEncoder().encode(contributionMessage(round, c.sha256)),
    );
    return ok ? 'valid' : 'bad-signature';
  } catch {
    return 'bad-signature';
  }
}

/** One form in which a contribution was reported, and who reported it so. */
export interface ContributionVariant {
  readonly volunteer: string;
  readonly sha256: string;
  readonly signature: string;
  readonly verdict: string;
  /** Peer ids of the members that reported this form. */
  readonly reporters: readonly string[];
}

export interface ContributionAudit {
  readonly peer: string;
  /** Distinct forms reported; one when every reporter agrees. */
  readonly variants: readonly ContributionVariant[];
  /** Every reporter reported the same volunteer, hash and signature. */
  readonly consistent: boolean;
  /** Consistent, and its signature verified against the volunteer the hub issued the peer id to. */
  readonly valid: boolean;
}

/** What `GET /v1/allreduce/:round` answers. */
export interface RoundAudit {
  readonly round: string;
  readonly reports: readonly AllReduceReportRecord[];
  /** Per contributing peer, in the order first reported. */
  readonly contributions: readonly ContributionAudit[];
  /** Distinct mean hashes reported, with their reporters: one when the round agreed. */
  readonly means: readonly { readonly sha256: string; readonly reporters: readonly string[] }[];
}

/**
 * Folds a round's reports into per-contribution verdicts.
 *
 * @example
 * const audit = auditRound(round, store.allReduceReports(round));
 * const bad = audit.contributions.filter((c) => !c.valid);
 */
export function auditRound(round: string, reports: readonly AllReduceReportRecord[]): RoundAudit {
  const byPeer = new Map<
    string,
    Map<string, { v: Omit<ContributionVariant, 'reporters'>; reporters: string[] }>
  >();
  const means = new Map<string, string[]>();
  for (const r of reports) {
    const list = means.get(r.mean) ?? [];
    list.push(r.reporterPeer);
    means.set(r.mean, list);
    for (const c of r.contributions) {
      const forms = byPeer.get(c.peer) ?? new Map();
      byPeer.set(c.peer, forms);
      const key = `${c.volunteer}/${c.sha256}/${c.signature}`;
      const f = forms.get(key) ?? {
        v: { volunteer: c.volunteer, sha256: c.sha256, signature: c.signature, verdict: c.verdict },
        reporters: [],
      };
      forms.set(key, f);
      f.reporters.push(r.reporterPeer);
    }
  }
  return {
    round,
    reports,
    contributions: [...byPeer].map(([peer, forms]) => {
      const variants = [...forms.values()].map((f) => ({ ...f.v, reporters: f.reporters }));
      const [only, ...others] = variants;
      const consistent = only !== undefined && others.length === 0;
      return { peer, variants, consistent, valid: consistent && only.verdict === 'valid' };
    }),
    means: [...means].map(([sha256, reporters]) => ({ sha256, reporters })),
  };
}

/** A contribution whose reported hash is not what the member should have contributed. */
export interface WrongContribution {
  readonly peer: string;
  /** The volunteer that signed the wrong hash (the hub issued `peer` to it when `valid`). */
  readonly volunteer: string;
  readonly reported: string;
  readonly expected: string;
  /** Whether the signature verified: a valid one means the volunteer cannot deny it. */
  readonly signed: boolean;
}

/**
 * The later check: given what each member should have contributed (SHA-256 by peer id, from a
 * recomputation or a replica), names every contribution of the round that differs, with the
 * volunteer behind it. Peers absent from `expected` are not judged. Throws 'input/invalid' when
 * the round's reports disagree about a contribution (then the reports, not the peer, are suspect:
 * see `ContributionAudit.variants`).
 *
 * @example
 * const wrong = wrongContributions(audit, new Map([[peerA, shaA], [peerB, shaB]]));
 * // run the round again without wrong.map((w) => w.peer)
 */
export function wrongContributions(
  audit: RoundAudit,
  expected: ReadonlyMap<string, string>,
): WrongContribution[] {
  const out: WrongContribution[] = [];
  for (const c of audit.contributions) {
    const want = expected.get(c.peer);
    if (want === undefined) continue;
    if (!c.consistent) {
      throw new HearthError(
        'input/invalid',
        `round ${audit.round}: members reported ${c.variants.length} different contributions for ${c.peer}; compare the reports first.`,
        { details: { round: audit.round, peer: c.peer } },
      );
    }
    const v = at(c.variants, 0, `round ${audit.round}: contributions reported for ${c.peer}`);
    if (v.sha256 !== want) {
      out.push({
        peer: c.peer,
        volunteer: v.volunteer,
        reported: v.sha256,
        expected: want,
        signed: v.verdict === 'valid',
      });
    }
  }
  return out;
}
