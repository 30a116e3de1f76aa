// Credit is money (the wallet issue signs vouchers of it), so it is an integer of base units end to
// end — the ledger, the store, the wire — and never a float (DESIGN.md: "Credit is integer base
// units"). A float sum drifts (0.1 + 0.2 ≠ 0.3), and a voucher must name the same integer on the
// hub, in the volunteer's wallet and in the contract.
//
// The one conversion from work to money, `creditUnits`, is exact: the FLOPs and the job's rate
// are JSON numbers, read here as the shortest decimals that name them (what a person writes:
// `1e-9` is exactly 10⁻⁹, `0.3` is 3/10, not the nearest double), multiplied as integers, and
// rounded down to a whole base unit. Rounding down never pays for work nobody did; what it drops is
// under a millionth of a credit per shard.
import { defined } from '../core/at.ts';
import { HearthError } from '../core/errors.ts';

/**
 * Base units in one credit: credit is counted in micro-credits. A signed 64-bit integer (SQLite's
 * INTEGER) holds 9.2 × 10¹⁸ of them, 9.2 × 10¹² credits: nine billion shards of a thousand credits
 * (10¹² FLOPs at 10⁻⁹ credits per FLOP), or nine thousand at the most one shard may earn
 * (`MAX_SHARD_CREDIT_UNITS`).
 *
 * @example
 * formatCredit(3n * CREDIT_UNITS); // '3'
 */
export const CREDIT_UNITS = 1_000_000n;

/** Decimal digits after the point in a credit: `CREDIT_UNITS` is 10 to this power. */
export const CREDIT_DECIMALS = 6;

/**
 * The most base units one validated shard may earn: a billion credits. A job whose shard would earn
 * more is refused at submit (`manifest.creditRate`): a bound like `MANIFEST_LIMITS`, so that one
 * ledger entry is nowhere near the 64-bit limit (the manifest's own limits allow 10¹⁸ FLOPs at 10⁶
 * credits per FLOP, 10²⁴ credits).
 */
export const MAX_SHARD_CREDIT_UNITS = 10n ** 15n;

/** Largest value of a signed 64-bit integer: the most a stored credit amount may be. */
export const MAX_CREDIT_UNITS = 2n ** 63n - 1n;

/** A finite non-negative number as digits × 10^exp, from its shortest round-trip decimal form. */
function decimalOf(x: number, path: string): { digits: bigint; exp: number } {
  const m = Number.isFinite(x) && x >= 0 ? /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(x)) : null;
  if (!m) {
    throw new HearthError('input/invalid', `${path}: expected a finite number ≥ 0, got ${x}.`, {
      details: { path },
    });
  }
  const frac = m[2] ?? '';
  return { digits: BigInt(defined(m[1], 'integer digits') + frac), exp: Number(m[3] ?? 0) - frac.length };
}

/**
 * Base units earned by `flops` of validated work at `rate` credits per FLOP: ⌊flops × rate × 10⁶⌋,
 * computed exactly on the shortest decimal forms of both numbers (see the top of this file), so the
 * same manifest gives the same integer on every machine. Throws HearthError('input/invalid',
 * path `manifest.creditRate`) past `MAX_SHARD_CREDIT_UNITS`.
 *
 * @example
 * creditUnits(2e9, 1e-9);  // 2_000_000n: 2 credits
 * creditUnits(3, 0.7);     // 2_100_000n, where 3 × 0.7 × 1e6 in floats is 2099999.9999999995
 * creditUnits(1, 1e-7);    // 0n: a tenth of a base unit rounds down
 */
export function creditUnits(flops: number, rate: number): bigint {
  const f = decimalOf(flops, 'flops');
  const r = decimalOf(rate, 'manifest.creditRate');
  const product = f.digits * r.digits;
  const exp = f.exp + r.exp + CREDIT_DECIMALS;
  // A non-negative bigint division truncates: rounding down.
  const units = exp >= 0 ? product * 10n ** BigInt(exp) : product / 10n ** BigInt(-exp);
  if (units > MAX_SHARD_CREDIT_UNITS) {
    throw new HearthError(
      'input/invalid',
      `manifest.creditRate: a shard of ${flops} FLOPs at ${rate} credits per FLOP would earn ${formatCredit(units)} credits, over the ${formatCredit(MAX_SHARD_CREDIT_UNITS)} one shard may earn; lower creditRate.`,
      { details: { path: 'manifest.creditRate', flops, rate } },
    );
  }
  return units;
}

/**
 * A number of credits (a float: what a hub before integer credit stored) in base units: the nearest
 * whole base unit of its shortest decimal form, ties away from zero. Reading the decimal, not
 * computing x × 10⁶ in floats (which turns 0.0000015 into 1.4999999999999998), makes it exact and
 * the same everywhere. Throws HearthError('input/invalid') for a negative, non-finite or too large
 * amount.
 *
 * @example
 * creditsToUnits(0.30000000000000004); // 300_000n
 * creditsToUnits(0.0000015);           // 2n
 */
export function creditsToUnits(credits: number, path = 'credits'): bigint {
  const { digits, exp } = decimalOf(credits, path);
  const e = exp + CREDIT_DECIMALS;
  const d = 10n ** BigInt(Math.max(0, -e));
  const units = e >= 0 ? digits * 10n ** BigInt(e) : (digits + d / 2n) / d;
  if (units > MAX_CREDIT_UNITS) {
    throw new HearthError('input/invalid', `${path}: ${credits} credits do not fit 64-bit base units.`, {
      details: { path },
    });
  }
  return units;
}

/**
 * Base units as credits for people: the exact decimal, without trailing zeros, from the integer
 * (no float on the way).
 *
 * @example
 * formatCredit(1_500_000n); // '1.5'
 * formatCredit(1n);         // '0.000001'
 * formatCredit(0n);         // '0'
 */
export function formatCredit(units: bigint): string {
  const sign = units < 0n ? '-' : '';
  const abs = units < 0n ? -units : units;
  const whole = abs / CREDIT_UNITS;
  const frac = (abs % CREDIT_UNITS).toString().padStart(CREDIT_DECIMALS, '0').replace(/0+$/, '');
  return `${sign}${whole}${frac === '' ? '' : `.${frac}`}`;
}

/**
 * A number of credits a person wrote (`"1000"`, `"0.5"`, at most 6 decimals) in base units,
 * exactly: `--budget 1000` is 1,000,000,000 base units. Throws HearthError('input/invalid')
 * naming `path` for anything else.
 *
 * @example
 * parseCredits('2.5', '--budget'); // 2_500_000n
 */
export function parseCredits(s: string, path: string): bigint {
  const m = /^(\d{1,13})(?:\.(\d{1,6}))?$/.exec(s.trim());
  if (!m) {
    throw new HearthError(
      'input/invalid',
      `${path}: expected a number of credits like 1000 or 0.5 (at most 6 decimals, under 10^13), got ${JSON.stringify(s.slice(0, 40))}.`,
      { details: { path } },
    );
  }
  const frac = (m[2] ?? '').padEnd(CREDIT_DECIMALS, '0');
  return BigInt(defined(m[1], 'integer digits')) * CREDIT_UNITS + BigInt(frac);
}

/**
 * Base units as JSON carries them: a decimal string of the integer (JSON numbers are doubles, exact
 * only to 2⁵³, and `JSON.stringify` refuses a bigint).
 *
 * @example
 * JSON.stringify({ granted: creditToWire(50_000_000n) }); // '{"granted":"50000000"}'
 */
export function creditToWire(units: bigint): string {
  return units.toString();
}

const WIRE = /^(0|[1-9][0-9]{0,18})$/;

/**
 * Parses base units from the wire: a decimal string of a non-negative integer that fits a signed
 * 64-bit integer. Throws HearthError('input/invalid') naming `path` otherwise.
 *
 * @example
 * parseCreditWire('50000000', 'granted'); // 50_000_000n
 */
export function parseCreditWire(v: unknown, path: string): bigint {
  if (typeof v === 'string' && WIRE.test(v)) {
    const units = BigInt(v);
    if (units <= MAX_CREDIT_UNITS) return units;
  }
  throw new HearthError(
    'input/invalid',
    `${path}: expected credit base units as a decimal string of a whole number from 0 to ${MAX_CREDIT_UNITS}, got ${typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : typeof v}.`,
    { details: { path } },
  );
}

/**
 * A volunteer's credit as the hub's API answers it (`GET /v1/volunteers/:id/credits`): amounts in
 * base units as decimal strings, with the unit named so a reader needs nothing else.
 */
export interface CreditReport {
  readonly volunteer: string;
  /** `CREDIT_UNITS` as a decimal string: base units per credit. */
  readonly unitsPerCredit: string;
  /** Credit of results still awaiting validation, base units. */
  readonly pending: string;
  /** Credit of validated results, base units. */
  readonly granted: string;
  /** How many of its results await validation. */
  readonly pendingResults: number;
}

/**
 * The report the hub sends for these amounts.
 *
 * @example
 * creditReport('ab…', { pending: 0n, granted: 50_000_000n, pendingResults: 0 }).granted; // '50000000'
 */
export function creditReport(
  volunteer: string,
  c: { readonly pending: bigint; readonly granted: bigint; readonly pendingResults: number },
): CreditReport {
  return {
    volunteer,
    unitsPerCredit: creditToWire(CREDIT_UNITS),
    pending: creditToWire(c.pending),
    granted: creditToWire(c.granted),
    pendingResults: c.pendingResults,
  };
}

/**
 * Parses a `CreditReport` back into bigints (the CLI's side). Throws HearthError('input/invalid')
 * naming the bad field, and for a report in another unit than this build's `CREDIT_UNITS`.
 */
export function parseCreditReport(v: unknown): {
  volunteer: string;
  pending: bigint;
  granted: bigint;
  pendingResults: number;
} {
  const bad = (path: string, what: string) =>
    new HearthError('input/invalid', `credits.${path}: expected ${what}.`, {
      details: { path: `credits.${path}` },
    });
  if (typeof v !== 'object' || v === null) throw bad('', 'an object');
  const o = v as Record<string, unknown>;
  if (typeof o.volunteer !== 'string' || o.volunteer.length === 0 || o.volunteer.length > 256) {
    throw bad('volunteer', 'a volunteer id');
  }
  if (parseCreditWire(o.unitsPerCredit, 'credits.unitsPerCredit') !== CREDIT_UNITS) {
    throw bad('unitsPerCredit', `"${CREDIT_UNITS}" (a hub counting credit in another unit)`);
  }
  if (
    typeof o.pendingResults !== 'number' ||
    !Number.isSafeInteger(o.pendingResults) ||
    o.pendingResults < 0
  ) {
    throw bad('pendingResults', 'a whole number ≥ 0');
  }
  return {
    volunteer: o.volunteer,
    pending: parseCreditWire(o.pending, 'credits.pending'),
    granted: parseCreditWire(o.granted, 'credits.granted'),
    pendingResults: o.pendingResults,
  };
}
