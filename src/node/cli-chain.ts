// `hearth chain`: a local chain with HearthCredit deployed, for trying credit to a wallet on one
// machine. It starts anvil, deploys the contract with a fresh voucher key as its signer, writes the
// keys a hub needs into a folder (owner-only files), prints what to pass to `hearth hub`, and
// stays up until Ctrl-C.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Address, Hex } from 'viem';
import type { Anvil } from './chain.ts';
import { type Command, int, str } from './cli-args.ts';

/** A local chain with HearthCredit on it, and the key files a hub needs. */
export interface LocalChain {
  readonly anvil: Anvil;
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly contract: Address;
  /** The hub's voucher key (the contract's signer), mode 0600. */
  readonly signerKeyFile: string;
  /** A funded dev account that sends claims and pays their gas, mode 0600. */
  readonly relayerKeyFile: string;
  /** The contract's owner (may rotate the signer: `setSigner`), a funded dev account, mode 0600. */
  readonly ownerKeyFile: string;
  readonly signer: Address;
  readonly relayer: Address;
  readonly owner: Address;
  /** The flags to pass to `hearth hub`. */
  readonly hubFlags: readonly string[];
  close(): Promise<void>;
}

/**
 * Starts anvil, deploys HearthCredit (owner: dev account 0; signer: a fresh key) and writes
 * `signer.key`, `relayer.key` (dev account 1) and `owner.key` into `dir`.
 *
 * @example
 * const chain = await startLocalChain({ dir: 'hearth-chain' });
 * console.log(chain.hubFlags.join(' ')); await chain.close();
 */
export async function startLocalChain(options: {
  dir: string;
  port?: number;
  chainId?: number;
}): Promise<LocalChain> {
  // Loaded here, not at the top: every `hearth` command imports this file, and viem takes about
  // half a second to load.
  const [
    { deployHearthCredit, startAnvil, walletFor, writeKeyFile },
    { generatePrivateKey, privateKeyToAccount },
  ] = await Promise.all([import('./chain.ts'), import('viem/accounts')]);
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const anvil = await startAnvil({
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.chainId === undefined ? {} : { chainId: options.chainId }),
  });
  try {
    const [ownerAccount, relayerAccount] = anvil.accounts;
    if (!ownerAccount || !relayerAccount) throw new Error('anvil printed fewer than two dev accounts');
    const signerKey: Hex = generatePrivateKey();
    const signer = privateKeyToAccount(signerKey).address;
    const deployer = await walletFor(anvil.rpcUrl, ownerAccount.privateKey, { chainId: anvil.chainId });
    const contract = await deployHearthCredit(deployer, { owner: ownerAccount.address, signer });
    const signerKeyFile = join(dir, 'signer.key');
    const relayerKeyFile = join(dir, 'relayer.key');
    const ownerKeyFile = join(dir, 'owner.key');
    writeKeyFile(signerKeyFile, signerKey);
    writeKeyFile(relayerKeyFile, relayerAccount.privateKey);
    writeKeyFile(ownerKeyFile, ownerAccount.privateKey);
    return {
      anvil,
      rpcUrl: anvil.rpcUrl,
      chainId: anvil.chainId,
      contract,
      signerKeyFile,
      relayerKeyFile,
      ownerKeyFile,
      signer,
      relayer: relayerAccount.address,
      owner: ownerAccount.address,
      hubFlags: [
        '--chain-rpc',
        anvil.rpcUrl,
        '--credit-contract',
        contract,
        '--signer-key-file',
        signerKeyFile,
        '--relayer-key-file',
        relayerKeyFile,
      ],
      close: () => anvil.close(),
    };
  } catch (e) {
    await anvil.close();
    throw e;
  }
}

export const chainCommand: Command = {
  name: 'chain',
  summary: 'a local chain (anvil) with the credit contract deployed, and the keys for `hearth hub`',
  help: `usage: hearth chain [--dir DIR] [--port N] [--chain-id ID]

Starts a local Ethereum chain (anvil, on 127.0.0.1), deploys HearthCredit (the ERC-20 that
vouchers redeem) and writes into DIR, readable by you only:
  signer.key    a fresh key: the hub signs vouchers with it, the contract trusts it
  relayer.key   a funded dev account: the hub sends claims with it and pays their gas
  owner.key     the contract's owner (a funded dev account): may rotate the signer
Prints the RPC URL, the contract's address, the chain id and the flags to pass to \`hearth hub\`,
then runs until Ctrl-C. The chain lives in memory: stopping it forgets every token and the
contract (the dev accounts' keys are anvil's well-known ones — never use them on a real chain).

  --dir DIR       where to write the key files (default: hearth-chain)
  --port N        the RPC port; 0 picks a free one (default: 8545, what wallets expect)
  --chain-id ID   the chain id (default: 31337, anvil's)`,
  options: {
    dir: { type: 'string' },
    port: { type: 'string' },
    'chain-id': { type: 'string' },
  },
  positionals: 0,
  async run(flags) {
    const chain = await startLocalChain({
      dir: str(flags, 'dir', 'hearth-chain'),
      port: int(flags, 'port', 8545, 0, 65535),
      chainId: int(flags, 'chain-id', 31337, 1, 2 ** 32 - 1),
    });
    process.stdout.write(
      [
        `rpc url          ${chain.rpcUrl}`,
        `chain id         ${chain.chainId}`,
        `credit contract  ${chain.contract}`,
        `signer           ${chain.signer}  (${chain.signerKeyFile})`,
        `relayer          ${chain.relayer}  (${chain.relayerKeyFile})`,
        `owner            ${chain.owner}  (${chain.ownerKeyFile})`,
        '',
        'run the hub with:',
        `  hearth hub ${chain.hubFlags.join(' ')}`,
        '',
        'Ctrl-C stops the chain.',
        '',
      ].join('\n'),
    );
    await new Promise<void>((done) => {
      const stop = (signal: NodeJS.Signals) => {
        process.stderr.write(`${signal}: stopping the chain\n`);
        chain.close().then(done, done);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};
