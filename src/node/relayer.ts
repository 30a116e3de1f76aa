// The hub's relayer: submits volunteers' claims from the operator's funded key, so a volunteer
// needs no ETH to be paid. One claim at a time (one key, one nonce sequence); a claim is sent only
// when the contract owes the account something, read from the chain first, so the relayer never
// pays gas for a claim that would mint nothing.
import {
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  type Hex,
  http,
  type PublicClient,
  parseAbi,
  type WalletClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { HearthError } from '../core/errors.ts';
import type { SignedVoucher } from '../hub/wallets.ts';
import { formatCredit } from '../protocol/credit.ts';

/** What the relayer calls on the credit contract (contracts/HearthCredit.sol). */
const CLAIM_ABI = parseAbi([
  'function claim(address account, uint256 amount, uint256 expiry, bytes signature)',
  'function claimed(address account) view returns (uint256)',
  'function balanceOf(address account) view returns (uint256)',
]);

export interface RelayerOptions {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly contract: Address;
  /** The relayer's private key (funded with the chain's gas token). Never logged. */
  readonly key: Hex;
}

/** A chain for viem from an id and an RPC URL (a local anvil or any EVM network). */
export function chainOf(chainId: number, rpcUrl: string): Chain {
  return defineChain({
    id: chainId,
    name: `chain ${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

const chainError = (what: string, e: unknown) =>
  new HearthError('wallet/chain', `${what}: the chain refused or failed (${shortReason(e)}).`, { cause: e });

/** The first line of a viem error (its short message), never the request it carried. */
function shortReason(e: unknown): string {
  const m = e as { shortMessage?: unknown; message?: unknown };
  const s =
    typeof m.shortMessage === 'string'
      ? m.shortMessage
      : typeof m.message === 'string'
        ? m.message
        : String(e);
  return (s.split('\n')[0] ?? s).slice(0, 300);
}

export class ClaimRelayer {
  readonly #public: PublicClient;
  readonly #wallet: WalletClient;
  readonly #contract: Address;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: RelayerOptions) {
    const chain = chainOf(opts.chainId, opts.rpcUrl);
    this.#public = createPublicClient({ chain, transport: http(opts.rpcUrl) });
    this.#wallet = createWalletClient({
      chain,
      transport: http(opts.rpcUrl),
      account: privateKeyToAccount(opts.key),
    });
    this.#contract = opts.contract;
  }

  /** What the contract has minted to `account` so far (base units). */
  async claimed(account: string): Promise<bigint> {
    try {
      return await this.#public.readContract({
        address: this.#contract,
        abi: CLAIM_ABI,
        functionName: 'claimed',
        args: [account as Address],
      });
    } catch (e) {
      throw chainError('reading claimed', e);
    }
  }

  /** The account's token balance (base units). */
  async balance(account: string): Promise<bigint> {
    try {
      return await this.#public.readContract({
        address: this.#contract,
        abi: CLAIM_ABI,
        functionName: 'balanceOf',
        args: [account as Address],
      });
    } catch (e) {
      throw chainError('reading a balance', e);
    }
  }

  /** Submits the voucher's claim and waits for its receipt; refuses one that would mint nothing. */
  claim(v: SignedVoucher): Promise<{ minted: bigint; transaction: Hex }> {
    const run = this.#queue.then(() => this.#claim(v));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #claim(v: SignedVoucher): Promise<{ minted: bigint; transaction: Hex }> {
    const before = await this.claimed(v.account);
    if (v.amount <= before) {
      throw new HearthError(
        'wallet/nothing-to-claim',
        `${v.account} has been paid all it earned (${formatCredit(before)} credits claimed); earn more validated credit first.`,
        { details: { claimed: before.toString(), earned: v.amount.toString() } },
      );
    }
    let transaction: Hex;
    try {
      const { request } = await this.#public.simulateContract({
        address: this.#contract,
        abi: CLAIM_ABI,
        functionName: 'claim',
        args: [v.account as Address, v.amount, v.expiry, v.signature],
        account: this.#wallet.account ?? null,
      });
      transaction = await this.#wallet.writeContract(request);
      const receipt = await this.#public.waitForTransactionReceipt({ hash: transaction });
      if (receipt.status !== 'success') throw new Error(`transaction ${transaction} reverted`);
    } catch (e) {
      throw chainError('relaying a claim', e);
    }
    return { minted: v.amount - before, transaction };
  }
}
