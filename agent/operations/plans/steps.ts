/**
 * The steps plans are made of: a verified power change, a BMC call, the installer's job. Each declares what an agent
 * restart that interrupted it does (plan.ts `OnRestart`).
 */
import { EXPECTED_POWER, type SinglePowerAction } from '../../../drivers/power.js';
import type { DeployJob } from '../../ports.js';
import { StepFailed } from '../errors.js';
import type { OnRestart, Step, StepContext } from '../plan.js';

/** The action event of a single power step. */
export const POWER_STEP_OF: Record<SinglePowerAction, string> = {
  on: 'power_on',
  off: 'power_off',
  'soft-off': 'soft_power_off',
};

/** The plan-data key saying that the power step at this index handed its command to a driver. */
const sentKey = (c: StepContext) => `${c.index}_sent`;

export interface PowerStepOptions {
  /** The event name when not the action's own (`power_off_after_failure`). */
  name?: string;
  /** How long the change may take to be verified; the config's power timeout by default. */
  deadlineMs?: (c: StepContext) => number;
  /** Default `verify`: a power command is never sent twice; delete's offs are safe to repeat. */
  onRestart?: OnRestart;
  /** Runs once the change is verified and its step closed (a state edge), idempotent (plan.ts Step.then). */
  then?: (c: StepContext) => void;
  /**
   * A power on that boots the installer of this installer step: when the reading says off but the installer has
   * fetched its job (Deployer.booted), the node did come on and a quick installer already powered it off: done.
   */
  bootsInto?: string;
}

/**
 * A verified power change, recorded on the node and the instance (never moving `state`; `then` may). The moment its
 * command is handed to a driver is kept in the plan's data (`<index>_sent`), in the commit that opens the step's
 * event. Interrupted by a restart after that, it polls for the reading the command would give, sending nothing
 * (`verify`); interrupted before (waiting for the BMC's turn), the step had not started and is run: the command
 * never left. With `repeat` (an off that is safe to repeat) it is sent again
 * in any case.
 */
export function powerStep(action: SinglePowerAction, o: PowerStepOptions = {}): Step {
  const name = o.name ?? POWER_STEP_OF[action];
  const deadlineOf = (c: StepContext) => o.deadlineMs?.(c) ?? c.cfg.timeouts.power_ms;
  const bootedInto = (c: StepContext) => action === 'on' && o.bootsInto !== undefined && c.deployer.booted?.(jobIdOf(c, o.bootsInto)) === true;
  return {
    name,
    onRestart: o.onRestart ?? 'verify',
    waits: false,
    // The step's start and its `sent` mark are one commit, made as the command is handed to a driver.
    opensOnSave: true,
    async run(c) {
      try {
        return await c.bmc().setPower(action, {
          signal: c.signal,
          wait: { delaysMs: c.cfg.power_poll_ms, deadlineMs: deadlineOf(c) },
          // The `sent` mark is on disk before the command leaves (the BMC handle awaits this).
          onSending: () => {
            c.save({ [sentKey(c)]: true });
            return c.durable();
          },
        });
      } catch (e) {
        if ((e as { code?: string }).code === 'BMC_ERR_VERIFY_FAILED' && bootedInto(c)) return { power: 'off' };
        throw e;
      }
    },
    // The verified reading, recorded in the step's close (a verify that was not sent ran `run`; one that was
    // records its own reading, with cause `recovery`, and returns none).
    record(c, out) {
      const power = (out as { power?: unknown } | undefined)?.power;
      if (power === 'on' || power === 'off') c.rec.recordPower(c.node(), power, 'operation');
    },
    async verify(c) {
      if (c.data[sentKey(c)] !== true) return this.run(c);
      const want = EXPECTED_POWER[action];
      const power = await c.pollPower(want, deadlineOf(c));
      if (power !== null) c.rec.recordPower(c.node().id, power, 'recovery');
      if (power !== want && !bootedInto(c)) {
        throw new StepFailed(name, 'AGENT_ERR_INTERRUPTED', `interrupted by an agent restart during step '${name}'; power reads ${power ?? 'unknown'}`);
      }
    },
    ...(o.then ? { then: o.then } : {}),
  };
}

/** A BMC call (boot device, media) that is safe to repeat. */
export function bmcStep(name: string, call: (c: StepContext) => Promise<unknown>, when?: (c: StepContext) => boolean): Step {
  return { name, onRestart: 'repeat', waits: false, ...(when ? { when } : {}), run: call };
}

/** The installer job's id: the action's and the installer step's name, the same for its prepare and its wait. */
const jobIdOf = (c: StepContext, installer: string) => `${c.requestId}/${installer}`;
/** Its deadline, fixed when it is first prepared and kept in the plan's data (a resume keeps it). */
const jobDeadlineOf = (c: StepContext, installer: string) => c.deadline(`${installer}_deadline_at`, c.cfg.timeouts.deploy_ms);

/**
 * Prepares the boot artefacts of the installer job that the step named `installer` will wait for: the job
 * registered with the deployer (its iPXE script, its one-time token) before the node is set to boot and powered
 * on, so that the node's first boot finds it. Safe to repeat (idempotent by the job's id).
 */
export function prepareStep(installer: string, job: (c: StepContext) => DeployJob): Step {
  return {
    name: 'prepare_boot',
    onRestart: 'repeat',
    waits: false,
    run: (c) => c.deployer.prepare(c.node(), job(c), { jobId: jobIdOf(c, installer), deadlineAt: jobDeadlineOf(c, installer) }),
  };
}

/**
 * The installer's job: prepared by `prepareStep`, then waited for. Its id is the action's and the step's name, and
 * its deadline is kept in the plan's data, so a restart attaches to the job still running on the server (the
 * deployer's contract) with the deadline it had.
 */
export function installerStep(name: string, job: (c: StepContext) => DeployJob, onProgress?: (c: StepContext, p: number) => void): Step {
  return {
    name,
    onRestart: 'repeat',
    waits: true,
    async run(c) {
      await c.deployer.deploy(c.node(), job(c), {
        jobId: jobIdOf(c, name),
        signal: c.signal,
        deadlineAt: jobDeadlineOf(c, name),
        onProgress: (p) => {
          if (!c.signal.aborted) onProgress?.(c, p);
        },
      });
    },
  };
}

/** Revokes the instance's installer jobs that have no result (a delete aborting a pending install). */
export function revokeJobsStep(): Step {
  return { name: 'revoke_jobs', onRestart: 'repeat', waits: false, silent: true, run: (c) => c.deployer.revoke(c.instanceId, `${c.kind} of the instance`) };
}
