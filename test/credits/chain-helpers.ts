// One real chain per test file: anvil on loopback, HearthCredit deployed by dev account 0 (its
// owner), claims sent by dev account 1 (a relayer), vouchers signed by a fresh hub key. Tests
// isolate themselves with `snapshot()` / `revert()` around each case.
import {
  type Address,
  type Chain,
  createTestClient,
  type Hex,
  http,
  type LocalAccount,
  publicActions,
  type Transport,
  type WalletClient,
} from 'viem';
import { generatePrivateKey, nonceManager, privateKeyToAccount } from 'viem/accounts';
import { getBlock } from 'viem/actions';
import {
  type SignedVoucher,
  signVoucher,
  type Voucher,
  type VoucherDomain,
  voucherDomain,
} from '../../src/credits/voucher.ts';
import { type Anvil, deployHearthCredit, startAnvil, walletFor } from '../../src/node/chain.ts';

export interface TestChain {
  readonly anvil: Anvil;
  readonly test: ReturnType<typeof makeTestClient>;
  /** Dev account 0: deployed the contract, owns it. */
  readonly owner: WalletClient<Transport, Chain, LocalAccount>;
  /** Dev account 1: sends claims and pays their gas. */
  readonly relayer: WalletClient<Transport, Chain, LocalAccount>;
  /** The hub's voucher key, the contract's signer. */
  readonly hubKey: Hex;
  readonly contract: Address;
  readonly domain: VoucherDomain;
  /** The latest block's timestamp. */
  now(): Promise<bigint>;
  /** Takes a snapshot of the chain, for `revert`. */
  snapshot(): Promise<Hex>;
  /**
   * Back to `snapshot`'s state. Also forgets the nonces the wallets counted locally (viem's nonce
   * manager would otherwise send with nonces the reverted chain has not reached, and wait forever).
   */
  revert(id: Hex): Promise<void>;
  /** Moves the chain's clock on by `seconds` and mines a block there. */
  advance(seconds: number): Promise<void>;
  /** A voucher signed by `key` (the hub's by default) under `domain` (the contract's by default). */
  voucher(
    v: Partial<Voucher> & { account: Address },
    opts?: { key?: Hex; domain?: VoucherDomain },
  ): Promise<SignedVoucher>;
  dispose(): Promise<void>;
}

function makeTestClient(anvil: Anvil) {
  return createTestClient({ mode: 'anvil', chain: anvil.chain, transport: http(anvil.rpcUrl) }).extend(
    publicActions,
  );
}

/** A fresh address with no ETH and no tokens. */
export function freshAddress(): Address {
  return privateKeyToAccount(generatePrivateKey()).address;
}

export async function testChain(): Promise<TestChain> {
  const anvil = await startAnvil();
  try {
    const [a0, a1] = anvil.accounts;
    if (!a0 || !a1) throw new Error('anvil gave fewer than two dev accounts');
    const owner = await walletFor(anvil.rpcUrl, a0.privateKey);
    const relayer = await walletFor(anvil.rpcUrl, a1.privateKey);
    const hubKey = generatePrivateKey();
    const contract = await deployHearthCredit(owner, {
      owner: owner.account.address,
      signer: privateKeyToAccount(hubKey).address,
    });
    const domain = voucherDomain(anvil.chainId, contract);
    const test = makeTestClient(anvil);
    const now = async () => (await getBlock(test)).timestamp;
    return {
      anvil,
      test,
      owner,
      relayer,
      hubKey,
      contract,
      domain,
      now,
      snapshot: () => test.snapshot(),
      async revert(id) {
        await test.revert({ id });
        for (const w of [owner, relayer])
          nonceManager.reset({ address: w.account.address, chainId: anvil.chainId });
      },
      async advance(seconds) {
        await test.increaseTime({ seconds });
        await test.mine({ blocks: 1 });
      },
      async voucher(v, opts = {}) {
        const voucher: Voucher = {
          account: v.account,
          amount: v.amount ?? 1_000_000n,
          expiry: v.expiry ?? (await now()) + 3600n,
        };
        return { voucher, signature: await signVoucher(opts.key ?? hubKey, opts.domain ?? domain, voucher) };
      },
      dispose: () => anvil.close(),
    };
  } catch (e) {
    await anvil.close();
    throw e;
  }
}
