// The embedding site and payout address a widget's hello carries: exact web origins, `0x` + 40 hex.
import { describe, expect, it } from 'vitest';
import { isPayoutAddress, isWebOrigin } from '../../src/protocol/embed.ts';

describe('embed attribution', () => {
  it('takes an origin only as a browser writes location.origin', () => {
    for (const o of [
      'https://news.example',
      'http://127.0.0.1:8080',
      'http://[::1]:3000',
      'https://xn--bcher-kva.example',
    ]) {
      expect([o, isWebOrigin(o)]).toEqual([o, true]);
    }
    for (const o of [
      'https://news.example/',
      'https://news.example/page',
      'https://news.example:443',
      'https://NEWS.example',
      'https://user@news.example',
      'ftp://news.example',
      'null',
      '',
      `https://${'a'.repeat(300)}.example`,
      42,
    ]) {
      expect([o, isWebOrigin(o)]).toEqual([o, false]);
    }
  });

  it('takes a payout address as 0x and 40 hex digits, in any case', () => {
    expect(isPayoutAddress('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed')).toBe(true);
    expect(isPayoutAddress(`0x${'0'.repeat(40)}`)).toBe(true);
    for (const p of [
      `0x${'0'.repeat(39)}`,
      `0x${'0'.repeat(41)}`,
      `0X${'0'.repeat(40)}`,
      `0x${'g'.repeat(40)}`,
      'a'.repeat(42),
      null,
    ]) {
      expect([p, isPayoutAddress(p)]).toEqual([p, false]);
    }
  });
});
