// The hub's wallet half (src/hub/wallets.ts) on a MemoryStore: Sign-In with Ethereum binding with
// every refusal the issue names, what an address has earned (volunteer and embedding-site shares),
// and the cumulative voucher's EIP-712 signature. Real secp256k1 keys and signatures (viem); no
// chain is needed here — the contract's side is test/credits/.
import { type Address, getAddress, type Hex, verifyTypedData } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createSiweMessage } from 'viem/siwe';
import { describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { MemoryStore } from '../../src/hub/memory-store.ts';
import { Scheduler } from '../../src/hub/scheduler.ts';
import { HubWallets, type SiweTerms, siteShare } from '../../src/hub/wallets.ts';
import { creditUnits } from '../../src/protocol/credit.ts';
import { CAPS, result, truth, wgslManifest } from './fixtures.ts';

const CONTRACT = getAddress(`0x${'c0'.repeat(20)}`);
const CHAIN = 31337;
const ORIGIN = 'http://127.0.0.1:8787';
const DOMAIN = { name: 'Hearth Credit', version: '1', chainId: CHAIN, verifyingContract: CONTRACT } as const;
const TYPES = {
  Voucher: [
    { name: 'account', type: 'address' },
    { name: 'amount', type: 'uint256' },
    { name: 'expiry', type: 'uint256' },
  ],
} as const;

function setup(opts: { embedShareBps?: number } = {}) {
  let now = 1_700_000_000_000;
  const store = new MemoryStore();
  const hubKey = privateKeyToAccount(generatePrivateKey());
  const wallets = new HubWallets({
    store,
    rules: { chainId: CHAIN, contract: CONTRACT, embedShareBps: opts.embedShareBps ?? 1_000 },
    sign: (v) =>
      hubKey.signTypedData({
        domain: DOMAIN,
        types: TYPES,
        primaryType: 'Voucher',
        message: { account: v.account as Address, amount: v.amount, expiry: v.expiry },
      }),
    now: () => now,
  });
  return {
    store,
    wallets,
    hubKey,
    advance: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}

/** The message a page builds from the hub's terms, signed by `key`. */
async function signed(
  terms: SiweTerms,
  key: ReturnType<typeof privateKeyToAccount>,
  over: Partial<Parameters<typeof createSiweMessage>[0]> = {},
): Promise<{ message: string; signature: Hex }> {
  const message = createSiweMessage({
    address: key.address,
    domain: terms.domain,
    uri: terms.uri,
    chainId: terms.chainId,
    nonce: terms.nonce,
    version: '1',
    statement: terms.statement,
    resources: [terms.resource],
    issuedAt: new Date(terms.issuedAt),
    expirationTime: new Date(terms.expirationTime),
    ...over,
  });
  return { message, signature: await key.signMessage({ message }) };
}

async function refusal(p: Promise<unknown>): Promise<HearthError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(HearthError);
    return e as HearthError;
  }
  throw new Error('expected a refusal');
}

describe('Sign-In with Ethereum binding', () => {
  it('binds the signer’s address to the volunteer; binding the same address again is a no-op', async () => {
    const { wallets } = setup();
    const alice = privateKeyToAccount(generatePrivateKey());
    const terms = wallets.terms('vol-a', ORIGIN);
    expect(terms).toMatchObject({
      domain: '127.0.0.1:8787',
      uri: `${ORIGIN}/`,
      chainId: CHAIN,
      resource: 'hearth:volunteer:vol-a',
    });
    const s = await signed(terms, alice);
    expect((await wallets.bind('vol-a', s.message, s.signature)).address).toBe(alice.address);
    expect(wallets.addressOf('vol-a')).toBe(alice.address);
    const again = await signed(wallets.terms('vol-a', ORIGIN), alice);
    expect((await wallets.bind('vol-a', again.message, again.signature)).address).toBe(alice.address);
  });

  it('refuses each bad message with wallet/siwe naming the field', async () => {
    const { wallets, advance } = setup();
    const alice = privateKeyToAccount(generatePrivateKey());
    const mallory = privateKeyToAccount(generatePrivateKey());
    const cases: [string, () => Promise<{ message: string; signature: Hex }>, string, string][] = [
      [
        'wrong domain',
        async () => signed(wallets.terms('v', ORIGIN), alice, { domain: 'evil.example' }),
        'domain',
        'vol',
      ],
      [
        'wrong chain',
        async () => signed(wallets.terms('v', ORIGIN), alice, { chainId: 1 }),
        'chainId',
        'vol',
      ],
      [
        'expired message',
        async () => signed(wallets.terms('v', ORIGIN), alice, { expirationTime: new Date(0) }),
        'expirationTime',
        'vol',
      ],
      [
        'another volunteer’s identity',
        async () =>
          signed(wallets.terms('v', ORIGIN), alice, { resources: ['hearth:volunteer:someone-else'] }),
        'resources',
        'vol',
      ],
      [
        'another address’s signature',
        async () => {
          const s = await signed(wallets.terms('v', ORIGIN), alice);
          return { message: s.message, signature: await mallory.signMessage({ message: s.message }) };
        },
        'signature',
        'vol',
      ],
      [
        'a nonce the hub never issued',
        async () => signed(wallets.terms('v', ORIGIN), alice, { nonce: 'abcdefgh12345678' }),
        'nonce',
        'vol',
      ],
    ];
    for (const [what, make, field] of cases) {
      const s = await make();
      const e = await refusal(wallets.bind('v', s.message, s.signature));
      expect(e.code, what).toBe('wallet/siwe');
      expect(e.details.field, what).toBe(field);
    }
    // A nonce issued to another volunteer.
    const theirs = await signed(wallets.terms('other', ORIGIN), alice);
    expect((await refusal(wallets.bind('v', theirs.message, theirs.signature))).details.field).toBe('nonce');
    // A reused nonce: the first bind uses it up.
    const once = await signed(wallets.terms('v', ORIGIN), alice);
    await wallets.bind('v', once.message, once.signature);
    expect((await refusal(wallets.bind('v', once.message, once.signature))).details.field).toBe('nonce');
    // A stale nonce: terms older than five minutes.
    const stale = await signed(wallets.terms('w', ORIGIN), alice, {
      expirationTime: new Date(Date.UTC(2100, 0, 1)),
    });
    advance(5 * 60_000 + 1);
    expect((await refusal(wallets.bind('w', stale.message, stale.signature))).details.field).toBe('nonce');
    // Not an EIP-4361 message at all.
    expect((await refusal(wallets.bind('w', 'hello', once.signature))).code).toBe('wallet/siwe');
    // Nothing bound by any of it, except the one good binding.
    expect(wallets.addressOf('w')).toBeUndefined();
    expect(wallets.addressOf('v')).toBe(alice.address);
  });

  it('refuses a second address for a bound volunteer: a binding is for good', async () => {
    const { wallets } = setup();
    const alice = privateKeyToAccount(generatePrivateKey());
    const bob = privateKeyToAccount(generatePrivateKey());
    const a = await signed(wallets.terms('v', ORIGIN), alice);
    await wallets.bind('v', a.message, a.signature);
    const b = await signed(wallets.terms('v', ORIGIN), bob);
    const e = await refusal(wallets.bind('v', b.message, b.signature));
    expect(e.code).toBe('wallet/bound');
    expect(e.message).toContain(alice.address);
    expect(wallets.addressOf('v')).toBe(alice.address);
  });
});

describe('earned credit and cumulative vouchers', () => {
  it('sums granted credit of the address’s volunteers and its sites’ shares, exactly; pending apart', () => {
    const { store, wallets } = setup();
    const alice = getAddress(`0x${'a1'.repeat(20)}`);
    const site = getAddress(`0x${'5e'.repeat(20)}`);
    store.bindWallet({ volunteer: 'v1', address: alice, boundAt: 0 });
    store.bindWallet({ volunteer: 'v2', address: alice, boundAt: 0 });
    const embed = {
      site: 'https://news.example',
      payout: site.toLowerCase(),
      payoutCredits: siteShare(1_000_003n, 1_000),
    };
    store.addCredit({
      volunteer: 'v1',
      shard: 'j/0',
      job: 'j',
      credits: 1_000_003n,
      status: 'granted',
      ...embed,
    });
    store.addCredit({ volunteer: 'v2', shard: 'j/1', job: 'j', credits: 7n, status: 'granted' });
    store.addCredit({ volunteer: 'v2', shard: 'j/2', job: 'j', credits: 11n, status: 'pending' });
    store.addCredit({ volunteer: 'v2', shard: 'j/3', job: 'j', credits: 13n, status: 'void' });
    store.addCredit({
      volunteer: 'x',
      shard: 'j/1',
      job: 'j',
      credits: 500n,
      status: 'granted',
      ...embed,
      payoutCredits: 50n,
    });
    expect(siteShare(1_000_003n, 1_000)).toBe(100_000n);
    expect(wallets.earned(alice)).toEqual({
      asVolunteer: 1_000_003n - 100_000n + 7n,
      asSite: 0n,
      total: 900_010n,
      pending: 11n,
    });
    expect(wallets.earned(site)).toEqual({ asVolunteer: 0n, asSite: 100_050n, total: 100_050n, pending: 0n });
    // Nothing is lost or made up by the split: the two shares are the credit.
    expect(wallets.earned(alice).total + wallets.earned(site).total).toBe(1_000_003n + 7n + 50n);
  });

  it('signs a voucher the contract’s EIP-712 domain verifies, for the EIP-55 account, whatever case was asked', async () => {
    const { store, wallets, hubKey, now } = setup();
    const alice = getAddress(`0x${'a1'.repeat(20)}`);
    store.bindWallet({ volunteer: 'v1', address: alice, boundAt: 0 });
    store.addCredit({ volunteer: 'v1', shard: 'j/0', job: 'j', credits: 42n, status: 'granted' });
    const v = await wallets.voucher(alice.toLowerCase());
    expect(v).toMatchObject({ account: alice, amount: 42n, chainId: CHAIN, contract: CONTRACT });
    expect(v.expiry).toBe(BigInt(Math.floor(now() / 1000) + 86_400));
    const ok = await verifyTypedData({
      address: hubKey.address,
      domain: DOMAIN,
      types: TYPES,
      primaryType: 'Voucher',
      message: { account: alice, amount: v.amount, expiry: v.expiry },
      signature: v.signature,
    });
    expect(ok).toBe(true);
    // An address nobody bound has earned nothing: a voucher of 0.
    expect((await wallets.voucher(`0x${'99'.repeat(20)}`)).amount).toBe(0n);
    await expect(wallets.voucher('0x1234')).rejects.toThrow(/not an Ethereum address/);
  });

  it('a volunteer who binds late receives everything it accrued before', async () => {
    const { store, wallets } = setup();
    const sched = new Scheduler(store, { honeypotRate: 0 });
    const j = sched.submit(wgslManifest(1, { replication: 1, maxReplicas: 1 }), 0);
    const g = sched.lease('v1', CAPS, 0)!;
    await sched.submitResult('v1', await result(g.shard, j, truth(0)), 1);
    const alice = privateKeyToAccount(generatePrivateKey());
    expect(wallets.earned(alice.address).total).toBe(0n);
    const s = await signed(wallets.terms('v1', ORIGIN), alice);
    await wallets.bind('v1', s.message, s.signature);
    expect(wallets.earned(alice.address).total).toBe(creditUnits(100, 0.5));
  });
});

describe('researcher budgets', () => {
  it('refuses a job whose planned credit exceeds what is left, with the numbers; closed jobs hold what they granted', async () => {
    const store = new MemoryStore();
    const sched = new Scheduler(store, { honeypotRate: 0 });
    const m = wgslManifest(2, { replication: 1, maxReplicas: 2 });
    const perShard = creditUnits(100, 0.5);
    const planned = 2n * 2n * perShard;
    const budget = planned + planned / 2n;
    const j = sched.submit(m, 0, { owner: 'alice', budget });
    expect(sched.budgetUse('alice', budget)).toEqual({ budget, used: planned, left: planned / 2n });
    let refused: unknown;
    try {
      sched.submit(m, 0, { owner: 'alice', budget });
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(HearthError);
    expect((refused as HearthError).code).toBe('budget/exceeded');
    expect((refused as HearthError).details).toEqual({
      planned: planned.toString(),
      used: planned.toString(),
      budget: budget.toString(),
    });
    // Another researcher's budget is its own; the admin (no owner) has none.
    expect(() => sched.submit(m, 0, { owner: 'bob', budget: planned })).not.toThrow();
    expect(() => sched.submit(m, 0)).not.toThrow();
    // Once alice's job is done it holds only what it granted (one result per shard, not two).
    for (let i = 0; i < 2; i++) {
      const g = sched.lease(`v${i}`, CAPS, 0)!;
      if (g.job !== j) throw new Error('expected alice’s job first');
      await sched.submitResult(`v${i}`, await result(g.shard, j, truth(store.getShard(g.shard)!.index)), 1);
    }
    expect(store.getJob(j)?.status).toBe('done');
    expect(sched.budgetUse('alice', budget).used).toBe(2n * perShard);
    expect(() => sched.submit(m, 0, { owner: 'alice', budget })).not.toThrow();
  });
});
