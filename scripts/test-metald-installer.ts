#!/usr/bin/env node
/**
 * TEST-ONLY daemon entry point: the real metald (agent/main.ts runMetald) with a stand-in installer for every node,
 * so that the OS operations run end to end on REAL BMCs (ipmi_sim, the Redfish emulator: test/e2e/real-bmc/) until
 * the network installer exists. Its `deploy` is the deploy ramdisk's part only: it takes METALD_TEST_INSTALL_MS
 * (default 100), reports progress 0, 50, 100, and appends each job it was handed to METALD_TEST_INSTALL_LOG as one
 * JSON line `{node, operation, image, job_id}` (no password hash, keys or user data). Everything else (power,
 * boot device, media, the ICMP confirmation) is metald's own, through the real drivers. Never install or run it in
 * production: dist/agent/main.js injects nothing.
 *
 *   METALD_TEST_INSTALL_LOG=/tmp/jobs METALD_TEST_INSTALL_MS=50 node dist/scripts/test-metald-installer.js --config FILE
 */
import { appendFileSync } from 'node:fs';
import { runMetald } from '../agent/main.js';
import type { Node } from '../agent/model.js';
import type { DeployJob, DeployOptions, Deployer } from '../agent/ports.js';

const LOG_ENV = 'METALD_TEST_INSTALL_LOG';
const MS_ENV = 'METALD_TEST_INSTALL_MS';

class StandInInstaller implements Deployer {
  constructor(
    private readonly logFile: string,
    private readonly ms: number,
  ) {}

  /** Nothing to serve: the stand-in's job starts with its deploy. */
  async prepare(): Promise<void> {}

  async revoke(): Promise<void> {}

  async deploy(node: Node, job: DeployJob, opts: DeployOptions): Promise<void> {
    appendFileSync(this.logFile, `${JSON.stringify({ node: node.name, operation: job.operation, image: job.image?.name ?? null, job_id: opts.jobId })}\n`);
    opts.onProgress(0);
    for (const p of [50, 100]) {
      await new Promise<void>((res, rej) => {
        if (Date.now() + this.ms / 2 > opts.deadlineAt) rej(new Error(`installer did not finish by ${new Date(opts.deadlineAt).toISOString()}`));
        const t = setTimeout(res, this.ms / 2);
        opts.signal.addEventListener('abort', () => {
          clearTimeout(t);
          rej(new Error('installer aborted', { cause: opts.signal.reason }));
        }, { once: true });
      });
      opts.onProgress(p);
    }
  }
}

const logFile = process.env[LOG_ENV];
const ms = Number(process.env[MS_ENV] ?? '100');
if (!logFile || !Number.isInteger(ms) || ms < 0) {
  console.error(`${LOG_ENV} must name the job log file, and ${MS_ENV} (if set) be whole milliseconds`);
  process.exitCode = 2;
} else {
  runMetald(process.argv, { deployer: new StandInInstaller(logFile, ms) }).catch((e: unknown) => {
    console.error(`metald (installer test build): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  });
}
