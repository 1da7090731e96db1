/**
 * The network deployer (agent/ports.ts Deployer) for nodes with real BMCs: a job of the boot server (./jobs.ts) per
 * installer step. `prepare` registers it before the node is set to boot, `deploy` waits for the installer's result
 * (a restart of metald waits for the same job: its state is in the store), `revoke` refuses the instance's open jobs.
 */
import type { Node } from '../model.js';
import type { DeployJob, DeployOptions, Deployer, PrepareOptions } from '../ports.js';
import type { BootJobs } from './jobs.js';

export class NetworkDeployer implements Deployer {
  constructor(private readonly jobs: BootJobs) {}

  async prepare(node: Node, job: DeployJob, opts: PrepareOptions): Promise<void> {
    this.jobs.prepare(node, job, opts);
  }

  async deploy(node: Node, job: DeployJob, opts: DeployOptions): Promise<void> {
    this.jobs.prepare(node, job, opts);
    await this.jobs.wait(opts.jobId, { signal: opts.signal, onProgress: opts.onProgress });
  }

  async revoke(instanceId: string, reason: string): Promise<void> {
    this.jobs.revoke(instanceId, reason);
  }

  booted(jobId: string): boolean {
    const state = this.jobs.get(jobId)?.state;
    return state !== undefined && state !== 'issued';
  }
}
