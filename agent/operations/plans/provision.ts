/**
 * install (create), reinstall, switch-install, modify-ip, uninstall, change-password, and retry (the failed one
 * again): power off (from running, the PowerOff edge), record the parameters, boot the deploy ramdisk, let the
 * installer work, then boot the installed system and see it answer ICMP, or leave the server off (the rules table's
 * `final_power`). The state edges of success and failure are the rules table's, taken by the runner.
 */
import type { Instance, OperationKind } from '../../model.js';
import { StepFailed } from '../errors.js';
import { addressesAfter, confirmAlive } from '../confirm-alive.js';
import type { Plan, PlanInputs, Step, StepContext } from '../plan.js';
import { osRule } from '../rules.js';
import { listenUrl } from '../../api/public-url.js';
import type { DeployJob } from '../../ports.js';
import { bmcStep, installerStep, powerStep, prepareStep } from './steps.js';

export type ProvisionInputs = Extract<PlanInputs, { plan: 'provision' }>;

/** The parameters given at acceptance (kept in `extra.pending_params`) become the instance's: a retry re-runs them. */
function recordParameters(op: ProvisionInputs['op']): Step {
  return {
    name: 'record_parameters',
    onRestart: 'repeat',
    waits: false,
    silent: true,
    run: async (c) => {
      const inst = c.inst();
      const { pending_params: given, ...extra } = inst.extra;
      const changes: Partial<Instance> = { progress: 0, extra: { ...extra, ...withoutImage(given) } };
      if (osRule(op).setsImage && given?.image_uuid) changes.image_uuid = given.image_uuid;
      c.mutate(changes);
    },
  };
}

function withoutImage(p: Instance['extra']['pending_params']): Partial<Instance['extra']> {
  if (!p) return {};
  const { image_uuid: _image, ...rest } = p;
  return rest;
}

const imageOf = (c: StepContext) => c.cfg.images.find((i) => i.uuid === c.inst().image_uuid) ?? null;
const media = (c: StepContext) => c.data.inputs.plan === 'provision' && c.data.inputs.virtual_media;

export function provisionPlan(kind: OperationKind, inputs: ProvisionInputs): Plan {
  const op = inputs.op;
  const final = osRule(op).finalPower;
  /** What the installer is asked to do, built from the instance as the parameters step left it. */
  const jobOf = (c: StepContext): DeployJob => {
    const cur = c.inst();
    const image = imageOf(c);
    return {
      operation: op,
      instance_id: cur.id,
      image: image ? { uuid: image.uuid, name: image.name, url: image.url, sha256: image.sha256, os: image.os } : null,
      hostname: cur.extra.hostname ?? cur.name,
      addresses: addressesAfter(cur),
      password_hash: cur.extra.password_hash ?? null,
      ssh_keys: cur.extra.ssh_keys ?? [],
      user_data: cur.extra.user_data ?? null,
    };
  };
  const steps: Step[] = [
    powerStep('off', {
      then: (c) => {
        if (c.inst().state === 'running') c.edge('power-off');
      },
    }),
    recordParameters(op),
    // Always from a verified off (a server switched on behind our back would not boot the ramdisk), unless this
    // operation has just verified it.
    powerStep('off'),
    prepareStep('deploy', jobOf),
    bmcStep('insert_media', async (c) => {
      const boot = c.cfg.boot;
      // The URL the BMC fetches the ISO by: boot.public_url, else the boot server's listen address (a fixed port).
      const base = boot?.public_url ?? (boot && boot.listen.port !== 0 ? listenUrl(boot.listen, null) : null);
      if (!boot?.ramdisk.iso || !base) throw new StepFailed('insert_media', 'AGENT_ERR_CONFIG', 'virtual media needs boot.ramdisk.iso and boot.public_url (or a boot.listen with a fixed port)');
      return c.bmc().insertMedia(`${base.replace(/\/+$/, '')}/v1/ramdisk/ramdisk.iso`, { signal: c.signal });
    }, media),
    bmcStep('set_boot_device', (c) => c.bmc().setBoot({ device: media(c) ? 'cdrom' : 'pxe', persistent: false, mode: c.node().boot_mode }, { signal: c.signal })),
    powerStep('on', { bootsInto: 'deploy' }),
    installerStep('deploy', jobOf, (c, p) => c.mutate({ progress: Math.max(0, Math.min(100, Math.round(p))) }, { quiet: true })),
    bmcStep('eject_media', (c) => c.bmc().ejectMedia({ signal: c.signal }), media),
    bmcStep('set_boot_device', (c) => c.bmc().setBoot({ device: 'disk', persistent: true, mode: c.node().boot_mode }, { signal: c.signal })),
    powerStep('off'),
    ...(final === 'on' ? [powerStep('on'), confirmAlive()] : []),
  ];
  // The first power off (with its edge) only from running; the second only when the first did not run.
  steps[0] = { ...steps[0]!, when: () => inputs.off_first };
  steps[2] = { ...steps[2]!, when: () => !inputs.off_first };
  return { kind, steps };
}
