/**
 * A power request on an instance (seed 004 `PUT .../states/power`): one verified power change, or a reboot carried
 * out as a verified (soft) off, then a verified on. The off of a reboot, once verified, takes running -> stopped
 * (PowerReboot); the success edge (RULES) is taken by the runner when the plan ends.
 */
import { isReboot, REBOOT_AS } from '../../../drivers/power.js';
import type { Plan, StepContext } from '../plan.js';
import { POWER_ACTION_OF, type PowerKind } from '../rules.js';
import { powerStep } from './steps.js';

export function powerPlan(kind: PowerKind): Plan {
  const action = POWER_ACTION_OF[kind];
  // The request's own deadline (a soft one's timeout) is the first change's; the on of a reboot has the config's.
  const requested = { deadlineMs: (c: StepContext) => (c.data.inputs.plan === 'power' ? c.data.inputs.deadline_ms : c.cfg.timeouts.power_ms) };
  if (!isReboot(action)) return { kind, steps: [powerStep(action, requested)] };
  const [off, on] = REBOOT_AS[action];
  return {
    kind,
    steps: [
      powerStep(off, {
        ...requested,
        then: (c) => {
          if (c.inst().state === 'running') c.edge('power-reboot');
        },
      }),
      powerStep(on),
    ],
  };
}
