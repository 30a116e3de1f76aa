// The hub's wallet surface over the wire, on a real hub (SQLite file, HTTP, WebSocket): Sign-In
// with Ethereum over an authenticated volunteer connection (the domain is the page's origin), the
// public wallet routes (rules, earned, a voucher whose EIP-712 signature verifies for the hub's
// key), `wallet/disabled` where the hub has no contract or no relayer, and researcher budgets
// (created over HTTP, a job over budget refused with 402 and the numbers, `GET /v1/budget`).
// The chain itself (claims, balances) is exercised in test/credits/ and test/ui/wallet.
import { type Address, getAddress, verifyTypedData } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siweMessage } from '../../src/credits/siwe.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { authenticated, TestKey } from './control-helpers.ts';
import { ADMIN, manifestJson, type TestHub, testHub, upload } from './hub-helpers.ts';

const CONTRACT = getAddress(`0x${'c0'.repeat(20)}`);
const SITE = 'https://embed.example';
const signerKey = generatePrivateKey();
const signer = privateKeyToAccount(signerKey);

describe('hub wallet routes and SIWE over the control plane', () => {
  let t: TestHub;
  let plain: TestHub;
  let ws: string;

  beforeAll(async () => {
    t = await testHub({ wallet: { chainId: 31337, contract: CONTRACT, signerKey }, embedShareBps: 2_500 });
    plain = await testHub();
    ws = `${t.hub.url.replace('http', 'ws')}/v1/volunteer`;
  });
  afterAll(async () => {
    await t.dispose();
    await plain.dispose();
  });

  it('binds a volunteer by SIWE: terms name the page’s origin and the volunteer; the credit push names the address', async () => {
    const key = await TestKey.create();
    const { conn } = await authenticated(ws, key, SITE);
    conn.send({ v: 2, type: 'siwe-request' });
    const terms = await conn.msg();
    if (terms.type !== 'siwe-terms') throw new Error(`expected terms, got ${JSON.stringify(terms)}`);
    expect(terms).toMatchObject({
      domain: 'embed.example',
      uri: `${SITE}/`,
      chainId: 31337,
      resource: `hearth:volunteer:${key.id}`,
    });
    const alice = privateKeyToAccount(generatePrivateKey());
    const message = siweMessage(terms, alice.address);
    conn.send({ v: 2, type: 'siwe-bind', message, signature: await alice.signMessage({ message }) });
    expect(await conn.msg()).toEqual({ v: 2, type: 'wallet-bound', address: alice.address });
    expect(t.hub.store.walletOf(key.id)?.address).toBe(alice.address);
    // The same message again: its nonce is used up.
    conn.send({ v: 2, type: 'siwe-bind', message, signature: await alice.signMessage({ message }) });
    const again = await conn.msg();
    expect(again).toMatchObject({ type: 'error', code: 'wallet/siwe' });
    await conn.close();
  });

  it('a hub without a contract refuses wallet messages and routes with wallet/disabled', async () => {
    const key = await TestKey.create();
    const { conn } = await authenticated(`${plain.hub.url.replace('http', 'ws')}/v1/volunteer`, key, SITE);
    conn.send({ v: 2, type: 'siwe-request' });
    expect(await conn.msg()).toMatchObject({ type: 'error', code: 'wallet/disabled' });
    await conn.close();
    const r = await fetch(`${plain.hub.url}/v1/wallet`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('wallet/disabled');
    // The widget's terms still say the site's share (credit stays in the ledger).
    expect(await (await fetch(`${plain.hub.url}/widget/terms`)).json()).toEqual({
      embedShareBps: 1_000,
      paysTokens: false,
    });
  });

  it('answers its rules, what an address earned, and a voucher signed by its key', async () => {
    const rules = await (await fetch(`${t.hub.url}/v1/wallet`)).json();
    expect(rules).toEqual({
      chainId: 31337,
      contract: CONTRACT,
      embedShareBps: 2_500,
      unitsPerCredit: '1000000',
      relayer: false,
    });
    expect(await (await fetch(`${t.hub.url}/widget/terms`)).json()).toEqual({
      embedShareBps: 2_500,
      paysTokens: true,
    });
    const bob = getAddress(`0x${'b0'.repeat(20)}`);
    t.hub.store.bindWallet({ volunteer: 'vol-bob', address: bob, boundAt: 1 });
    t.hub.store.addCredit({
      volunteer: 'vol-bob',
      shard: 'j/0',
      job: 'j',
      credits: 1_000n,
      status: 'granted',
      site: SITE,
      payout: bob,
      payoutCredits: 250n,
    });
    await t.hub.store.settled();
    const earned = await (await fetch(`${t.hub.url}/v1/wallet/${bob.toLowerCase()}`)).json();
    // As volunteer 750, as the site 250: the whole 1,000 comes back to the one address.
    expect(earned).toEqual({ address: bob, earned: '1000', asVolunteer: '750', asSite: '250', pending: '0' });
    const v = (await (await fetch(`${t.hub.url}/v1/wallet/${bob}/voucher`)).json()) as {
      account: Address;
      amount: string;
      expiry: string;
      signature: `0x${string}`;
    };
    expect(v.amount).toBe('1000');
    const ok = await verifyTypedData({
      address: signer.address,
      domain: { name: 'Hearth Credit', version: '1', chainId: 31337, verifyingContract: CONTRACT },
      types: {
        Voucher: [
          { name: 'account', type: 'address' },
          { name: 'amount', type: 'uint256' },
          { name: 'expiry', type: 'uint256' },
        ],
      },
      primaryType: 'Voucher',
      message: { account: v.account, amount: BigInt(v.amount), expiry: BigInt(v.expiry) },
      signature: v.signature,
    });
    expect(ok).toBe(true);
    // No relayer: a claim must be sent by the volunteer's own wallet.
    const claim = await fetch(`${t.hub.url}/v1/wallet/${bob}/claim`, { method: 'POST', body: '{}' });
    expect(claim.status).toBe(404);
    expect(((await claim.json()) as { error: { code: string } }).error.code).toBe('wallet/disabled');
    // A bad address is a 400 naming it.
    const bad = await fetch(`${t.hub.url}/v1/wallet/0x12/voucher`);
    expect(bad.status).toBe(400);
  });

  it('rate-limits vouchers per caller', async () => {
    const addr = `0x${'d0'.repeat(20)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 32; i++)
      statuses.push((await fetch(`${t.hub.url}/v1/wallet/${addr}/voucher`)).status);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(30);
    expect(statuses).toContain(429);
  });

  it('budgets: made over HTTP, a job over budget is refused with 402 and the numbers, GET /v1/budget shows use', async () => {
    const made = await fetch(`${t.hub.url}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'thrifty', budget: '100' }),
    });
    expect(made.status).toBe(201);
    const { token } = (await made.json()) as { token: string };
    const bad = await fetch(`${t.hub.url}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'floaty', budget: 10 }),
    });
    expect(bad.status).toBe(400);
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    // Two shards at up to 3 agreeing results, 50 credits each (100 FLOPs at 0.5): 300 planned; the budget is 100.
    const { manifest, blobs } = manifestJson(2, { maxReplicas: 3 });
    await upload(t.hub.url, token, blobs);
    const r = await fetch(`${t.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(manifest),
    });
    expect(r.status).toBe(402);
    const e = (
      (await r.json()) as { error: { code: string; message: string; details: Record<string, string> } }
    ).error;
    expect(e.code).toBe('budget/exceeded');
    expect(e.details).toEqual({ planned: '300000000', used: '0', budget: '100000000' });
    expect(e.message).toMatch(/up to 300 credits .* has 100 of its 100 left/);
    expect(await (await fetch(`${t.hub.url}/v1/budget`, { headers: auth })).json()).toEqual({
      name: 'thrifty',
      unlimited: false,
      used: '0',
      budget: '100000000',
      left: '100000000',
    });
    // A token without a budget: unlimited, and its job is taken.
    const free = createToken(t.hub.store, 'free');
    const ok = await fetch(`${t.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: { ...auth, authorization: `Bearer ${free.token}` },
      body: JSON.stringify(manifest),
    });
    expect(ok.status).toBe(201);
    expect(
      await (
        await fetch(`${t.hub.url}/v1/budget`, { headers: { authorization: `Bearer ${free.token}` } })
      ).json(),
    ).toEqual({
      name: 'free',
      unlimited: true,
      used: '300000000',
    });
  });
});
