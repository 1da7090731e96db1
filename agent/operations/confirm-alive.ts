/**
 * Completion of an install is confirmed by the instance answering ICMP on one of its fixed addresses after it boots
 * from disk (skipped when it has none). The probing waits on the installed system: its deadline is kept in the
 * plan's data, so a restart goes on probing until the same deadline.
 */
import { waitFor } from '../../drivers/wait.js';
import type { Address, Instance } from '../model.js';
import { StepFailed } from './errors.js';
import type { Step, StepContext } from './plan.js';

/** The addresses an instance's OS is (being) installed with: a modify-ip's reserved ones while it runs. */
export function addressesAfter(inst: Instance): Address[] {
  return inst.extra.pending_ip?.addresses ?? inst.addresses;
}

/** The addresses the installed system has: a modify-ip's new ones. */
const target = (c: StepContext): Instance => ({ ...c.inst(), addresses: addressesAfter(c.inst()) });

export function confirmAlive(): Step {
  return {
    name: 'confirm_alive',
    onRestart: 'repeat',
    waits: true,
    when: (c) => target(c).addresses.some((a) => a.type === 'fixed'),
    async run(c) {
      const deadlineAt = c.deadline('confirm_alive_deadline_at', c.cfg.timeouts.deploy_ms);
      // Probe at once, then after each configured delay (the last repeating), a final probe at the deadline.
      const waited = await waitFor(
        { delaysMs: [0, ...c.cfg.power_poll_ms], deadlineMs: Math.max(0, deadlineAt - c.clock.now()) },
        async () => ({ done: await c.liveness.probe(target(c), c.signal) }),
        { clock: c.clock, signal: c.signal },
      );
      if (waited.status === 'aborted') throw waited.reason;
      if (waited.status === 'deadline') {
        throw new StepFailed('confirm_alive', 'AGENT_ERR_NOT_ALIVE', `no fixed address of the instance answered ICMP within ${c.cfg.timeouts.deploy_ms} ms`);
      }
    },
  };
}
