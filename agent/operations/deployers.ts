/**
 * Deployers: who runs the installer on a node. The fake lab's simulated installer (agent/fakes.ts) serves fake-driven
 * nodes; every other node gets the network installer (agent/boot/: iPXE or virtual media, the ramdisk, the job
 * document behind a one-time token), or, without `boot` in the config, fails its `prepare_boot` step saying so.
 */
import type { Node } from '../model.js';
import type { DeployJob, DeployOptions, Deployer, PrepareOptions } from '../ports.js';

/** Chooses the deployer by the node's drivers. */
export class DeployerRouter implements Deployer {
  /** `network`: the boot server's deployer (agent/boot/), null when `boot` is not configured. */
  constructor(
    private readonly fake: Deployer | null,
    private readonly network: Deployer | null = null,
  ) {}

  private route(node: Node): Deployer {
    if (this.fake && node.bmc.drivers.includes('fake')) return this.fake;
    if (this.network) return this.network;
    throw new Error(`no installer is available for node ${node.name}: configure \`boot\` (listen, public_url, ramdisk) for network installs`);
  }

  async prepare(node: Node, job: DeployJob, opts: PrepareOptions): Promise<void> {
    return this.route(node).prepare(node, job, opts);
  }

  async deploy(node: Node, job: DeployJob, opts: DeployOptions): Promise<void> {
    return this.route(node).deploy(node, job, opts);
  }

  async revoke(instanceId: string, reason: string): Promise<void> {
    await Promise.all([this.fake?.revoke(instanceId, reason), this.network?.revoke(instanceId, reason)]);
  }

  booted(jobId: string): boolean {
    return this.network?.booted?.(jobId) ?? false;
  }
}
