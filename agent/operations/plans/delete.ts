/**
 * Delete: power off (from running, the PowerOff edge and then Delete), wipe the disk by booting the ramdisk and
 * letting the installer erase it (the same path as uninstall), power off, release the node. Every step is safe to
 * repeat, so a restart resumes a delete where it was: the tenant's server ends off and the node free.
 */
import type { Plan } from '../plan.js';
import { bmcStep, installerStep, powerStep } from './steps.js';

export function deletePlan(): Plan {
  return {
    kind: 'delete',
    steps: [
      powerStep('off', {
        onRestart: 'repeat',
        then: (c) => {
          if (c.inst().state !== 'running') return;
          c.edge('power-off');
          c.edge('delete');
        },
      }),
      bmcStep('set_boot_device', (c) => c.bmc().setBoot({ device: 'pxe', persistent: false, mode: c.node().boot_mode }, { signal: c.signal })),
      powerStep('on', { onRestart: 'repeat' }),
      installerStep('wipe', (c) => ({
        operation: 'uninstall',
        instance_id: c.instanceId,
        image: null,
        hostname: null,
        addresses: [],
        password_hash: null,
        ssh_keys: [],
        user_data: null,
      })),
      powerStep('off', { onRestart: 'repeat' }),
      {
        name: 'release_node',
        onRestart: 'repeat',
        waits: false,
        run: async (c) => c.rec.releaseNode(c.node().id, c.instanceId),
      },
    ],
  };
}
