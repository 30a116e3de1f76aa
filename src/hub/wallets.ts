// Credit to wallets, the hub's half: who is bound to which address (Sign-In with Ethereum), what
// an address has earned in total, and the cumulative voucher that lets it claim that as tokens.
//
// Why cumulative: a voucher says "address A has earned C base units in total"; the contract
// mints C − claimed[A] and records C. So one signature settles any number of shards, a replayed
// or older voucher mints nothing, and a hub that crashes between signing a voucher and anything
// else can never pay twice — the contract's `claimed` is the only record of payment, and the hub
// needs none. What the hub must guarantee is that C never goes down for an address: granted
// credit is never revoked, a binding is for good (a volunteer cannot move its history to another
// address), and an embedding site's share is fixed on each ledger entry when the entry is made.
//
// Binding: the volunteer's connection is already authenticated as its Hearth key; the SIWE
// message names that identity as a resource and carries a nonce this hub issued to that
// volunteer, once, for a few minutes. The checks and their errors are below (`bind`).
import { getAddress, type Hex, isAddress, recoverMessageAddress } from 'viem';
import { parseSiweMessage } from 'viem/siwe';
import { HearthError } from '../core/errors.ts';
import type { SiweTermsIn } from '../credits/siwe.ts';
import { volunteerResource } from '../protocol/control/wallet.ts';
import type { LedgerEntry, LedgerRepository, WalletBinding, WalletRepository } from './store.ts';

/** What the operator decides about paying credit as tokens. */
export interface WalletRules {
  /** The chain the credit contract lives on (EIP-155 id): SIWE messages must name it. */
  readonly chainId: number;
  /** The credit contract's address (EIP-55). */
  readonly contract: string;
  /**
   * The embedding site's share of credit earned through its `<hearth-widget>`, in basis points
   * (1,000 = 10%): ⌊credits × bps / 10,000⌋ goes to the site's payout address, the rest to the
   * volunteer's. Fixed on each ledger entry when it is made.
   */
  readonly embedShareBps: number;
  /** How long a signed voucher stays valid (seconds; default a day). */
  readonly voucherTtlSec?: number;
}

/** Limits of the nonce book: bounded, since any authenticated volunteer may ask. */
export const SIWE_LIMITS = {
  /** A nonce (and the message that uses it) is good for this long. */
  nonceTtlMs: 5 * 60_000,
  /** Nonces outstanding at most, over every volunteer (the oldest is forgotten past it). */
  maxNonces: 10_000,
} as const;

/** The terms a volunteer's SIWE message must carry (protocol/control/wallet.ts `siwe-terms`). */
export type SiweTerms = SiweTermsIn;

/** A cumulative voucher, signed: what the contract's `claim` takes. Amounts in base units. */
export interface SignedVoucher {
  readonly account: string;
  readonly amount: bigint;
  /** Unix seconds. */
  readonly expiry: bigint;
  readonly chainId: number;
  readonly contract: string;
  readonly signature: Hex;
}

/** Signs `{ account, amount, expiry }` as the contract's EIP-712 voucher (the hub's key stays with it). */
export type VoucherSigner = (v: { account: string; amount: bigint; expiry: bigint }) => Promise<Hex>;

/** What an address has earned, in base units: as a volunteer, and as an embedding site. */
export interface Earned {
  readonly asVolunteer: bigint;
  readonly asSite: bigint;
  readonly total: bigint;
  /** Credit still awaiting validation that would come to this address (not in any voucher yet). */
  readonly pending: bigint;
}

const STATEMENT =
  'Bind this Hearth volunteer to my address: its validated work is paid to it as Hearth Credit.';

const siwe = (message: string, details: Record<string, unknown> = {}) =>
  new HearthError('wallet/siwe', `Sign-In with Ethereum: ${message}`, { details });

/** The embedding site's share of `credits`: exact, rounded down (the volunteer keeps the rest). */
export function siteShare(credits: bigint, bps: number): bigint {
  return (credits * BigInt(bps)) / 10_000n;
}

/** The volunteer's and the site's parts of a ledger entry. */
function parts(e: LedgerEntry): { volunteer: bigint; site: bigint } {
  const site = e.payout === undefined ? 0n : (e.payoutCredits ?? 0n);
  return { volunteer: e.credits - site, site };
}

export class HubWallets {
  readonly #store: WalletRepository & LedgerRepository;
  readonly #rules: WalletRules;
  readonly #sign: VoucherSigner;
  readonly #now: () => number;
  /** nonce → who may use it, for which domain, until when. Insertion order is age. */
  readonly #nonces = new Map<string, { volunteer: string; domain: string; expires: number }>();

  constructor(opts: {
    store: WalletRepository & LedgerRepository;
    rules: WalletRules;
    sign: VoucherSigner;
    now?: () => number;
  }) {
    const { rules } = opts;
    if (!Number.isInteger(rules.embedShareBps) || rules.embedShareBps < 0 || rules.embedShareBps > 10_000) {
      throw new HearthError(
        'input/invalid',
        `embedShareBps: expected an integer from 0 to 10000 (basis points), got ${rules.embedShareBps}.`,
      );
    }
    if (!isAddress(rules.contract)) {
      throw new HearthError('input/invalid', `credit contract: ${rules.contract} is not an address.`);
    }
    this.#store = opts.store;
    this.#rules = { ...rules, contract: getAddress(rules.contract) };
    this.#sign = opts.sign;
    this.#now = opts.now ?? Date.now;
  }

  get rules(): WalletRules {
    return this.#rules;
  }

  /**
   * Fresh terms for `volunteer`'s SIWE message. `origin` is its page's origin (the connection's
   * Origin header, or `http://` + Host for a client without one): the message's domain and URI.
   */
  terms(volunteer: string, origin: string): SiweTerms {
    const now = this.#now();
    this.#prune(now);
    const nonce = randomNonce();
    const expires = now + SIWE_LIMITS.nonceTtlMs;
    this.#nonces.set(nonce, { volunteer, domain: new URL(origin).host, expires });
    return {
      domain: new URL(origin).host,
      uri: `${origin}/`,
      chainId: this.#rules.chainId,
      nonce,
      resource: volunteerResource(volunteer),
      statement: STATEMENT,
      expirationTime: new Date(expires).toISOString(),
      issuedAt: new Date(now).toISOString(),
    };
  }

  /**
   * Binds `volunteer` to the address that signed `message`, after checking: the nonce is one this
   * hub gave this volunteer and unused (it is used up by this call, whatever the outcome), not
   * stale; the domain is the one it was given for; the message has not expired (nor is it for
   * later); the chain is the contract's; the resources name this volunteer; the signature
   * recovers to the message's address. A volunteer already bound to another address is refused
   * (`wallet/bound`); binding the same address again is a no-op.
   */
  async bind(volunteer: string, message: string, signature: Hex): Promise<WalletBinding> {
    const now = this.#now();
    let m: ReturnType<typeof parseSiweMessage>;
    try {
      m = parseSiweMessage(message);
    } catch {
      throw siwe(
        'the message is not an EIP-4361 message; sign the message the page built from the hub’s terms.',
      );
    }
    if (!m.nonce || !m.domain || !m.address || !m.uri || m.chainId === undefined || m.version !== '1') {
      throw siwe('the message lacks its domain, address, URI, version, chain id or nonce.');
    }
    const issued = this.#nonces.get(m.nonce);
    this.#nonces.delete(m.nonce);
    if (!issued || issued.volunteer !== volunteer) {
      throw siwe(
        'the nonce is not one this hub issued to this volunteer, or it was used already; ask for new terms.',
        {
          field: 'nonce',
        },
      );
    }
    if (issued.expires <= now) {
      throw siwe('the nonce is stale (older than 5 minutes); ask for new terms.', { field: 'nonce' });
    }
    if (m.domain !== issued.domain) {
      throw siwe(`the message is for ${m.domain}, not ${issued.domain}, where the terms were given.`, {
        field: 'domain',
      });
    }
    if (!m.expirationTime || m.expirationTime.getTime() <= now) {
      throw siwe('the message has expired (or names no expiration time); sign a new one.', {
        field: 'expirationTime',
      });
    }
    if (m.notBefore && m.notBefore.getTime() > now) {
      throw siwe('the message is not valid yet (notBefore).', { field: 'notBefore' });
    }
    if (m.chainId !== this.#rules.chainId) {
      throw siwe(`the message is for chain ${m.chainId}; this hub pays on chain ${this.#rules.chainId}.`, {
        field: 'chainId',
      });
    }
    if (!m.resources?.includes(volunteerResource(volunteer))) {
      throw siwe('the message binds another Hearth identity than this connection’s.', { field: 'resources' });
    }
    let signer: string;
    try {
      signer = await recoverMessageAddress({ message, signature });
    } catch {
      throw siwe('the signature is malformed.', { field: 'signature' });
    }
    if (signer.toLowerCase() !== m.address.toLowerCase()) {
      throw siwe(`the message names ${m.address} but was signed by another address.`, { field: 'signature' });
    }
    const want: WalletBinding = { volunteer, address: getAddress(m.address), boundAt: now };
    const inForce = this.#store.bindWallet(want);
    if (inForce.address !== want.address) {
      throw new HearthError(
        'wallet/bound',
        `this volunteer is bound to ${inForce.address} already; a binding is for good (its credit history stays with that address). Use a new volunteer identity for another address.`,
        { details: { address: inForce.address } },
      );
    }
    return inForce;
  }

  /** The address `volunteer` is bound to, if any. */
  addressOf(volunteer: string): string | undefined {
    return this.#store.walletOf(volunteer)?.address;
  }

  /** What `address` has earned in total (granted), and what is still pending for it. */
  earned(address: string): Earned {
    let asVolunteer = 0n;
    let asSite = 0n;
    let pending = 0n;
    for (const v of this.#store.volunteersOfWallet(address)) {
      for (const e of this.#store.ledger(v)) {
        if (e.status === 'granted') asVolunteer += parts(e).volunteer;
        else if (e.status === 'pending') pending += parts(e).volunteer;
      }
    }
    for (const e of this.#store.payoutLedger(address)) {
      if (e.status === 'granted') asSite += parts(e).site;
      else if (e.status === 'pending') pending += parts(e).site;
    }
    return { asVolunteer, asSite, total: asVolunteer + asSite, pending };
  }

  /** What `address` (checked, any case) has earned: its EIP-55 form and the sums. */
  async voucherless(address: string): Promise<{ address: string; earned: Earned }> {
    const account = checkedAddress(address);
    return { address: account, earned: this.earned(account) };
  }

  /** The latest cumulative voucher for `address`, signed by the hub's key. */
  async voucher(address: string): Promise<SignedVoucher> {
    const account = checkedAddress(address);
    const amount = this.earned(account).total;
    const expiry = BigInt(Math.floor(this.#now() / 1000) + (this.#rules.voucherTtlSec ?? 86_400));
    const signature = await this.#sign({ account, amount, expiry });
    return {
      account,
      amount,
      expiry,
      chainId: this.#rules.chainId,
      contract: this.#rules.contract,
      signature,
    };
  }

  #prune(now: number): void {
    for (const [n, v] of this.#nonces) {
      if (v.expires > now && this.#nonces.size < SIWE_LIMITS.maxNonces) break;
      this.#nonces.delete(n);
    }
  }
}

function checkedAddress(address: string): string {
  if (!isAddress(address, { strict: false })) {
    throw new HearthError(
      'input/invalid',
      `address: ${address.slice(0, 60)} is not an Ethereum address (0x and 40 hex digits).`,
      { details: { path: 'address' } },
    );
  }
  return getAddress(address);
}

/** 24 alphanumerics (EIP-4361 wants ≥ 8), from the platform's CSPRNG. */
function randomNonce(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}
