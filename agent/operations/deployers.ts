/**
 * Deployers: who runs the installer on a node. The fake lab's simulated installer (agent/fakes.ts) serves fake-driven
 * nodes; the network installer (iPXE, ramdisk, job document behind a one-time token) comes with the boot-server
 * issue, and until then an OS operation on a real node fails its `deploy` step with a message saying so.
 */
import type { Node } from '../model.js';
import type { DeployJob, DeployOptions, Deployer } from '../ports.js';

/** Chooses the deployer by the node's drivers. */
export class DeployerRouter implements Deployer {
  constructor(private readonly fake: Deployer | null) {}

  deploy(node: Node, job: DeployJob, opts: DeployOptions): Promise<void> {
    if (this.fake && node.bmc.drivers.includes('fake')) return this.fake.deploy(node, job, opts);
    return Promise.reject(new Error(`no installer is available for node ${node.name}: network installs (iPXE/virtual media) are not implemented yet`));
  }
}
