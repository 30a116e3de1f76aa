// A volunteer's wallet, from its page: sign in (bind this volunteer's Hearth identity to the
// wallet's address over the hub connection), read what the address has earned and claimed, and
// claim — relayed by the hub when it relays (the volunteer needs no ETH and sees no second
// prompt), or submitted by the wallet otherwise. Loaded by the controller only when the volunteer
// asks for it, so viem stays out of the page until then.
//
// Prompts: connecting (account access) and the Sign-In with Ethereum signature are the sign-in;
// a claim prompts only when the volunteer pays its gas. Nothing else asks the wallet anything
// but reads (eth_chainId, eth_call).
import { HearthError } from '../core/errors.ts';
import { connect, type Eip1193Provider, ensureChain, personalSign } from '../credits/eip1193.ts';
import { claimState, claimYourself } from '../credits/redeem.ts';
import { type SiweTermsIn, siweMessage } from '../credits/siwe.ts';
import type { WalletRules } from '../protocol/api.ts';
import { HubApi } from './hub-api.ts';

/** What the page shows of the wallet, in base units (bigint) — the controller formats them. */
export interface WalletReading {
  readonly address: string;
  /** Granted credit to this address, in total (as volunteer and as embedding site). */
  readonly earned: bigint;
  /** Credit still awaiting validation that will come to this address. */
  readonly pending: bigint;
  /** Minted to the address so far (read from the chain through the wallet). */
  readonly claimed: bigint;
  /** earned − claimed, never below 0. */
  readonly claimable: bigint;
  /** The token balance now (read from the chain). */
  readonly balance: bigint;
}

/** Signs in: what the controller hands over of the hub connection. */
export type SiweExchange = (
  sign: (terms: SiweTermsIn) => Promise<{ message: string; signature: string }>,
) => Promise<string>;

export class WalletLink {
  readonly #api: HubApi;
  readonly #provider: Eip1193Provider;
  #rules: WalletRules | undefined;
  #account: string | undefined;
  #address: string | undefined;

  constructor(hubUrl: string, provider: Eip1193Provider, fetchImpl?: typeof fetch) {
    this.#api = new HubApi({ hub: hubUrl, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
    this.#provider = provider;
  }

  /** How the hub pays (read once). */
  async rules(): Promise<WalletRules> {
    this.#rules ??= await this.#api.walletRules();
    return this.#rules;
  }

  /** The bound address, once signed in. */
  get address(): string | undefined {
    return this.#address;
  }

  /**
   * Connects the wallet, moves it to the hub's chain, and binds this volunteer to its account
   * with Sign-In with Ethereum through `exchange` (the volunteer's hub connection).
   */
  async signIn(exchange: SiweExchange): Promise<string> {
    const rules = await this.rules();
    const account = await connect(this.#provider);
    await ensureChain(this.#provider, rules.chainId);
    this.#account = account;
    this.#address = await exchange(async (terms) => {
      if (terms.chainId !== rules.chainId) {
        throw new HearthError(
          'wallet/siwe',
          `the hub's terms name chain ${terms.chainId}, its rules ${rules.chainId}.`,
        );
      }
      const message = siweMessage(terms, account);
      return { message, signature: await personalSign(this.#provider, account, message) };
    });
    return this.#address;
  }

  /** Uses an address the hub says this volunteer is bound to already (no prompt). */
  bound(address: string): void {
    this.#address = address;
  }

  /** Earned (from the hub) and claimed and balance (from the chain, through the wallet). */
  async read(): Promise<WalletReading> {
    const address = this.#needAddress();
    const rules = await this.rules();
    const [earned, chain] = await Promise.all([
      this.#api.walletEarned(address),
      claimState(this.#provider, rules.contract, address),
    ]);
    const claimable = earned.earned > chain.claimed ? earned.earned - chain.claimed : 0n;
    return {
      address,
      earned: earned.earned,
      pending: earned.pending,
      claimed: chain.claimed,
      claimable,
      balance: chain.balance,
    };
  }

  /**
   * Claims everything claimable: through the hub's relayer when it has one (no prompt, no ETH),
   * otherwise from the wallet's own account (one prompt; it pays the gas). The transaction hash.
   */
  async claim(): Promise<string> {
    const address = this.#needAddress();
    const rules = await this.rules();
    if (rules.relayer) return (await this.#api.relayClaim(address)).transaction;
    const v = await this.#api.voucher(address);
    return claimYourself(this.#provider, this.#account ?? address, v);
  }

  #needAddress(): string {
    if (!this.#address) {
      throw new HearthError(
        'wallet/unavailable',
        'sign in with your wallet first: no address is bound to this volunteer.',
      );
    }
    return this.#address;
  }
}
