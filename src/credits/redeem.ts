// Reading and redeeming credit on the chain through the volunteer's own wallet (EIP-1193): what the
// contract has minted to an address and its token balance (eth_call), and a claim the volunteer
// submits and pays gas for (eth_sendTransaction) — the path when the hub relays no claims. With a
// relaying hub the page never asks the wallet for a transaction: one prompt in all (the sign-in).
import { decodeFunctionResult, encodeFunctionData, type Hex, parseAbi } from 'viem';
import { HearthError } from '../core/errors.ts';
import { call, type Eip1193Provider } from './eip1193.ts';

/** The part of the credit contract's ABI the page uses (contracts/HearthCredit.sol). */
export const REDEEM_ABI = parseAbi([
  'function claim(address account, uint256 amount, uint256 expiry, bytes signature)',
  'function claimed(address account) view returns (uint256)',
  'function balanceOf(address account) view returns (uint256)',
]);

/** A voucher as the hub's `GET /v1/wallet/:address/voucher` gives it. */
export interface VoucherIn {
  readonly account: string;
  readonly amount: bigint;
  readonly expiry: bigint;
  readonly contract: string;
  readonly signature: string;
}

async function read(
  provider: Eip1193Provider,
  contract: string,
  functionName: 'claimed' | 'balanceOf',
  account: string,
): Promise<bigint> {
  const data = encodeFunctionData({ abi: REDEEM_ABI, functionName, args: [account as Hex] });
  const out = await call(provider, 'eth_call', [{ to: contract, data }, 'latest'], `reading ${functionName}`);
  if (typeof out !== 'string' || !/^0x[0-9a-fA-F]*$/.test(out)) {
    throw new HearthError('wallet/unavailable', `reading ${functionName}: the wallet answered no hex data.`);
  }
  try {
    return decodeFunctionResult({ abi: REDEEM_ABI, functionName, data: out as Hex });
  } catch (e) {
    throw new HearthError(
      'chain/mismatch',
      `reading ${functionName}: the contract at ${contract} did not answer like HearthCredit (is the wallet on the right chain?).`,
      { cause: e },
    );
  }
}

/** What the contract has minted to `account` in total, and its balance now (base units). */
export async function claimState(
  provider: Eip1193Provider,
  contract: string,
  account: string,
): Promise<{ claimed: bigint; balance: bigint }> {
  const [claimed, balance] = await Promise.all([
    read(provider, contract, 'claimed', account),
    read(provider, contract, 'balanceOf', account),
  ]);
  return { claimed, balance };
}

/**
 * Submits the voucher's claim from `from` (the wallet pays gas: one prompt) and waits up to
 * `timeoutMs` for its receipt; the transaction hash.
 */
export async function claimYourself(
  provider: Eip1193Provider,
  from: string,
  v: VoucherIn,
  timeoutMs = 120_000,
): Promise<string> {
  const data = encodeFunctionData({
    abi: REDEEM_ABI,
    functionName: 'claim',
    args: [v.account as Hex, v.amount, v.expiry, v.signature as Hex],
  });
  const hash = await call(
    provider,
    'eth_sendTransaction',
    [{ from, to: v.contract, data }],
    'claiming your tokens',
  );
  if (typeof hash !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(hash)) {
    throw new HearthError(
      'wallet/unavailable',
      'claiming your tokens: the wallet returned no transaction hash.',
    );
  }
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = (await call(provider, 'eth_getTransactionReceipt', [hash], 'waiting for the claim')) as {
      status?: unknown;
    } | null;
    if (r && typeof r === 'object') {
      if (r.status === '0x1') return hash;
      throw new HearthError(
        'chain/reverted',
        `claiming your tokens: transaction ${hash} was reverted by the contract.`,
      );
    }
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new HearthError(
    'chain/unreachable',
    `claiming your tokens: no receipt for ${hash} within ${timeoutMs / 1000} s.`,
  );
}
