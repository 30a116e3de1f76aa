// Key files refuse to be read when others could read them, or when they hold no key — and never
// show the key; `hearth chain`'s start (startLocalChain) leaves a deployed contract whose signer is
// the key in signer.key, a funded relayer in relayer.key, and the flags for `hearth hub`.
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicClient, type Hex, http } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { getBalance } from 'viem/actions';
import { afterAll, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import { signVoucher, voucherDomain } from '../../src/credits/voucher.ts';
import {
  claimOnChain,
  inspectCreditContract,
  readBalance,
  readKeyFile,
  walletFor,
  writeKeyFile,
} from '../../src/node/chain.ts';
import { startLocalChain } from '../../src/node/cli-chain.ts';
import { freshAddress } from './chain-helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'hearth-keys-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The HearthError `f` throws: its code and message. */
function failure(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (isHearthError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  return { code: 'none', message: '' };
}

describe('key files', () => {
  const key = generatePrivateKey();

  it('writes owner-only (0600) whatever the umask, and reads the key back', () => {
    const file = join(tmp, 'a.key');
    const old = process.umask(0);
    try {
      writeKeyFile(file, key);
    } finally {
      process.umask(old);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readKeyFile(file)).toBe(key);
    writeFileSync(file, `\n  ${key}  \n`);
    expect(readKeyFile(file)).toBe(key);
  });

  it('refuses a file group or others may read or write, naming the mode and the fix, never the key', () => {
    const file = join(tmp, 'b.key');
    writeKeyFile(file, key);
    for (const mode of [0o644, 0o640, 0o604, 0o620]) {
      chmodSync(file, mode);
      const f = failure(() => readKeyFile(file));
      expect(f.code).toBe('chain/key-file');
      expect(f.message).toContain(`mode ${mode.toString(8)}`);
      expect(f.message).toContain(`chmod 600 ${file}`);
      expect(f.message).not.toContain(key.slice(2, 18));
    }
  });

  it('refuses a missing file, a malformed key and a key outside the curve, never echoing the contents', () => {
    expect(failure(() => readKeyFile(join(tmp, 'missing.key'))).code).toBe('chain/key-file');
    const cases: string[] = [
      key.slice(2), // no 0x
      `${key}00`,
      `${key}\n${key}`,
      'correct horse battery staple',
      `0x${'0'.repeat(64)}`,
      `0x${'f'.repeat(64)}`, // above the curve order
    ];
    for (const [i, text] of cases.entries()) {
      const file = join(tmp, `bad${i}.key`);
      writeFileSync(file, text, { mode: 0o600 });
      const f = failure(() => readKeyFile(file));
      expect([text, f.code]).toEqual([text, 'chain/key-file']);
      expect(f.message).not.toContain(text.replace(/^0x/, '').slice(0, 16));
    }
  });
});

describe('hearth chain', () => {
  it('starts anvil, deploys with signer.key’s key as signer, funds relayer.key, prints the hub’s flags; stops', async () => {
    const dir = join(tmp, 'chain');
    const chain = await startLocalChain({ dir, port: 0 });
    try {
      for (const f of [chain.signerKeyFile, chain.relayerKeyFile, chain.ownerKeyFile]) {
        expect(statSync(f).mode & 0o777).toBe(0o600);
      }
      const signerKey = readKeyFile(chain.signerKeyFile);
      const relayerKey = readKeyFile(chain.relayerKeyFile);
      expect(chain.hubFlags).toEqual([
        '--chain-rpc',
        chain.rpcUrl,
        '--credit-contract',
        chain.contract,
        '--signer-key-file',
        chain.signerKeyFile,
        '--relayer-key-file',
        chain.relayerKeyFile,
      ]);
      const client = createPublicClient({ transport: http(chain.rpcUrl) });
      const info = await inspectCreditContract(client, chain.contract);
      expect(info).toMatchObject({
        chainId: 31337,
        signer: privateKeyToAccount(signerKey).address,
        owner: chain.owner,
      });
      expect(await getBalance(client, { address: privateKeyToAccount(relayerKey).address })).toBeGreaterThan(
        10n ** 18n,
      );

      // What the hub will do with these files: sign a voucher, relay its claim.
      const account = freshAddress();
      const voucher = { account, amount: 2_000_000n, expiry: 2n ** 40n };
      const signature = await signVoucher(signerKey, voucherDomain(chain.chainId, chain.contract), voucher);
      const relayer = await walletFor(chain.rpcUrl, relayerKey, { chainId: 31337 });
      await claimOnChain(relayer, chain.contract, voucher, signature);
      expect(await readBalance(client, chain.contract, account)).toBe(2_000_000n);

      await expect(walletFor(chain.rpcUrl, relayerKey, { chainId: 1 })).rejects.toMatchObject({
        code: 'chain/mismatch',
      });
      await expect(inspectCreditContract(client, freshAddress())).rejects.toMatchObject({
        code: 'chain/mismatch',
      });
    } finally {
      await chain.close();
    }
    await expect(walletFor(chain.rpcUrl, generatePrivateKey() as Hex)).rejects.toMatchObject({
      code: 'chain/unreachable',
    });
  });
});
