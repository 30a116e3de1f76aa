// Vouchers off chain: the fast digest is viem's EIP-712 hash exactly, a signature recovers to its
// key (and an altered voucher to some other address), both ways of holding the key sign the same
// bytes, the wire form round-trips and its parser names the bad field, and refusals map to their
// HearthError codes. The contract's side of the same bytes is in contract.node.test.ts.
import { type Address, type Hex, hashTypedData, toFunctionSelector } from 'viem';
import { generatePrivateKey, privateKeyToAccount, toAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { HearthError, isHearthError } from '../../src/core/errors.ts';
import { claimError, skipReason, VOUCHER_REFUSALS, voucherRefusal } from '../../src/credits/claim-errors.ts';
import {
  MAX_VOUCHER_AMOUNT,
  parseSignedVoucherWire,
  parseVoucherWire,
  recoverVoucherSigner,
  signedVoucherToWire,
  signVoucher,
  VOUCHER_TYPES,
  type Voucher,
  verifyVoucher,
  voucherDigest,
  voucherDomain,
  voucherToWire,
} from '../../src/credits/voucher.ts';

const CONTRACT = '0x5FbDB2315678afecb367f032d93F642f64180aa3' as Address;
const domain = voucherDomain(31337, CONTRACT);
const key = generatePrivateKey();
const hub = privateKeyToAccount(key);
const account = privateKeyToAccount(generatePrivateKey()).address;
const voucher: Voucher = { account, amount: 12_345_678n, expiry: 1_900_000_000n };

/** The `details.path` of the HearthError `f` throws. */
function pathOf(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    if (isHearthError(e, 'input/invalid')) return e.details.path;
    throw e;
  }
  return 'no error';
}

describe('voucher digest and signatures', () => {
  it('the digest equals viem’s EIP-712 hash, at the edges of every field and across domains', () => {
    const cases: [ReturnType<typeof voucherDomain>, Voucher][] = [
      [domain, voucher],
      [domain, { account, amount: 0n, expiry: 0n }],
      [domain, { account, amount: 2n ** 256n - 1n, expiry: 2n ** 256n - 1n }],
      [voucherDomain(1, CONTRACT), voucher],
      [voucherDomain(2 ** 40, account), { ...voucher, account: CONTRACT }],
    ];
    for (const [d, v] of cases) {
      expect(voucherDigest(d, v)).toBe(
        hashTypedData({ domain: d, types: VOUCHER_TYPES, primaryType: 'Voucher', message: v }),
      );
    }
    expect(pathOf(() => voucherDigest(domain, { ...voucher, amount: -1n }))).toBe('voucher.amount');
    expect(pathOf(() => voucherDigest(domain, { ...voucher, expiry: 2n ** 256n }))).toBe('voucher.expiry');
    expect(pathOf(() => voucherDigest(domain, { ...voucher, account: '0x12' as Address }))).toBe(
      'voucher.account',
    );
  });

  it('signs the same bytes from a key, a LocalAccount and viem’s signTypedData; recovers the hub’s address', async () => {
    const typed = await hub.signTypedData({
      domain,
      types: VOUCHER_TYPES,
      primaryType: 'Voucher',
      message: voucher,
    });
    const fromKey = await signVoucher(key, domain, voucher);
    const fromAccount = await signVoucher(hub, domain, voucher);
    // An account that can only sign typed data (a remote or hardware signer).
    const remote = toAccount({
      address: hub.address,
      signMessage: (p) => hub.signMessage(p),
      signTransaction: (t) => hub.signTransaction(t),
      signTypedData: (t) => hub.signTypedData(t),
    });
    const fromRemote = await signVoucher(remote, domain, voucher);
    expect(new Set([typed, fromKey, fromAccount, fromRemote]).size).toBe(1);
    expect(fromKey).toMatch(/^0x[0-9a-f]{130}$/);
    expect(await recoverVoucherSigner(domain, voucher, fromKey)).toBe(hub.address);
    expect(await verifyVoucher(domain, voucher, fromKey, hub.address)).toBe(true);
  });

  it('an altered voucher, or another domain, recovers to another address; garbage never verifies', async () => {
    const sig = await signVoucher(key, domain, voucher);
    for (const v of [
      { ...voucher, amount: voucher.amount + 1n },
      { ...voucher, expiry: 1n },
      { ...voucher, account: CONTRACT },
    ]) {
      expect(await recoverVoucherSigner(domain, v, sig)).not.toBe(hub.address);
      expect(await verifyVoucher(domain, v, sig, hub.address)).toBe(false);
    }
    expect(await verifyVoucher(voucherDomain(1, CONTRACT), voucher, sig, hub.address)).toBe(false);
    expect(await verifyVoucher(voucherDomain(31337, account), voucher, sig, hub.address)).toBe(false);
    expect(await verifyVoucher(domain, voucher, '0x1234' as Hex, hub.address)).toBe(false);
    await expect(recoverVoucherSigner(domain, voucher, '0x1234' as Hex)).rejects.toThrow();
  });

  it('refuses a domain with a bad chain id or contract, and a malformed private key', async () => {
    expect(pathOf(() => voucherDomain(0, CONTRACT))).toBe('chainId');
    expect(pathOf(() => voucherDomain(1.5, CONTRACT))).toBe('chainId');
    expect(pathOf(() => voucherDomain(1, '0xnope' as Address))).toBe('contract');
    expect(voucherDomain(1n, CONTRACT.toLowerCase() as Address).verifyingContract).toBe(CONTRACT);
    await expect(signVoucher('0x1234' as Hex, domain, voucher)).rejects.toMatchObject({
      details: { path: 'signer' },
    });
  });
});

describe('voucher wire form', () => {
  it('round-trips through JSON with amounts as decimal strings', async () => {
    const signature = await signVoucher(key, domain, voucher);
    const json = JSON.stringify(signedVoucherToWire({ voucher, signature }));
    expect(JSON.parse(json)).toEqual({ account, amount: '12345678', expiry: '1900000000', signature });
    expect(parseSignedVoucherWire(JSON.parse(json))).toEqual({ voucher, signature });
    expect(parseVoucherWire(voucherToWire(voucher))).toEqual(voucher);
    const max = { account: account.toLowerCase(), amount: MAX_VOUCHER_AMOUNT.toString(), expiry: '0' };
    expect(parseVoucherWire(max)).toEqual({ account, amount: MAX_VOUCHER_AMOUNT, expiry: 0n });
  });

  it('names the bad field', () => {
    const wire = { ...voucherToWire(voucher), signature: `0x${'ab'.repeat(65)}` };
    const bad: [unknown, string][] = [
      [null, 'voucher'],
      [[], 'voucher'],
      [{ ...wire, account: undefined }, 'voucher.account'],
      [{ ...wire, account: '0x1234' }, 'voucher.account'],
      [
        { ...wire, account: `${account.slice(0, -1)}${account.slice(-1) === 'a' ? 'A' : 'a'}` },
        'voucher.account',
      ],
      [{ ...wire, amount: 5 }, 'voucher.amount'],
      [{ ...wire, amount: '-1' }, 'voucher.amount'],
      [{ ...wire, amount: '01' }, 'voucher.amount'],
      [{ ...wire, amount: '1.5' }, 'voucher.amount'],
      [{ ...wire, amount: (MAX_VOUCHER_AMOUNT + 1n).toString() }, 'voucher.amount'],
      [{ ...wire, amount: '9'.repeat(10_000) }, 'voucher.amount'],
      [{ ...wire, expiry: (2n ** 64n).toString() }, 'voucher.expiry'],
      [{ ...wire, expiry: '' }, 'voucher.expiry'],
      [{ ...wire, signature: '0x1234' }, 'voucher.signature'],
      [{ ...wire, signature: `0x${'zz'.repeat(65)}` }, 'voucher.signature'],
      [{ ...wire, signature: undefined }, 'voucher.signature'],
    ];
    for (const [v, path] of bad) expect([v, pathOf(() => parseSignedVoucherWire(v))]).toEqual([v, path]);
    expect(pathOf(() => parseVoucherWire({ ...wire, amount: 'x' }, 'claims[3]'))).toBe('claims[3].amount');
  });

  it('a bad field’s message says what was expected and shows a bounded slice of what came', () => {
    try {
      parseVoucherWire({ ...voucherToWire(voucher), amount: '7'.repeat(5000) });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(HearthError);
      expect((e as Error).message).toMatch(/^voucher\.amount: expected a decimal string/);
      expect((e as Error).message.length).toBeLessThan(300);
    }
  });
});

describe('refusals as HearthErrors', () => {
  it('maps every ClaimSkipped reason selector to the contract error’s name, and unknown ones to undefined', () => {
    for (const name of Object.keys(VOUCHER_REFUSALS)) {
      expect(skipReason(toFunctionSelector(`${name}()`))).toBe(name);
    }
    expect(skipReason('0x12345678')).toBeUndefined();
  });

  it('gives each refusal its code and a message that says what to do', () => {
    const e = voucherRefusal('SignerRetired', { account });
    expect(e.code).toBe('voucher/signer-retired');
    expect(e.message).toMatch(/fresh voucher/);
    expect(e.details).toEqual({ refusal: 'SignerRetired', account });
    const passthrough = new HearthError('chain/key-file', 'x');
    expect(claimError(passthrough)).toBe(passthrough);
    expect(claimError(new Error('boom')).code).toBe('chain/reverted');
  });
});
