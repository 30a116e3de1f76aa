// Credit to a wallet, end to end with real parts: anvil with HearthCredit deployed, a hub that signs
// vouchers and relays claims from a funded key, the volunteer page built by vite in headless
// Chromium (SwiftShader WebGPU), and a wallet injected the way an extension is (EIP-6963
// announcement and `window.ethereum`; src/node/dev-wallet.ts) whose key has no ETH at all. The
// volunteer says yes, connects the wallet, signs in (the only prompts: account access and the
// SIWE signature), earns credit for real WGSL shards, and claims through the hub's relayer: its
// token balance on the chain equals what the hub says it earned, its ETH is still zero. Then the
// embedding site's share: credit earned through the widget frame names the site's payout address,
// which claims its share the same way.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { getAddress } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { getBalance } from 'viem/actions';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolunteerSnapshot } from '../../src/client/controller.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { readBalance } from '../../src/node/chain.ts';
import { type DevWallet, installDevWallet } from '../../src/node/dev-wallet.ts';
import { chromiumArgs } from '../../src/node/volunteers.ts';
import { indexJob, waitFor } from '../client/client-helpers.ts';
import { type TestChain, testChain } from '../credits/chain-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';

let dir: string;
let chain: TestChain;
let hub: TestHub;
let token: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let wallet: DevWallet;
const volunteerKey = generatePrivateKey();
const logs: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-wallet-ui-'));
  chain = await testChain();
  await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: join(dir, 'dist') } });
  const relayerKey = chain.anvil.accounts[1]?.privateKey;
  if (!relayerKey) throw new Error('anvil gave no relayer account');
  hub = await testHub({
    pagesDir: join(dir, 'dist'),
    maxBlobBytes: 1 << 22,
    expireEveryMs: 100,
    allowedOrigins: [],
    wallet: {
      chainId: chain.anvil.chainId,
      contract: chain.contract,
      signerKey: chain.hubKey,
      relayer: { rpcUrl: chain.anvil.rpcUrl, key: relayerKey },
    },
  });
  token = createToken(hub.hub.store, 'alice').token;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: chromiumArgs('swiftshader'),
  });
  context = await browser.newContext({ viewport: { width: 800, height: 1400 } });
  await context.grantPermissions(['microphone']);
  wallet = await installDevWallet(context, {
    key: volunteerKey,
    rpcUrl: chain.anvil.rpcUrl,
    chainId: chain.anvil.chainId,
    name: 'Test Wallet',
  });
  page = await context.newPage();
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(`page error: ${e.message}`));
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await hub?.dispose();
  await chain?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const snapshot = () => page.evaluate('window.hearthVolunteer.snapshot') as Promise<VolunteerSnapshot>;

/** A WGSL job of `n` single-replica shards, submitted as alice. */
async function submitJob(n: number): Promise<string> {
  const { manifest, blobs } = await indexJob(n, { replication: 1, maxReplicas: 1 });
  await upload(hub.hub.url, token, blobs);
  const r = await fetch(`${hub.hub.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(manifest),
  });
  if (r.status !== 201) throw new Error(`submit: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { job: string }).job;
}

describe('a volunteer in Chromium is paid in tokens without holding ETH', () => {
  it('connects by EIP-6963, signs in, earns for real shards, claims through the relayer, sees the balance', async () => {
    const me = privateKeyToAccount(volunteerKey).address;
    expect(await getBalance(chain.test, { address: me })).toBe(0n);
    await page.goto(`${hub.hub.url}/volunteer/`);
    await page.locator('#consent-yes').click();
    await waitFor(
      async () => ['connected', 'idle', 'working'].includes((await snapshot()).state),
      120_000,
      'the volunteer to connect',
    ).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(await snapshot())} ${logs.join(' | ')}`);
    });

    // The wallet list shows the announced wallet by name; choosing it signs in.
    await page.locator('#wallet-connect').click();
    const choice = page.locator('#wallet-list button', { hasText: 'Test Wallet' });
    await choice.waitFor({ timeout: 10_000 });
    await choice.click();
    await waitFor(async () => (await snapshot()).wallet?.address === me, 30_000, 'the sign-in');
    expect(hub.hub.store.walletOf((await snapshot()).volunteerId ?? '')?.address).toBe(me);
    expect(await page.locator('#wallet-address').textContent()).toBe(me);

    // Real work: two single-replica WGSL shards, validated on arrival.
    const job = await submitJob(2);
    await waitFor(async () => hub.hub.store.getJob(job)?.status === 'done', 180_000, 'the job to finish');
    await hub.hub.store.settled();
    const earned = (await (await fetch(`${hub.hub.url}/v1/wallet/${me}`)).json()) as { earned: string };
    expect(BigInt(earned.earned)).toBeGreaterThan(0n);

    // Claim in one click: the hub relays; the page reads the chain through the wallet.
    await page.locator('#wallet-refresh').click();
    await waitFor(
      async () => (await snapshot()).wallet?.claimable !== null && (await snapshot()).wallet?.busy === null,
      30_000,
      'the figures',
    );
    await page.locator('#wallet-claim').click();
    await waitFor(
      async () => (await snapshot()).wallet?.message?.startsWith('Claimed') === true,
      60_000,
      'the claim',
    );
    await waitFor(
      async () => (await snapshot()).wallet?.claimable === '0',
      30_000,
      'the figures after the claim',
    );
    const onChain = await readBalance(chain.test, chain.contract, me);
    expect(onChain).toBe(BigInt(earned.earned));
    const w = (await snapshot()).wallet;
    expect(w?.balance).toBe(w?.earned);
    // No ETH was needed, and the wallet prompted only to connect and to sign in.
    expect(await getBalance(chain.test, { address: me })).toBe(0n);
    expect(wallet.prompts).toEqual(['eth_requestAccounts', 'personal_sign']);

    // Claiming again mints nothing and says so.
    const again = await fetch(`${hub.hub.url}/v1/wallet/${me}/claim`, { method: 'POST', body: '{}' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('voucher/nothing-to-claim');
  }, 420_000);

  it('the embedding site’s payout address claims its share of credit earned through the widget', async () => {
    // The share is fixed on each ledger entry made from a widget connection; the voucher for the
    // payout address sums those shares and the relayer pays it.
    const payout = getAddress(privateKeyToAccount(generatePrivateKey()).address);
    const embedded = hub.hub.store.ledger().filter((e) => e.status === 'granted');
    expect(embedded.length).toBeGreaterThan(0);
    // Entries as a widget volunteer's would be: the same credit, the site's 10% share recorded.
    hub.hub.store.transaction(() => {
      for (const [i, e] of embedded.entries()) {
        hub.hub.store.addCredit({
          volunteer: `widget-volunteer-${i}`,
          shard: e.shard,
          job: e.job,
          credits: e.credits,
          status: 'granted',
          site: 'https://news.example',
          payout,
          payoutCredits: e.credits / 10n,
        });
      }
    });
    await hub.hub.store.settled();
    const share = embedded.reduce((s, e) => s + e.credits / 10n, 0n);
    const r = await fetch(`${hub.hub.url}/v1/wallet/${payout}/claim`, { method: 'POST', body: '{}' });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { minted: string }).minted).toBe(share.toString());
    expect(await readBalance(chain.test, chain.contract, payout)).toBe(share);
  }, 120_000);
});
