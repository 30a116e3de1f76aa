// HearthCredit on a real chain (anvil): a voucher mints what its account earned since its last
// claim and nothing more; every way a voucher can be wrong is refused with its own error; the
// signer rotates with a grace period; claimMany skips a bad voucher and pays the rest; a relayer
// pays the gas of a claim for an account that holds no ETH; the token is a working ERC-20 on its
// packed storage. Each case runs from the same snapshot of the freshly deployed contract.
import { type Address, BaseError, ContractFunctionRevertedError, type Hex, parseEventLogs } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import {
  getBalance,
  readContract,
  simulateContract,
  waitForTransactionReceipt,
  writeContract,
} from 'viem/actions';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import { HEARTH_CREDIT_ABI } from '../../src/credits/abi.ts';
import { voucherDomain } from '../../src/credits/voucher.ts';
import {
  claimManyOnChain,
  claimOnChain,
  inspectCreditContract,
  readBalance,
  readClaimed,
  walletFor,
} from '../../src/node/chain.ts';
import { freshAddress, type TestChain, testChain } from './chain-helpers.ts';

let c: TestChain;
let snap: Hex;

beforeAll(async () => {
  c = await testChain();
});
afterAll(async () => {
  await c?.dispose();
});
beforeEach(async () => {
  snap = await c.snapshot();
});
afterEach(async () => {
  await c.revert(snap);
});

/** The custom error a call reverted with, as viem decoded it. */
function revertName(e: unknown): string | undefined {
  const r = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : undefined;
  return r instanceof ContractFunctionRevertedError ? r.data?.errorName : undefined;
}

/** Claims through the relayer and expects the HearthError `code`, with the contract's error name. */
async function refused(
  s: { voucher: { account: Address; amount: bigint; expiry: bigint }; signature: Hex },
  code: string,
  refusal: string,
): Promise<void> {
  const before = await readBalance(c.test, c.contract, s.voucher.account);
  const e = await claimOnChain(c.relayer, c.contract, s.voucher, s.signature).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isHearthError(e) ? { code: e.code, refusal: e.details.refusal } : e).toEqual({ code, refusal });
  expect(await readBalance(c.test, c.contract, s.voucher.account)).toBe(before);
}

describe('HearthCredit', () => {
  it('deploys with its owner, signer, 6 decimals and the EIP-712 domain vouchers are signed under', async () => {
    const info = await inspectCreditContract(c.test, c.contract);
    expect(info).toMatchObject({
      chainId: c.anvil.chainId,
      signer: privateKeyToAccount(c.hubKey).address,
      owner: c.owner.account.address,
      previousValidUntil: 0n,
    });
    const read = <F extends 'decimals' | 'name' | 'symbol' | 'totalSupply' | 'eip712Domain'>(
      functionName: F,
    ) => readContract(c.test, { address: c.contract, abi: HEARTH_CREDIT_ABI, functionName });
    expect(await read('decimals')).toBe(6);
    expect(await read('name')).toBe('Hearth Credit');
    expect(await read('totalSupply')).toBe(0n);
    const [, name, version, chainId, verifyingContract] = await read('eip712Domain');
    expect({ name, version, chainId: Number(chainId), verifyingContract }).toEqual({
      name: c.domain.name,
      version: c.domain.version,
      chainId: c.domain.chainId,
      verifyingContract: c.domain.verifyingContract,
    });
  });

  it('a valid voucher mints its amount to its account; the claimed total is recorded', async () => {
    const account = freshAddress();
    const s = await c.voucher({ account, amount: 7_250_000n });
    const r = await claimOnChain(c.relayer, c.contract, s.voucher, s.signature);
    expect(r.minted).toBe(7_250_000n);
    expect(await readBalance(c.test, c.contract, account)).toBe(7_250_000n);
    expect(await readClaimed(c.test, c.contract, account)).toBe(7_250_000n);
    expect(
      await readContract(c.test, {
        address: c.contract,
        abi: HEARTH_CREDIT_ABI,
        functionName: 'totalSupply',
      }),
    ).toBe(7_250_000n);
  });

  it('the same voucher again, or an older one, mints nothing; a newer one mints the difference', async () => {
    const account = freshAddress();
    const older = await c.voucher({ account, amount: 2_000_000n });
    const current = await c.voucher({ account, amount: 5_000_000n });
    await claimOnChain(c.relayer, c.contract, current.voucher, current.signature);
    await refused(current, 'voucher/nothing-to-claim', 'NothingToClaim');
    await refused(older, 'voucher/nothing-to-claim', 'NothingToClaim');
    const newer = await c.voucher({ account, amount: 9_000_000n });
    expect((await claimOnChain(c.relayer, c.contract, newer.voucher, newer.signature)).minted).toBe(
      4_000_000n,
    );
    expect(await readBalance(c.test, c.contract, account)).toBe(9_000_000n);
    expect(await readClaimed(c.test, c.contract, account)).toBe(9_000_000n);
  });

  it('refuses a voucher signed by another key, altered, for another address, or malformed', async () => {
    const account = freshAddress();
    const forged = await c.voucher({ account, amount: 1_000_000n }, { key: generatePrivateKey() });
    await refused(forged, 'voucher/unknown-signer', 'UnknownSigner');

    const good = await c.voucher({ account, amount: 1_000_000n });
    await refused(
      { ...good, voucher: { ...good.voucher, amount: 2_000_000n } },
      'voucher/unknown-signer',
      'UnknownSigner',
    );
    await refused(
      { ...good, voucher: { ...good.voucher, expiry: good.voucher.expiry + 1n } },
      'voucher/unknown-signer',
      'UnknownSigner',
    );
    await refused(
      { ...good, voucher: { ...good.voucher, account: freshAddress() } },
      'voucher/unknown-signer',
      'UnknownSigner',
    );

    // A high s (the malleable twin of a valid signature) and a wrong length are not signatures.
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const s = BigInt(`0x${good.signature.slice(66, 130)}`);
    const v = Number.parseInt(good.signature.slice(130), 16);
    const twin =
      `${good.signature.slice(0, 66)}${(n - s).toString(16).padStart(64, '0')}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
    await refused({ ...good, signature: twin }, 'voucher/invalid-signature', 'InvalidSignature');
    await refused(
      { ...good, signature: good.signature.slice(0, 130) as Hex },
      'voucher/invalid-signature',
      'InvalidSignature',
    );
    // The untouched voucher still pays: nothing above consumed it.
    expect((await claimOnChain(c.relayer, c.contract, good.voucher, good.signature)).minted).toBe(1_000_000n);
  });

  it('refuses a voucher signed for another chain id or another contract', async () => {
    const account = freshAddress();
    await refused(
      await c.voucher({ account }, { domain: voucherDomain(1, c.contract) }),
      'voucher/unknown-signer',
      'UnknownSigner',
    );
    await refused(
      await c.voucher({ account }, { domain: voucherDomain(c.anvil.chainId, freshAddress()) }),
      'voucher/unknown-signer',
      'UnknownSigner',
    );
  });

  it('refuses an expired voucher; the same voucher before its expiry paid', async () => {
    const account = freshAddress();
    const expiry = (await c.now()) + 100n;
    const early = await c.voucher({ account, amount: 1_000_000n, expiry });
    const late = await c.voucher({ account, amount: 3_000_000n, expiry });
    await claimOnChain(c.relayer, c.contract, early.voucher, early.signature);
    await c.advance(200);
    await refused(late, 'voucher/expired', 'VoucherExpired');
  });

  it('refuses an amount over 128 bits and a voucher for the zero address', async () => {
    await refused(
      await c.voucher({ account: freshAddress(), amount: 2n ** 128n }),
      'voucher/refused',
      'AmountTooLarge',
    );
    await refused(
      await c.voucher({ account: '0x0000000000000000000000000000000000000000' }),
      'voucher/refused',
      'ZeroAccount',
    );
  });

  it('rotation: the old key stays valid until its time, then is refused; the new key is valid at once', async () => {
    const account = freshAddress();
    const nextKey = generatePrivateKey();
    const next = privateKeyToAccount(nextKey).address;
    const oldSigner = privateKeyToAccount(c.hubKey).address;
    const validUntil = (await c.now()) + 1000n;
    const hash = await writeContract(c.owner, {
      address: c.contract,
      abi: HEARTH_CREDIT_ABI,
      functionName: 'setSigner',
      args: [next, validUntil],
    });
    const receipt = await waitForTransactionReceipt(c.test, { hash });
    expect(
      parseEventLogs({ abi: HEARTH_CREDIT_ABI, eventName: 'SignerChanged', logs: receipt.logs })[0]?.args,
    ).toEqual({
      previous: oldSigner,
      next,
      previousValidUntil: validUntil,
    });
    expect(await inspectCreditContract(c.test, c.contract)).toMatchObject({
      signer: next,
      previousSigner: oldSigner,
      previousValidUntil: validUntil,
    });

    // Signed before the rotation, claimed after it, within the grace period: paid.
    const old1 = await c.voucher({ account, amount: 1_000_000n, expiry: validUntil + 10_000n });
    expect((await claimOnChain(c.relayer, c.contract, old1.voucher, old1.signature)).minted).toBe(1_000_000n);
    const new1 = await c.voucher({ account, amount: 2_000_000n }, { key: nextKey });
    expect((await claimOnChain(c.relayer, c.contract, new1.voucher, new1.signature)).minted).toBe(1_000_000n);

    await c.advance(2000);
    const old2 = await c.voucher({ account, amount: 5_000_000n, expiry: validUntil + 10_000n });
    await refused(old2, 'voucher/signer-retired', 'SignerRetired');
    const new2 = await c.voucher({ account, amount: 5_000_000n }, { key: nextKey });
    expect((await claimOnChain(c.relayer, c.contract, new2.voucher, new2.signature)).minted).toBe(3_000_000n);

    // A rotation past that forgets the first key altogether.
    await waitForTransactionReceipt(c.test, {
      hash: await writeContract(c.owner, {
        address: c.contract,
        abi: HEARTH_CREDIT_ABI,
        functionName: 'setSigner',
        args: [privateKeyToAccount(generatePrivateKey()).address, 0n],
      }),
    });
    const old3 = await c.voucher({ account, amount: 6_000_000n });
    await refused(old3, 'voucher/unknown-signer', 'UnknownSigner');
    // …and a rotation with a deadline of 0 retires the key it replaces at once (a leaked key).
    const retired = await c.voucher({ account, amount: 6_000_000n }, { key: nextKey });
    await refused(retired, 'voucher/signer-retired', 'SignerRetired');
  });

  it('only the owner rotates the signer, and never to the zero address', async () => {
    const call = (from: typeof c.owner, next: Address) =>
      simulateContract(c.test, {
        address: c.contract,
        abi: HEARTH_CREDIT_ABI,
        functionName: 'setSigner',
        args: [next, 0n],
        account: from.account,
      }).then(() => 'ok', revertName);
    expect(await call(c.relayer, freshAddress())).toBe('OwnableUnauthorizedAccount');
    expect(await call(c.owner, '0x0000000000000000000000000000000000000000')).toBe('ZeroSigner');
    expect(await call(c.owner, freshAddress())).toBe('ok');
  });

  it('claimMany pays the good vouchers and skips each bad one with an event naming its account and reason', async () => {
    const good = [freshAddress(), freshAddress(), freshAddress()];
    const expiredAccount = freshAddress();
    const forgedAccount = freshAddress();
    const raceAccount = freshAddress();
    // The race the skip rule is for: a volunteer claims their own voucher directly first.
    const raced = await c.voucher({ account: raceAccount, amount: 4_000_000n });
    await claimOnChain(c.relayer, c.contract, raced.voucher, raced.signature);
    const expiring = await c.voucher({
      account: expiredAccount,
      amount: 1_000_000n,
      expiry: (await c.now()) + 5n,
    });
    await c.advance(60);
    const batch = [
      await c.voucher({ account: good[0] as Address, amount: 1_000_000n }),
      expiring,
      await c.voucher({ account: good[1] as Address, amount: 2_000_000n }),
      await c.voucher({ account: forgedAccount, amount: 9_000_000n }, { key: generatePrivateKey() }),
      raced,
      await c.voucher({ account: good[2] as Address, amount: 3_000_000n }),
    ];
    const args = [batch.map((s) => ({ ...s.voucher, signature: s.signature }))] as const;
    const { result } = await simulateContract(c.test, {
      address: c.contract,
      abi: HEARTH_CREDIT_ABI,
      functionName: 'claimMany',
      args,
      account: c.relayer.account,
    });
    expect(result).toBe(6_000_000n);

    const r = await claimManyOnChain(c.relayer, c.contract, batch);
    expect(r.total).toBe(6_000_000n);
    expect(r.paid).toEqual([
      { account: good[0], minted: 1_000_000n },
      { account: good[1], minted: 2_000_000n },
      { account: good[2], minted: 3_000_000n },
    ]);
    expect(r.skipped).toEqual([
      { account: expiredAccount, amount: 1_000_000n, reason: 'VoucherExpired' },
      { account: forgedAccount, amount: 9_000_000n, reason: 'UnknownSigner' },
      { account: raceAccount, amount: 4_000_000n, reason: 'NothingToClaim' },
    ]);
    for (const [i, a] of good.entries())
      expect(await readBalance(c.test, c.contract, a)).toBe(BigInt(i + 1) * 1_000_000n);
    expect(await readBalance(c.test, c.contract, forgedAccount)).toBe(0n);
    expect(await readBalance(c.test, c.contract, raceAccount)).toBe(4_000_000n);
    expect(
      await readContract(c.test, {
        address: c.contract,
        abi: HEARTH_CREDIT_ABI,
        functionName: 'totalSupply',
      }),
    ).toBe(10_000_000n);
  });

  it('a relayer pays the gas; the account, holding no ETH, gets the tokens', async () => {
    const account = freshAddress();
    expect(await getBalance(c.test, { address: account })).toBe(0n);
    const ethBefore = await getBalance(c.test, { address: c.relayer.account.address });
    const s = await c.voucher({ account, amount: 3_000_000n });
    const r = await claimOnChain(c.relayer, c.contract, s.voucher, s.signature);
    expect(await readBalance(c.test, c.contract, account)).toBe(3_000_000n);
    expect(await readBalance(c.test, c.contract, c.relayer.account.address)).toBe(0n);
    expect(await getBalance(c.test, { address: account })).toBe(0n);
    expect(await getBalance(c.test, { address: c.relayer.account.address })).toBeLessThan(ethBefore);
    expect(r.gasUsed).toBeGreaterThan(21_000n);
  });

  it('a sender without ETH for gas gets chain/insufficient-funds, and nothing is minted', async () => {
    const broke = await walletFor(c.anvil.rpcUrl, generatePrivateKey());
    const s = await c.voucher({ account: freshAddress(), amount: 1_000_000n });
    await expect(claimOnChain(broke, c.contract, s.voucher, s.signature)).rejects.toMatchObject({
      code: 'chain/insufficient-funds',
    });
    await expect(claimManyOnChain(broke, c.contract, [s])).rejects.toMatchObject({
      code: 'chain/insufficient-funds',
    });
    expect(await readBalance(c.test, c.contract, s.voucher.account)).toBe(0n);
  });

  it('a later claim costs the same gas whatever it settles, within the 50,000 goal', async () => {
    const account = freshAddress();
    const gas: bigint[] = [];
    let total = 0n;
    for (const shards of [1n, 100n, 10_000n, 1n]) {
      total += shards * 1_500_000n;
      const s = await c.voucher({ account, amount: total });
      gas.push((await claimOnChain(c.relayer, c.contract, s.voucher, s.signature)).gasUsed);
    }
    const later = gas.slice(1);
    // Calldata prices each nonzero byte of the amount: a larger amount may cost a few gas more.
    expect(Math.max(...later.map(Number)) - Math.min(...later.map(Number))).toBeLessThan(100);
    for (const g of later) expect(g).toBeLessThanOrEqual(50_000n);
  });

  it('is a working ERC-20 on its packed storage: transfer, allowance, insufficient balance; claims still count', async () => {
    const holderKey = generatePrivateKey();
    const holder = privateKeyToAccount(holderKey);
    const friend = freshAddress();
    await c.test.setBalance({ address: holder.address, value: 10n ** 18n });
    const s = await c.voucher({ account: holder.address, amount: 5_000_000n });
    await claimOnChain(c.relayer, c.contract, s.voucher, s.signature);
    const send = async (functionName: 'transfer' | 'approve', args: readonly [Address, bigint]) =>
      waitForTransactionReceipt(c.test, {
        hash: await writeContract(c.test, {
          address: c.contract,
          abi: HEARTH_CREDIT_ABI,
          functionName,
          args,
          account: holder,
          chain: c.anvil.chain,
        }),
      });
    await send('transfer', [friend, 2_000_000n]);
    expect(await readBalance(c.test, c.contract, holder.address)).toBe(3_000_000n);
    expect(await readBalance(c.test, c.contract, friend)).toBe(2_000_000n);

    await send('approve', [c.relayer.account.address, 1_000_000n]);
    await waitForTransactionReceipt(c.test, {
      hash: await writeContract(c.relayer, {
        address: c.contract,
        abi: HEARTH_CREDIT_ABI,
        functionName: 'transferFrom',
        args: [holder.address, friend, 1_000_000n],
      }),
    });
    expect(await readBalance(c.test, c.contract, friend)).toBe(3_000_000n);

    const over = await simulateContract(c.test, {
      address: c.contract,
      abi: HEARTH_CREDIT_ABI,
      functionName: 'transfer',
      args: [friend, 2_000_001n],
      account: holder,
    }).then(() => 'ok', revertName);
    expect(over).toBe('ERC20InsufficientBalance');

    // Tokens given away are not credit given back: the next voucher pays only what was earned since.
    const next = await c.voucher({ account: holder.address, amount: 6_000_000n });
    expect((await claimOnChain(c.relayer, c.contract, next.voucher, next.signature)).minted).toBe(1_000_000n);
    expect(await readBalance(c.test, c.contract, holder.address)).toBe(3_000_000n);
    expect(
      await readContract(c.test, {
        address: c.contract,
        abi: HEARTH_CREDIT_ABI,
        functionName: 'totalSupply',
      }),
    ).toBe(6_000_000n);
  });
});
