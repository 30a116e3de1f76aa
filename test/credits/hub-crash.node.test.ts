// Crash safety of payment: `hearth hub` (a child process, real SQLite file) signs vouchers and
// relays claims on a real anvil; it is SIGKILLed between signing a voucher and the claim's
// receipt, and restarted on the same file. Whether the killed claim's transaction was mined or
// dropped, the address ends up paid exactly what it earned: never twice, never less. The contract's
// `claimed` is the only record of payment; the hub recomputes the cumulative amount from its
// ledger after the restart.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Address, Hex } from 'viem';
import { generatePrivateKey } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import { claimOnChain, readBalance, writeKeyFile } from '../../src/node/chain.ts';
import { type HubProcess, killHub, spawnHub } from '../node/crash-helpers.ts';
import { freshAddress, type TestChain, testChain } from './chain-helpers.ts';

let dir: string;
let chain: TestChain;
let hub: HubProcess | undefined;
const db = () => join(dir, 'hub.db');
let flags: string[];

/** Earned per address: several granted ledger entries of a bound volunteer, written before the hub starts. */
const EARNED = { a: 3n * 1_250_000n + 7n, b: 2n * 4_000_000n };
let addrA: Address;
let addrB: Address;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hearth-pay-crash-'));
  chain = await testChain();
  const relayer = chain.anvil.accounts[2]?.privateKey;
  if (!relayer) throw new Error('anvil gave too few accounts');
  writeKeyFile(join(dir, 'signer.key'), chain.hubKey);
  writeKeyFile(join(dir, 'relayer.key'), relayer);
  flags = [
    '--chain-rpc',
    chain.anvil.rpcUrl,
    '--credit-contract',
    chain.contract,
    '--signer-key-file',
    join(dir, 'signer.key'),
    '--relayer-key-file',
    join(dir, 'relayer.key'),
  ];
  addrA = freshAddress();
  addrB = freshAddress();
  const s = new SqliteStore(db());
  s.bindWallet({ volunteer: 'vol-a', address: addrA, boundAt: 1 });
  s.bindWallet({ volunteer: 'vol-b', address: addrB, boundAt: 1 });
  for (let i = 0; i < 3; i++)
    s.addCredit({ volunteer: 'vol-a', shard: `j/${i}`, job: 'j', credits: 1_250_000n, status: 'granted' });
  s.addCredit({ volunteer: 'vol-a', shard: 'j/3', job: 'j', credits: 7n, status: 'granted' });
  s.addCredit({ volunteer: 'vol-a', shard: 'j/4', job: 'j', credits: 99n, status: 'void' });
  for (let i = 0; i < 2; i++)
    s.addCredit({ volunteer: 'vol-b', shard: `k/${i}`, job: 'k', credits: 4_000_000n, status: 'granted' });
  s.close();
}, 120_000);

afterAll(async () => {
  if (hub) await killHub(hub);
  await chain?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the relayed claim of `address` and returns without waiting for it. */
function claimInFlight(h: HubProcess, address: Address): Promise<number> {
  return fetch(`${h.url}/v1/wallet/${address}/claim`, { method: 'POST', body: '{}' }).then(
    (r) => r.status,
    () => 0,
  );
}

/** Waits until the chain's pool holds a transaction (automine is off), returns its hash. */
async function pendingTx(): Promise<Hex> {
  for (let i = 0; i < 400; i++) {
    const pool = (await chain.test.request({ method: 'txpool_content' as never })) as {
      pending: Record<string, Record<string, { hash: Hex }>>;
    };
    for (const byNonce of Object.values(pool.pending))
      for (const tx of Object.values(byNonce)) return tx.hash;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no claim transaction reached the pool');
}

describe('hearth hub with a credit contract', () => {
  it('refuses to start with a signer key the contract does not trust, or a key file others can read', async () => {
    writeKeyFile(join(dir, 'stranger.key'), generatePrivateKey());
    const wrong = flags.map((f) => (f.endsWith('signer.key') ? join(dir, 'stranger.key') : f));
    await expect(spawnHub(db(), 60_000, wrong)).rejects.toThrow(
      /trusts 0x[0-9a-fA-F]{40}, not this key's address/,
    );
    chmodSync(join(dir, 'stranger.key'), 0o644);
    await expect(spawnHub(db(), 60_000, wrong)).rejects.toThrow(/open to group or others/);
  }, 120_000);
});

describe('a hub SIGKILLed between signing a voucher and the claim’s receipt', () => {
  it('the transaction mined after the kill: after the restart nothing more is paid; the address holds exactly what it earned', async () => {
    hub = await spawnHub(db(), 60_000, flags);
    // A voucher signed before the crash: anyone may still submit it later.
    const before = (await (await fetch(`${hub.url}/v1/wallet/${addrA}/voucher`)).json()) as {
      amount: string;
      expiry: string;
      signature: Hex;
    };
    expect(BigInt(before.amount)).toBe(EARNED.a);
    await chain.test.setAutomine(false);
    const status = claimInFlight(hub, addrA);
    await pendingTx();
    await killHub(hub);
    expect(await status).toBe(0);
    await chain.test.mine({ blocks: 1 });
    await chain.test.setAutomine(true);

    hub = await spawnHub(db(), 60_000, flags);
    const again = await fetch(`${hub.url}/v1/wallet/${addrA}/claim`, { method: 'POST', body: '{}' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('voucher/nothing-to-claim');
    // The voucher signed before the crash mints nothing either.
    await expect(
      claimOnChain(
        chain.relayer,
        chain.contract,
        { account: addrA, amount: BigInt(before.amount), expiry: BigInt(before.expiry) },
        before.signature,
      ),
    ).rejects.toMatchObject({ code: 'voucher/nothing-to-claim' });
    expect(await readBalance(chain.test, chain.contract, addrA)).toBe(EARNED.a);
    await killHub(hub);
    hub = undefined;
  }, 180_000);

  it('the transaction dropped with the hub: after the restart the claim pays it in full, once', async () => {
    hub = await spawnHub(db(), 60_000, flags);
    await chain.test.setAutomine(false);
    const status = claimInFlight(hub, addrB);
    const hash = await pendingTx();
    await killHub(hub);
    expect(await status).toBe(0);
    await chain.test.dropTransaction({ hash });
    await chain.test.setAutomine(true);
    expect(await readBalance(chain.test, chain.contract, addrB)).toBe(0n);

    hub = await spawnHub(db(), 60_000, flags);
    const paid = await fetch(`${hub.url}/v1/wallet/${addrB}/claim`, { method: 'POST', body: '{}' });
    expect(paid.status).toBe(200);
    expect(((await paid.json()) as { minted: string }).minted).toBe(EARNED.b.toString());
    const twice = await fetch(`${hub.url}/v1/wallet/${addrB}/claim`, { method: 'POST', body: '{}' });
    expect(twice.status).toBe(409);
    expect(await readBalance(chain.test, chain.contract, addrB)).toBe(EARNED.b);
  }, 180_000);
});
