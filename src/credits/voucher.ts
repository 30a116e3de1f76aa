// Vouchers: the hub's signed word that an address has earned an amount of credit, redeemable for
// HearthCredit tokens (`contracts/HearthCredit.sol`). Browser-safe: viem only.
//
// A voucher is CUMULATIVE — "`account` has earned `amount` base units in total" — so the hub signs a
// fresh one whenever it likes and the newest supersedes all before it; the contract mints the
// difference from what the account already claimed. It is signed as EIP-712 typed data:
//
//   domain   { name: "Hearth Credit", version: "1", chainId, verifyingContract: the contract }
//   Voucher  (address account, uint256 amount, uint256 expiry)
//
// Signing is on the hub's hot path (a voucher per volunteer who asks), so it skips viem's generic
// typed-data encoder: the domain separator is computed once per (chain, contract), the struct hash
// is one keccak over 128 bytes built in place, and the digest is signed with the same secp256k1
// code viem's accounts use. `voucherDigest` equals viem's `hashTypedData` (a test holds it).
import {
  type Address,
  getAddress,
  type Hex,
  hexToBytes,
  isAddress,
  keccak256,
  type LocalAccount,
  recoverAddress,
  stringToBytes,
} from 'viem';
import { sign } from 'viem/accounts';
import { HearthError } from '../core/errors.ts';

/** The EIP-712 domain name HearthCredit signs under. */
export const VOUCHER_DOMAIN_NAME = 'Hearth Credit';
/** The EIP-712 domain version. */
export const VOUCHER_DOMAIN_VERSION = '1';

/** EIP-712 types of a voucher, as viem's `signTypedData` / `verifyTypedData` take them. */
export const VOUCHER_TYPES = {
  Voucher: [
    { name: 'account', type: 'address' },
    { name: 'amount', type: 'uint256' },
    { name: 'expiry', type: 'uint256' },
  ],
} as const;

/** "account has earned `amount` base units in total; redeemable until `expiry`". */
export type Voucher = {
  /** Who gets the tokens, whoever sends the claim. */
  account: Address;
  /** Cumulative credit in base units (10⁶ per credit; the token has 6 decimals). */
  amount: bigint;
  /** Last second (a block timestamp, seconds since 1970) the voucher can be claimed. */
  expiry: bigint;
};

/** A voucher and the hub's signature of it. */
export type SignedVoucher = { voucher: Voucher; signature: Hex };

/** The EIP-712 domain of one deployed HearthCredit. */
export type VoucherDomain = {
  readonly name: typeof VOUCHER_DOMAIN_NAME;
  readonly version: typeof VOUCHER_DOMAIN_VERSION;
  readonly chainId: number;
  readonly verifyingContract: Address;
};

/**
 * The largest amount the contract accepts (its claimed totals are 128-bit): 2¹²⁸ − 1 base units.
 * The hub's ledger stays far below it (signed 64-bit, `MAX_CREDIT_UNITS`).
 */
export const MAX_VOUCHER_AMOUNT = 2n ** 128n - 1n;
/** The largest expiry the wire form accepts: 2⁶⁴ − 1 seconds (the contract takes any uint256). */
export const MAX_VOUCHER_EXPIRY = 2n ** 64n - 1n;

/**
 * The domain vouchers for the HearthCredit at `contract` on chain `chainId` are signed under.
 *
 * @example
 * const domain = voucherDomain(31337, '0x5FbDB2315678afecb367f032d93F642f64180aa3');
 */
export function voucherDomain(chainId: number | bigint, contract: Address): VoucherDomain {
  const id = Number(chainId);
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new HearthError('input/invalid', `chainId: expected a positive integer, got ${String(chainId)}.`, {
      details: { path: 'chainId' },
    });
  }
  if (!isAddress(contract, { strict: false })) {
    throw new HearthError(
      'input/invalid',
      `contract: expected a 0x address, got "${String(contract).slice(0, 64)}".`,
      {
        details: { path: 'contract' },
      },
    );
  }
  return {
    name: VOUCHER_DOMAIN_NAME,
    version: VOUCHER_DOMAIN_VERSION,
    chainId: id,
    verifyingContract: getAddress(contract),
  };
}

const PRIVATE_KEY = /^0x[0-9a-fA-F]{64}$/;

const hashOf = (text: string): Uint8Array => keccak256(stringToBytes(text), 'bytes');
const TYPEHASH = hashOf('Voucher(address account,uint256 amount,uint256 expiry)');
const DOMAIN_TYPEHASH = hashOf(
  'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)',
);
const NAME_HASH = hashOf(VOUCHER_DOMAIN_NAME);
const VERSION_HASH = hashOf(VOUCHER_DOMAIN_VERSION);

/** Domain separators by "chainId:contract": a hub signs for one or two domains, forever. */
const separators = new Map<string, Uint8Array>();
const SEPARATOR_CACHE_SIZE = 64;

function separatorOf(domain: VoucherDomain): Uint8Array {
  const key = `${domain.chainId}:${domain.verifyingContract.toLowerCase()}`;
  let sep = separators.get(key);
  if (sep === undefined) {
    // keccak256(abi.encode(EIP712Domain typehash, keccak(name), keccak(version), chainId, contract))
    const enc = new Uint8Array(160);
    enc.set(DOMAIN_TYPEHASH, 0);
    enc.set(NAME_HASH, 32);
    enc.set(VERSION_HASH, 64);
    putUint256(enc, 96, BigInt(domain.chainId), 'chainId');
    enc.set(hexToBytes(domain.verifyingContract), 140);
    sep = keccak256(enc, 'bytes');
    if (separators.size >= SEPARATOR_CACHE_SIZE) separators.clear();
    separators.set(key, sep);
  }
  return sep;
}

/** Writes `v` (0 ≤ v < 2²⁵⁶) big-endian into the 32 bytes of `out` at `at`. */
function putUint256(out: Uint8Array, at: number, v: bigint, path: string): void {
  if (v < 0n || v >= 2n ** 256n) {
    throw new HearthError('input/invalid', `${path}: expected an integer from 0 to 2^256 − 1, got ${v}.`, {
      details: { path },
    });
  }
  let x = v;
  for (let i = at + 31; i >= at && x > 0n; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
}

/**
 * The EIP-712 digest of `voucher` under `domain`: what the hub's key signs and the contract
 * recovers from. Equal to viem's `hashTypedData({ domain, types: VOUCHER_TYPES, primaryType:
 * 'Voucher', message: voucher })`, several times faster.
 */
export function voucherDigest(domain: VoucherDomain, voucher: Voucher): Hex {
  if (!isAddress(voucher.account, { strict: false })) {
    throw new HearthError(
      'input/invalid',
      `voucher.account: expected a 0x address, got "${String(voucher.account).slice(0, 64)}".`,
      {
        details: { path: 'voucher.account' },
      },
    );
  }
  const struct = new Uint8Array(128);
  struct.set(TYPEHASH, 0);
  struct.set(hexToBytes(voucher.account), 44);
  putUint256(struct, 64, voucher.amount, 'voucher.amount');
  putUint256(struct, 96, voucher.expiry, 'voucher.expiry');
  const message = new Uint8Array(66);
  message[0] = 0x19;
  message[1] = 0x01;
  message.set(separatorOf(domain), 2);
  message.set(keccak256(struct, 'bytes'), 34);
  return keccak256(message);
}

/**
 * Signs `voucher` with the hub's key: a 0x private key or a viem `LocalAccount`. Returns the
 * 65-byte signature (r ‖ s ‖ v, low s) the contract's `claim` takes.
 *
 * @example
 * const signature = await signVoucher(hubKey, voucherDomain(chainId, contract), {
 *   account: volunteerAddress, amount: 5_000_000n, expiry: BigInt(Math.floor(Date.now() / 1000) + 86_400),
 * });
 */
export async function signVoucher(
  signer: Hex | LocalAccount,
  domain: VoucherDomain,
  voucher: Voucher,
): Promise<Hex> {
  if (typeof signer === 'string') {
    if (!PRIVATE_KEY.test(signer)) {
      throw new HearthError('input/invalid', 'signer: expected a private key as 0x and 64 hex digits.', {
        details: { path: 'signer' },
      });
    }
    return sign({ hash: voucherDigest(domain, voucher), privateKey: signer, to: 'hex' });
  }
  // A key in memory (privateKeyToAccount) signs the digest; any other local account (a hardware
  // or remote signer) signs the typed data itself.
  if (signer.sign) return signer.sign({ hash: voucherDigest(domain, voucher) });
  return signer.signTypedData({ domain, types: VOUCHER_TYPES, primaryType: 'Voucher', message: voucher });
}

/**
 * The address that signed `voucher` under `domain` (checksummed). A voucher altered after signing,
 * or signed for another domain, recovers to some other address: compare with the hub's.
 * Throws for a signature that is not 65 well-formed bytes.
 */
export async function recoverVoucherSigner(
  domain: VoucherDomain,
  voucher: Voucher,
  signature: Hex,
): Promise<Address> {
  return recoverAddress({ hash: voucherDigest(domain, voucher), signature });
}

/** Whether `signature` is `signer`'s signature of `voucher` under `domain`. Never throws. */
export async function verifyVoucher(
  domain: VoucherDomain,
  voucher: Voucher,
  signature: Hex,
  signer: Address,
): Promise<boolean> {
  try {
    return (await recoverVoucherSigner(domain, voucher, signature)).toLowerCase() === signer.toLowerCase();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- the wire form

/** A voucher as JSON carries it: amounts as decimal strings (JSON numbers are exact only to 2⁵³). */
export interface VoucherWire {
  readonly account: string;
  readonly amount: string;
  readonly expiry: string;
}

/** A signed voucher as JSON carries it. */
export interface SignedVoucherWire extends VoucherWire {
  readonly signature: string;
}

/**
 * A voucher as JSON carries it.
 *
 * @example
 * JSON.stringify(voucherToWire({ account, amount: 5_000_000n, expiry: 1_900_000_000n }));
 * // {"account":"0x…","amount":"5000000","expiry":"1900000000"}
 */
export function voucherToWire(v: Voucher): VoucherWire {
  return { account: v.account, amount: v.amount.toString(), expiry: v.expiry.toString() };
}

/** A signed voucher as JSON carries it: the voucher's fields and `signature`. */
export function signedVoucherToWire(s: SignedVoucher): SignedVoucherWire {
  return { ...voucherToWire(s.voucher), signature: s.signature };
}

function bad(path: string, what: string, got: unknown): HearthError {
  const shown = typeof got === 'string' ? JSON.stringify(got.slice(0, 80)) : typeof got;
  return new HearthError('input/invalid', `${path}: expected ${what}, got ${shown}.`, { details: { path } });
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;

function wireUint(v: unknown, path: string, max: bigint): bigint {
  const digits = max.toString().length;
  if (typeof v === 'string' && v.length <= digits && /^(0|[1-9][0-9]*)$/.test(v)) {
    const n = BigInt(v);
    if (n <= max) return n;
  }
  throw bad(path, `a decimal string of a whole number from 0 to ${max}`, v);
}

/**
 * Parses a voucher from the wire. Throws HearthError('input/invalid') naming the bad field
 * (`${path}.account` …): an address must be 0x and 40 hex digits (a mixed-case one must carry a
 * valid EIP-55 checksum), `amount` a decimal string up to `MAX_VOUCHER_AMOUNT`, `expiry` up to
 * `MAX_VOUCHER_EXPIRY`.
 *
 * @example
 * parseVoucherWire({ account: '0x…', amount: '5000000', expiry: '1900000000' }).amount; // 5_000_000n
 */
export function parseVoucherWire(v: unknown, path = 'voucher'): Voucher {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, 'an object', v);
  const o = v as Record<string, unknown>;
  const account = o.account;
  if (typeof account !== 'string' || !ADDRESS.test(account) || !isAddress(account, { strict: true })) {
    throw bad(
      `${path}.account`,
      'a 0x address of 40 hex digits (mixed case only with a valid checksum)',
      account,
    );
  }
  return {
    account: getAddress(account),
    amount: wireUint(o.amount, `${path}.amount`, MAX_VOUCHER_AMOUNT),
    expiry: wireUint(o.expiry, `${path}.expiry`, MAX_VOUCHER_EXPIRY),
  };
}

/**
 * Parses a signed voucher from the wire: `parseVoucherWire`'s fields and `signature`, 0x and 130
 * hex digits (65 bytes). Throws HearthError('input/invalid') naming the bad field.
 */
export function parseSignedVoucherWire(v: unknown, path = 'voucher'): SignedVoucher {
  const voucher = parseVoucherWire(v, path);
  const signature = (v as Record<string, unknown>).signature;
  if (typeof signature !== 'string' || !SIGNATURE.test(signature)) {
    throw bad(`${path}.signature`, 'a 65-byte signature as 0x and 130 hex digits', signature);
  }
  return { voucher, signature: signature.toLowerCase() as Hex };
}
