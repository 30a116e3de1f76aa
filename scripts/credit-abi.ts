// Prints src/credits/abi.ts from what solc makes of contracts/HearthCredit.sol:
//   node scripts/run-ts.mjs scripts/credit-abi.ts > src/credits/abi.ts && npx biome format --write src/credits/abi.ts
import { loadHearthCredit } from '../src/node/contracts.ts';

const { abi } = await loadHearthCredit();
const head = `// HearthCredit's ABI (contracts/HearthCredit.sol) as a TypeScript const, so that viem infers the
// argument and result types of every call in the browser, which cannot run solc. Generated from solc's
// output by scripts/credit-abi.ts; test/credits/abi.node.test.ts holds it equal to what solc makes of the
// source today. After editing the contract:
//   node scripts/run-ts.mjs scripts/credit-abi.ts > src/credits/abi.ts && npx biome format --write src/credits/abi.ts

/** HearthCredit's ABI: ERC-20, ERC-5267 (eip712Domain), Ownable, and the voucher calls. */
export const HEARTH_CREDIT_ABI = ${JSON.stringify(abi, null, 2)} as const;
`;
process.stdout.write(head);
