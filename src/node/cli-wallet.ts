// `hearth hub`'s wallet flags: the chain, the credit contract, the key that signs vouchers and the
// key that relays claims. Keys come from files the operator keeps (never flags, which `ps` shows,
// nor environment variables, which child processes inherit), and are never printed.
import { createPublicClient, http, isAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { HearthError } from '../core/errors.ts';
import { inspectCreditContract, readKeyFile } from './chain.ts';
import { type Flags, str, usage } from './cli-args.ts';
import type { HubWalletOptions } from './hub-server.ts';

export const WALLET_FLAGS_HELP = `  --chain-rpc URL         an RPC endpoint of the chain the credit contract is on
  --credit-contract ADDR  the HearthCredit contract (with --chain-rpc and --signer-key-file:
                          validated credit becomes claimable tokens)
  --signer-key-file FILE  the key the contract trusts to sign vouchers (0x + 64 hex digits; the
                          file must not be readable by group or others)
  --relayer-key-file FILE a funded key: the hub submits volunteers' claims so they need no ETH
  --embed-share PCT       an embedding site's share of credit earned through its widget, in
                          percent (default 10)`;

export const WALLET_FLAG_OPTIONS = {
  'chain-rpc': { type: 'string' },
  'credit-contract': { type: 'string' },
  'signer-key-file': { type: 'string' },
  'relayer-key-file': { type: 'string' },
  'embed-share': { type: 'string' },
} as const;

/** The hub's wallet options from its flags, or undefined when none is given. */
export async function walletOptions(
  flags: Flags,
): Promise<{ wallet?: HubWalletOptions; embedShareBps?: number }> {
  const rpc = str(flags, 'chain-rpc');
  const contract = str(flags, 'credit-contract');
  const signerFile = str(flags, 'signer-key-file');
  const relayerFile = str(flags, 'relayer-key-file');
  const share = str(flags, 'embed-share');
  let embedShareBps: number | undefined;
  if (share !== undefined) {
    const pct = Number(share);
    if (!/^\d{1,3}(\.\d{1,2})?$/.test(share) || pct > 100) {
      throw usage(
        `--embed-share: expected a percentage from 0 to 100 (two decimals at most), got "${share}".`,
      );
    }
    embedShareBps = Math.round(pct * 100);
  }
  const out = embedShareBps === undefined ? {} : { embedShareBps };
  if (rpc === undefined && contract === undefined && signerFile === undefined && relayerFile === undefined) {
    return out;
  }
  if (rpc === undefined || contract === undefined || signerFile === undefined) {
    throw usage('--chain-rpc, --credit-contract and --signer-key-file go together.');
  }
  if (!isAddress(contract))
    throw usage(`--credit-contract: expected an address (0x and 40 hex digits), got "${contract}".`);
  if (!URL.canParse(rpc)) throw usage(`--chain-rpc: expected a URL, got "${rpc}".`);
  const signerKey = readKeyFile(signerFile);
  const relayerKey = relayerFile === undefined ? undefined : readKeyFile(relayerFile);
  // The contract must be a HearthCredit that trusts this hub's key: otherwise every voucher the
  // hub hands out would be refused on chain, and volunteers would find out only when claiming.
  const info = await inspectCreditContract(createPublicClient({ transport: http(rpc) }), contract);
  const mine = privateKeyToAccount(signerKey).address;
  if (info.signer !== mine) {
    throw new HearthError(
      'chain/mismatch',
      `--signer-key-file: the contract at ${contract} trusts ${info.signer}, not this key's address ${mine}; use the key the contract was deployed or rotated to (setSigner).`,
      { details: { contract, trusted: info.signer, key: mine } },
    );
  }
  const chainId = info.chainId;
  return {
    ...out,
    wallet: {
      chainId,
      contract,
      signerKey,
      ...(relayerKey ? { relayer: { rpcUrl: rpc, key: relayerKey } } : {}),
    },
  };
}
