/**
 * TEST-ONLY: the file-driven store fault injector of scripts/test-metald-store-faults.ts (kept apart so tests can
 * import it without starting a daemon). The file is read on every write, so a test can create, change or remove it
 * while the daemon runs. It lists store write names (agent/store/sqlite.ts STORE_WRITE_OPS, separated by whitespace
 * or commas) or `*`; a listed write throws StoreError('injected fault'). No file: no fault.
 */
import fs from 'node:fs';
import type { StoreFaultInjector } from '../agent/store/sqlite.js';
import { StoreError } from '../agent/store/types.js';

/** The environment variable naming the fault file (read by the test-only entry point only, never by metald). */
export const STORE_FAULT_ENV = 'METALD_TEST_STORE_FAULT_FILE';

/** An injector that fails the writes the file lists at the moment of the write. */
export function faultFromFile(file: string): StoreFaultInjector {
  return {
    beforeWrite(op: string): void {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch {
        return; // no file: no fault
      }
      const ops = text.split(/[\s,]+/).filter((s) => s !== '');
      if (ops.includes('*') || ops.includes(op)) {
        throw new StoreError('injected fault', { cause: new Error(`${STORE_FAULT_ENV}: ${op}`) });
      }
    },
  };
}
