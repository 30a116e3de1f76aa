import { describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import {
  CREDIT_DECIMALS,
  CREDIT_UNITS,
  creditReport,
  creditsToUnits,
  creditToWire,
  creditUnits,
  formatCredit,
  MAX_CREDIT_UNITS,
  MAX_SHARD_CREDIT_UNITS,
  parseCreditReport,
  parseCreditWire,
} from '../../src/protocol/credit.ts';
import { MANIFEST_LIMITS } from '../../src/protocol/manifest.ts';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof HearthError ? e.code : `not a HearthError: ${String(e)}`;
  }
  return undefined;
};

describe('credit base units', () => {
  it('is 10^CREDIT_DECIMALS base units per credit, with room for thousands of maximal shards in 64 bits', () => {
    expect(CREDIT_UNITS).toBe(10n ** BigInt(CREDIT_DECIMALS));
    expect(MAX_CREDIT_UNITS / MAX_SHARD_CREDIT_UNITS).toBeGreaterThanOrEqual(9_000n);
    // A shard of 10^12 FLOPs at 10^-9 credits per FLOP: billions of them fit.
    expect(MAX_CREDIT_UNITS / creditUnits(1e12, 1e-9)).toBeGreaterThan(9_000_000_000n);
  });

  it('multiplies FLOPs by the rate exactly, on the decimals written, and rounds down', () => {
    expect(creditUnits(2e9, 1e-9)).toBe(2n * CREDIT_UNITS);
    // In floats: 3 × 0.7 × 1e6 = 2099999.9999999995, which a floor would make 2,099,999.
    expect(creditUnits(3, 0.7)).toBe(2_100_000n);
    expect(creditUnits(3, 0.1)).toBe(300_000n); // 3 × 0.1 = 0.30000000000000004 in floats
    expect(creditUnits(1, 1e-7)).toBe(0n); // a tenth of a base unit
    expect(creditUnits(19, 1e-7)).toBe(1n); // 1.9 base units, rounded down
    expect(creditUnits(0, 1e6)).toBe(0n);
    expect(creditUnits(1.5e-7, 1e7)).toBe(1_500_000n); // exponents on both sides
    expect(creditUnits(2044 * 4, 0.5)).toBe(4088n * CREDIT_UNITS);
  });

  it('gives the same integer for every way of writing the same number', () => {
    for (const [flops, rate] of [
      [1e12, 1e-9],
      [1_000_000_000_000, 0.000000001],
      [1e12, 1e-9 * 1],
    ] as const) {
      expect(creditUnits(flops, rate)).toBe(1000n * CREDIT_UNITS);
    }
  });

  it('refuses a shard worth more than MAX_SHARD_CREDIT_UNITS, naming creditRate', () => {
    expect(creditUnits(1e9, 1)).toBe(MAX_SHARD_CREDIT_UNITS);
    expect(code(() => creditUnits(1e9 + 1, 1))).toBe('input/invalid');
    expect(() => creditUnits(MANIFEST_LIMITS.maxFlopsPerShard, MANIFEST_LIMITS.maxCreditRate)).toThrow(
      /manifest\.creditRate: .* over the 1000000000 one shard may earn/,
    );
    expect(code(() => creditUnits(Number.NaN, 1))).toBe('input/invalid');
    expect(code(() => creditUnits(1, -1))).toBe('input/invalid');
    expect(code(() => creditUnits(Number.POSITIVE_INFINITY, 1))).toBe('input/invalid');
  });

  it('formats base units for people from the integer', () => {
    expect(formatCredit(0n)).toBe('0');
    expect(formatCredit(1n)).toBe('0.000001');
    expect(formatCredit(1_500_000n)).toBe('1.5');
    expect(formatCredit(50n * CREDIT_UNITS)).toBe('50');
    expect(formatCredit(-2_000_001n)).toBe('-2.000001');
    // Past 2^53, where a float would lose the last digits.
    expect(formatCredit(MAX_CREDIT_UNITS)).toBe('9223372036854.775807');
  });

  it('carries base units in JSON as a decimal string and parses them back exactly', () => {
    const units = 2n ** 60n + 1n;
    const wire = JSON.parse(JSON.stringify({ granted: creditToWire(units) })) as { granted: unknown };
    expect(wire.granted).toBe('1152921504606846977');
    expect(parseCreditWire(wire.granted, 'granted')).toBe(units);
    expect(parseCreditWire(creditToWire(MAX_CREDIT_UNITS), 'x')).toBe(MAX_CREDIT_UNITS);
    for (const bad of [1, '1.5', '-1', '01', '', ' 1', '1e3', '9223372036854775808', null, 2n]) {
      expect(() => parseCreditWire(bad, 'granted')).toThrow(/^granted: expected credit base units/);
    }
  });

  it('converts a float amount of credits to the nearest base unit of its decimal form', () => {
    expect(creditsToUnits(0.30000000000000004)).toBe(300_000n);
    expect(creditsToUnits(0.0000015)).toBe(2n); // 0.0000015 × 1e6 = 1.4999999999999998 in floats
    expect(creditsToUnits(0.0000014999)).toBe(1n);
    expect(creditsToUnits(50)).toBe(50n * CREDIT_UNITS);
    expect(creditsToUnits(1e-7)).toBe(0n);
    expect(creditsToUnits(4088)).toBe(4_088_000_000n);
    expect(creditsToUnits(1e12)).toBe(10n ** 18n);
    expect(code(() => creditsToUnits(1e13))).toBe('input/invalid');
    expect(code(() => creditsToUnits(-1))).toBe('input/invalid');
  });

  it('reports a volunteer’s credit as decimal strings and reads the report back exactly', () => {
    const c = { pending: 2n ** 60n, granted: 50n * CREDIT_UNITS, pendingResults: 3 };
    const wire = JSON.parse(JSON.stringify(creditReport('v1', c))) as unknown;
    expect(wire).toEqual({
      volunteer: 'v1',
      unitsPerCredit: '1000000',
      pending: '1152921504606846976',
      granted: '50000000',
      pendingResults: 3,
    });
    expect(parseCreditReport(wire)).toEqual({ volunteer: 'v1', ...c });
    const w = wire as Record<string, unknown>;
    expect(() => parseCreditReport({ ...w, granted: 50 })).toThrow(
      /credits\.granted: expected credit base units/,
    );
    expect(() => parseCreditReport({ ...w, unitsPerCredit: '100' })).toThrow(/credits\.unitsPerCredit/);
    expect(() => parseCreditReport({ ...w, pendingResults: -1 })).toThrow(/credits\.pendingResults/);
    expect(() => parseCreditReport(null)).toThrow(/expected an object/);
  });
});
