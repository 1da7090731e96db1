/**
 * Delete: power off (from running, the PowerOff edge and then Delete), wipe the disk by booting the ramdisk and
 * letting the installer erase it (the same path as uninstall), power off, eject any virtual medium, clear the boot
 * override, release the node. Every step is safe to repeat, so a restart resumes a delete where it was: the tenant's
 * server ends off and the node free.
 */
import type { DeployJob } from '../../ports.js';
import type { Plan, StepContext } from '../plan.js';
import { bmcStep, installerStep, powerStep, prepareStep, revokeJobsStep } from './steps.js';

/** The wipe: the installer erases the disks (the same job as an uninstall). */
const wipeJob = (c: StepContext): DeployJob => ({
  operation: 'uninstall',
  instance_id: c.instanceId,
  image: null,
  hostname: null,
  addresses: [],
  password_hash: null,
  ssh_keys: [],
  user_data: null,
});

/** A BMC call whose BMC_ERR_UNSUPPORTED (nothing was sent) means there is nothing to do. */
async function unlessUnsupported<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (e) {
    if ((e as { code?: string }).code === 'BMC_ERR_UNSUPPORTED') return undefined;
    throw e;
  }
}

export function deletePlan(): Plan {
  return {
    kind: 'delete',
    steps: [
      // A pending install's job (its token) is refused from here on: the delete's abort stopped the wait for it.
      revokeJobsStep(),
      powerStep('off', {
        onRestart: 'repeat',
        then: (c) => {
          if (c.inst().state !== 'running') return;
          c.edge('power-off');
          c.edge('delete');
        },
      }),
      prepareStep('wipe', wipeJob),
      bmcStep('set_boot_device', (c) => c.bmc().setBoot({ device: 'pxe', persistent: false, mode: c.node().boot_mode }, { signal: c.signal })),
      powerStep('on', { onRestart: 'repeat', bootsInto: 'wipe' }),
      installerStep('wipe', wipeJob),
      powerStep('off', { onRestart: 'repeat' }),
      // The next tenant finds no medium left in the virtual CD (a BMC without virtual media has none to eject).
      bmcStep('eject_media', (c) => unlessUnsupported(c.bmc().ejectMedia({ signal: c.signal }))),
      // Nor a boot override: the node follows its own boot order until the next operation sets one. A BMC that
      // cannot clear one (BMC_ERR_UNSUPPORTED: nothing was sent) keeps what the wipe's boot consumed.
      bmcStep('clear_boot_override', (c) => unlessUnsupported(c.bmc().clearBoot({ signal: c.signal }))),
      {
        name: 'release_node',
        onRestart: 'repeat',
        waits: false,
        run: async (c) => c.rec.releaseNode(c.node().id, c.instanceId),
      },
    ],
  };
}
