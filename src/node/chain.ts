// The chain side of credit in Node: a local chain (anvil) for tests and `hearth chain`, deploying
// HearthCredit, claims sent by a key that pays the gas (a relayer: the tokens still go to the
// voucher's account), reads, and key files that refuse to be read by others.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  type Account,
  type Address,
  type Chain,
  type Client,
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  type Hex,
  http,
  type LocalAccount,
  parseEventLogs,
  type Transport,
  type WalletClient,
} from 'viem';
import { nonceManager, privateKeyToAccount } from 'viem/accounts';
import {
  deployContract,
  getChainId,
  getCode,
  readContract,
  simulateContract,
  waitForTransactionReceipt,
  writeContract,
} from 'viem/actions';
import { HearthError } from '../core/errors.ts';
import { HEARTH_CREDIT_ABI } from '../credits/abi.ts';
import { claimError, skipReason, type VoucherRefusal } from '../credits/claim-errors.ts';
import type { SignedVoucher, Voucher } from '../credits/voucher.ts';
import { loadHearthCredit } from './contracts.ts';

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------- anvil

/** A dev account of the local chain: funded with ETH, its key known to everyone. */
export interface DevAccount {
  readonly address: Address;
  readonly privateKey: Hex;
}

/** A running anvil. */
export interface Anvil {
  /** `http://127.0.0.1:PORT` */
  readonly rpcUrl: string;
  readonly port: number;
  readonly chainId: number;
  /** viem's chain for it (wallet clients need one to send transactions). */
  readonly chain: Chain;
  /** Its funded dev accounts, in anvil's order. */
  readonly accounts: readonly DevAccount[];
  /** Stops it (SIGTERM, then SIGKILL after a second); resolves when it has exited. */
  close(): Promise<void>;
}

export interface AnvilOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number;
  readonly host?: string;
  /** Default 31337, anvil's own. */
  readonly chainId?: number;
  /** Dev accounts to fund (default 10). */
  readonly accounts?: number;
  /** How long to wait for "Listening on" (default 15 s). */
  readonly startTimeoutMs?: number;
}

/** The anvil binary the `@foundry-rs/anvil` package ships for this platform; `$HEARTH_ANVIL` overrides. */
export function anvilBinary(): string {
  if (process.env.HEARTH_ANVIL) return process.env.HEARTH_ANVIL;
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const exe = process.platform === 'win32' ? 'anvil.exe' : 'anvil';
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`;
  try {
    return require.resolve(`${pkg}/bin/${exe}`);
  } catch (e) {
    throw new HearthError(
      'chain/anvil',
      `no anvil binary for ${process.platform}-${process.arch}: ${pkg} is not installed (npm ci installs the one for this machine), or set HEARTH_ANVIL to an anvil binary.`,
      { cause: e },
    );
  }
}

/** Keeps the last `max` characters of a stream's text, for an error message. */
function tail(max: number): { push(s: string): void; text(): string } {
  let buf = '';
  return {
    push(s) {
      buf = (buf + s).slice(-max);
    },
    text: () => buf,
  };
}

/**
 * Starts anvil on loopback and waits until it listens. The caller must `close()` it.
 *
 * @example
 * const anvil = await startAnvil();
 * try { … anvil.rpcUrl … } finally { await anvil.close(); }
 */
export async function startAnvil(options: AnvilOptions = {}): Promise<Anvil> {
  const host = options.host ?? '127.0.0.1';
  const chainId = options.chainId ?? 31337;
  const args = [
    '--host',
    host,
    '--port',
    String(options.port ?? 0),
    '--chain-id',
    String(chainId),
    '--accounts',
    String(options.accounts ?? 10),
    '--color',
    'never',
    // One thread: tests and the hub share small machines, and a local chain needs little.
    '--threads',
    '1',
  ];
  const child: ChildProcess = spawn(anvilBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = tail(4000);
  const keys: Hex[] = [];
  // A process that ends without close() (a crashed test, an uncaught error) takes its chain with it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', killOnExit);
      resolve();
    }),
  );

  const port = await new Promise<number>((resolve, reject) => {
    let lineBuf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new HearthError(
          'chain/anvil',
          `anvil did not start listening within ${options.startTimeoutMs ?? 15_000} ms.`,
          {
            details: { output: out.text() },
          },
        ),
      );
    }, options.startTimeoutMs ?? 15_000);
    const onData = (chunk: Buffer) => {
      const s = chunk.toString('utf8');
      out.push(s);
      lineBuf += s;
      const lines = lineBuf.split('\n');
      lineBuf = lines.pop() ?? '';
      for (const line of lines) {
        // "(0) 0xac09…ff80": the private keys section (the accounts section has 40-digit addresses).
        const key = /^\((\d+)\) (0x[0-9a-fA-F]{64})\s*$/.exec(line.trim());
        if (key?.[2]) keys.push(key[2] as Hex);
        const listening = /^Listening on .*:(\d+)\s*$/.exec(line.trim());
        if (listening?.[1]) {
          clearTimeout(timer);
          // From now on its output is one line per RPC call: keep only the tail, for errors.
          child.stdout?.off('data', onData);
          child.stdout?.on('data', (c: Buffer) => out.push(c.toString('utf8')));
          resolve(Number(listening[1]));
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => out.push(c.toString('utf8')));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new HearthError('chain/anvil', `anvil could not be started: ${e.message}`, { cause: e }));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new HearthError(
          'chain/anvil',
          `anvil exited before listening (${signal ?? `exit ${code}`}): ${out.text().trim().slice(-500) || 'no output'}`,
          { details: { code, signal } },
        ),
      );
    });
  });

  const rpcUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const chain = localChain(chainId, rpcUrl);
  return {
    rpcUrl,
    port,
    chainId,
    chain,
    accounts: keys.map((privateKey) => ({ address: privateKeyToAccount(privateKey).address, privateKey })),
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 1000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A viem chain for a local or private chain at `rpcUrl`. */
export function localChain(chainId: number, rpcUrl: string): Chain {
  return defineChain({
    id: chainId,
    name: `chain ${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

// ---------------------------------------------------------------- clients

/**
 * A wallet client that sends with `privateKey` at `rpcUrl` (public actions included). Its account
 * counts nonces locally (viem's nonce manager), so concurrent claims from one relayer key do not
 * collide. The chain id is asked of the RPC unless given; `expectChainId` refuses another chain.
 *
 * @example
 * const relayer = await walletFor(rpcUrl, readKeyFile('relayer.key'));
 */
export async function walletFor(
  rpcUrl: string,
  privateKey: Hex,
  options: { chainId?: number } = {},
): Promise<WalletClient<Transport, Chain, LocalAccount>> {
  const account = privateKeyToAccount(privateKey, { nonceManager });
  const transport = http(rpcUrl, { retryCount: 1 });
  let chainId: number;
  try {
    chainId = await getChainId(createPublicClient({ transport }));
  } catch (e) {
    throw claimError(e, { rpcUrl });
  }
  if (options.chainId !== undefined && chainId !== options.chainId) {
    throw new HearthError(
      'chain/mismatch',
      `the RPC at ${rpcUrl} serves chain ${chainId}, not chain ${options.chainId}: check --chain-rpc.`,
      { details: { rpcUrl, chainId, expected: options.chainId } },
    );
  }
  return createWalletClient({ account, chain: localChain(chainId, rpcUrl), transport });
}

type Sender = WalletClient<Transport, Chain | undefined, Account>;

// ---------------------------------------------------------------- deploy and inspect

/**
 * Deploys HearthCredit from `wallet`'s account, with `owner` (who may rotate the signer) and
 * `signer` (the hub's voucher key's address). Returns its address once mined.
 *
 * @example
 * const contract = await deployHearthCredit(deployer, { owner: deployer.account.address, signer: hubKey.address });
 */
export async function deployHearthCredit(
  wallet: Sender,
  args: { owner: Address; signer: Address },
): Promise<Address> {
  const { abi, bytecode } = await loadHearthCredit();
  try {
    const hash = await deployContract(wallet, {
      abi,
      bytecode,
      args: [args.owner, args.signer],
      account: wallet.account,
      chain: wallet.chain,
    });
    const receipt = await waitForTransactionReceipt(wallet, { hash });
    if (receipt.status !== 'success' || !receipt.contractAddress) {
      throw new HearthError('chain/reverted', `deploying HearthCredit failed (transaction ${hash}).`, {
        details: { hash },
      });
    }
    return getAddress(receipt.contractAddress);
  } catch (e) {
    throw claimError(e, { step: 'deploy' });
  }
}

/** What `inspectCreditContract` found. */
export interface CreditContractInfo {
  readonly chainId: number;
  /** The key whose vouchers it accepts now. */
  readonly signer: Address;
  /** The key before the last rotation (zero address if none), trusted until `previousValidUntil`. */
  readonly previousSigner: Address;
  readonly previousValidUntil: bigint;
  readonly owner: Address;
}

/**
 * Checks that a HearthCredit answers at `contract` (a hub does this at start) and reads its keys.
 * Throws 'chain/unreachable' when the RPC does not answer, 'chain/mismatch' when there is no
 * contract there or it is not a HearthCredit.
 */
export async function inspectCreditContract(client: Client, contract: Address): Promise<CreditContractInfo> {
  let code: Hex | undefined;
  let chainId: number;
  try {
    [code, chainId] = await Promise.all([getCode(client, { address: contract }), getChainId(client)]);
  } catch (e) {
    throw claimError(e, { contract });
  }
  if (code === undefined || code === '0x') {
    throw new HearthError(
      'chain/mismatch',
      `there is no contract at ${contract} on chain ${chainId}: check --credit-contract and --chain-rpc.`,
      { details: { contract, chainId } },
    );
  }
  try {
    const [signer, [previousSigner, previousValidUntil], owner] = await Promise.all([
      readContract(client, { address: contract, abi: HEARTH_CREDIT_ABI, functionName: 'signer' }),
      readContract(client, { address: contract, abi: HEARTH_CREDIT_ABI, functionName: 'previousSigner' }),
      readContract(client, { address: contract, abi: HEARTH_CREDIT_ABI, functionName: 'owner' }),
    ]);
    return { chainId, signer, previousSigner, previousValidUntil, owner };
  } catch (e) {
    throw new HearthError(
      'chain/mismatch',
      `the contract at ${contract} on chain ${chainId} does not answer as a HearthCredit: check --credit-contract.`,
      { details: { contract, chainId }, cause: e },
    );
  }
}

// ---------------------------------------------------------------- claims

/** A mined claim. */
export interface ClaimReceipt {
  readonly hash: Hex;
  /** Base units minted to the voucher's account. */
  readonly minted: bigint;
  readonly gasUsed: bigint;
  readonly blockNumber: bigint;
}

/**
 * Redeems one voucher, sent (and paid for) by `wallet`'s account; the tokens go to
 * `voucher.account`. Simulates first, so a voucher the contract refuses costs no gas and throws
 * its HearthError ('voucher/expired', 'voucher/nothing-to-claim', …; see `claimError`).
 *
 * @example
 * const { minted } = await claimOnChain(relayer, contract, voucher, signature);
 */
export async function claimOnChain(
  wallet: Sender,
  contract: Address,
  voucher: Voucher,
  signature: Hex,
): Promise<ClaimReceipt> {
  const context = { account: voucher.account, amount: voucher.amount.toString() };
  try {
    const { request } = await simulateContract(wallet, {
      address: contract,
      abi: HEARTH_CREDIT_ABI,
      functionName: 'claim',
      args: [voucher.account, voucher.amount, voucher.expiry, signature],
      account: wallet.account,
      chain: wallet.chain,
    });
    const hash = await writeContract(wallet, request);
    const receipt = await waitForTransactionReceipt(wallet, { hash });
    if (receipt.status !== 'success') {
      // Mined but reverted: something changed between the simulation and the block (another
      // claim of the same account got in first). Ask again to name the reason.
      await simulateContract(wallet, {
        address: contract,
        abi: HEARTH_CREDIT_ABI,
        functionName: 'claim',
        args: [voucher.account, voucher.amount, voucher.expiry, signature],
        account: wallet.account,
        chain: wallet.chain,
      });
      throw new HearthError('chain/reverted', `the claim transaction ${hash} reverted.`, {
        details: { ...context, hash },
      });
    }
    const minted = parseEventLogs({
      abi: HEARTH_CREDIT_ABI,
      eventName: 'Transfer',
      logs: receipt.logs,
    }).reduce((sum, l) => sum + l.args.value, 0n);
    return { hash, minted, gasUsed: receipt.gasUsed, blockNumber: receipt.blockNumber };
  } catch (e) {
    throw claimError(e, context);
  }
}

/** A mined `claimMany`. */
export interface ClaimManyReceipt {
  readonly hash: Hex;
  /** Base units minted over the batch. */
  readonly total: bigint;
  /** Each paid account and what it was minted. */
  readonly paid: readonly { readonly account: Address; readonly minted: bigint }[];
  /** Each skipped voucher: its account, amount and the contract's reason. */
  readonly skipped: readonly {
    readonly account: Address;
    readonly amount: bigint;
    readonly reason: VoucherRefusal | Hex;
  }[];
  readonly gasUsed: bigint;
  readonly blockNumber: bigint;
}

/**
 * Redeems many vouchers in one transaction. A voucher the contract refuses is skipped (listed in
 * `skipped` with its reason) and the rest are paid; the batch reverts only as a whole transaction
 * would (no ETH for gas, an RPC failure). Throws 'input/invalid' for an empty batch.
 *
 * @example
 * const { paid, skipped } = await claimManyOnChain(relayer, contract, signedVouchers);
 */
export async function claimManyOnChain(
  wallet: Sender,
  contract: Address,
  vouchers: readonly SignedVoucher[],
): Promise<ClaimManyReceipt> {
  if (vouchers.length === 0) {
    throw new HearthError('input/invalid', 'claimMany: no vouchers to claim.', {
      details: { path: 'vouchers' },
    });
  }
  try {
    const hash = await writeContract(wallet, {
      address: contract,
      abi: HEARTH_CREDIT_ABI,
      functionName: 'claimMany',
      args: [vouchers.map((s) => ({ ...s.voucher, signature: s.signature }))],
      account: wallet.account,
      chain: wallet.chain,
    });
    const receipt = await waitForTransactionReceipt(wallet, { hash });
    if (receipt.status !== 'success') {
      throw new HearthError('chain/reverted', `the claimMany transaction ${hash} reverted.`, {
        details: { hash },
      });
    }
    const paid = parseEventLogs({ abi: HEARTH_CREDIT_ABI, eventName: 'Transfer', logs: receipt.logs }).map(
      (l) => ({
        account: l.args.to,
        minted: l.args.value,
      }),
    );
    const skipped = parseEventLogs({
      abi: HEARTH_CREDIT_ABI,
      eventName: 'ClaimSkipped',
      logs: receipt.logs,
    }).map((l) => ({
      account: l.args.account,
      amount: l.args.amount,
      reason: skipReason(l.args.reason) ?? l.args.reason,
    }));
    return {
      hash,
      total: paid.reduce((s, p) => s + p.minted, 0n),
      paid,
      skipped,
      gasUsed: receipt.gasUsed,
      blockNumber: receipt.blockNumber,
    };
  } catch (e) {
    throw claimError(e, { vouchers: vouchers.length });
  }
}

/** The total base units `account` has claimed from `contract` (the amount of its last voucher redeemed). */
export async function readClaimed(client: Client, contract: Address, account: Address): Promise<bigint> {
  try {
    return await readContract(client, {
      address: contract,
      abi: HEARTH_CREDIT_ABI,
      functionName: 'claimed',
      args: [account],
    });
  } catch (e) {
    throw claimError(e, { contract, account });
  }
}

/** `account`'s token balance in base units. */
export async function readBalance(client: Client, contract: Address, account: Address): Promise<bigint> {
  try {
    return await readContract(client, {
      address: contract,
      abi: HEARTH_CREDIT_ABI,
      functionName: 'balanceOf',
      args: [account],
    });
  } catch (e) {
    throw claimError(e, { contract, account });
  }
}

// ---------------------------------------------------------------- key files

const KEY = /^0x[0-9a-fA-F]{64}$/;

/**
 * Reads a private key (0x and 64 hex digits, surrounding whitespace allowed) from `path`.
 * Refuses, with HearthError('chain/key-file'), a file group or others may read or write, a missing
 * file, or one that does not hold exactly one valid secp256k1 key. Messages name the file, never
 * its contents.
 *
 * @example
 * const signerKey = readKeyFile('hearth-chain/signer.key');
 */
export function readKeyFile(path: string): Hex {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    throw new HearthError('chain/key-file', `key file ${path} cannot be read: ${(e as Error).message}`, {
      details: { path },
    });
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new HearthError(
      'chain/key-file',
      `key file ${path} is open to group or others (mode ${(mode & 0o777).toString(8).padStart(3, '0')}): a private key must be readable by its owner only. Run: chmod 600 ${path}`,
      { details: { path, mode: mode & 0o777 } },
    );
  }
  const text = readFileSync(path, 'utf8').trim();
  if (!KEY.test(text)) {
    throw new HearthError(
      'chain/key-file',
      `key file ${path} does not hold a private key: expected one line of 0x and 64 hex digits.`,
      { details: { path } },
    );
  }
  try {
    privateKeyToAccount(text as Hex);
  } catch {
    throw new HearthError(
      'chain/key-file',
      `key file ${path} holds 64 hex digits that are not a valid secp256k1 private key (zero, or not below the curve order).`,
      { details: { path } },
    );
  }
  return text as Hex;
}

/** Writes `key` to `path` readable by its owner only (0600), replacing the file whole. */
export function writeKeyFile(path: string, key: Hex): void {
  if (!KEY.test(key))
    throw new HearthError('input/invalid', 'writeKeyFile: not a 0x private key.', { details: { path } });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${key}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the mode above is masked by the umask; this is not
  renameSync(tmp, path);
}
