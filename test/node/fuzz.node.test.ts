// The protocol fuzz suite (fuzz-suite.ts) against a hub on its SQLite file.
import { describeFuzz, SQLITE_FUZZ_STORE } from './fuzz-suite.ts';

describeFuzz(SQLITE_FUZZ_STORE);
