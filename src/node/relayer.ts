// The hub's relayer: submits volunteers' claims from the operator's funded key, so a volunteer
// needs no ETH to be paid. One claim at a time (one key, one nonce sequence). A claim is sent only
// when the contract owes the account something — `claimed` is read first — so nobody can make the
// relayer pay gas for a claim that would mint nothing. Chain failures are chain.ts's typed errors
// (`chain/unreachable`, `chain/insufficient-funds`, `voucher/*`).
import type { Address, Chain, Hex, LocalAccount, Transport, WalletClient } from 'viem';
import { HearthError } from '../core/errors.ts';
import type { SignedVoucher } from '../hub/wallets.ts';
import { formatCredit } from '../protocol/credit.ts';
import { claimOnChain, readBalance, readClaimed, walletFor } from './chain.ts';

export interface RelayerOptions {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly contract: Address;
  /** The relayer's private key (funded with the chain's gas token). Never logged. */
  readonly key: Hex;
}

export class ClaimRelayer {
  readonly #opts: RelayerOptions;
  #wallet: Promise<WalletClient<Transport, Chain, LocalAccount>> | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: RelayerOptions) {
    this.#opts = opts;
  }

  /** The relayer's client, made on first use (it asks the RPC its chain id, which must match). */
  #client(): Promise<WalletClient<Transport, Chain, LocalAccount>> {
    this.#wallet ??= walletFor(this.#opts.rpcUrl, this.#opts.key, { chainId: this.#opts.chainId });
    this.#wallet.catch(() => {
      this.#wallet = undefined;
    });
    return this.#wallet;
  }

  /** What the contract has minted to `account` so far (base units). */
  async claimed(account: string): Promise<bigint> {
    return readClaimed(await this.#client(), this.#opts.contract, account as Address);
  }

  /** The account's token balance (base units). */
  async balance(account: string): Promise<bigint> {
    return readBalance(await this.#client(), this.#opts.contract, account as Address);
  }

  /** Submits the voucher's claim and waits for its receipt; refuses one that would mint nothing. */
  claim(v: SignedVoucher): Promise<{ minted: bigint; transaction: Hex }> {
    const run = this.#queue.then(() => this.#claim(v));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #claim(v: SignedVoucher): Promise<{ minted: bigint; transaction: Hex }> {
    const wallet = await this.#client();
    const account = v.account as Address;
    const before = await readClaimed(wallet, this.#opts.contract, account);
    if (v.amount <= before) {
      throw new HearthError(
        'voucher/nothing-to-claim',
        `${v.account} has been paid all it earned (${formatCredit(before)} credits claimed); earn more validated credit first.`,
        { details: { claimed: before.toString(), earned: v.amount.toString() } },
      );
    }
    const r = await claimOnChain(
      wallet,
      this.#opts.contract,
      { account, amount: v.amount, expiry: v.expiry },
      v.signature,
    );
    return { minted: r.minted, transaction: r.hash };
  }
}
