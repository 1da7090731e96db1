#!/usr/bin/env node
/**
 * TEST-ONLY daemon entry point: the real metald (agent/main.ts runMetald) with a store fault injector driven by a
 * file, for child-process tests of "no 201/202 before commit" (test/agent/store-failure.test.ts). Never install or
 * run it in production: the production binary, dist/agent/main.js, injects nothing and ignores the variable.
 *
 *   METALD_TEST_STORE_FAULT_FILE=/tmp/fault node dist/scripts/test-metald-store-faults.js --config FILE
 *
 * The fault file's format: scripts/test-store-fault-file.ts.
 */
import { runMetald } from '../agent/main.js';
import { faultFromFile, STORE_FAULT_ENV } from './test-store-fault-file.js';

const file = process.env[STORE_FAULT_ENV];
if (!file) {
  console.error(`${STORE_FAULT_ENV} must name the fault file`);
  process.exitCode = 2;
} else {
  runMetald(process.argv, { storeFault: faultFromFile(file) }).catch((e: unknown) => {
    console.error(`metald (store-fault test build): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  });
}
