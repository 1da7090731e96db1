/**
 * Start-up recovery: every operation in flight at the last stop (crash or graceful) is resumed from the step its
 * plan had reached (./runner.ts decides, per the step's `onRestart`, whether the interrupted step is repeated,
 * verified or failed). An action whose plan was not kept (an older metald wrote it) is failed cleanly naming its
 * open step, except a delete, whose every step is safe to repeat: it starts over. Node-level requests do not
 * outlive the process, and a lock without an action is released. The recovered plans run in the background, at most
 * `recovery.concurrency` at once (./runner.ts); readiness does not wait for them.
 */
import type { Logger } from 'pino';
import type { OperationState } from '../model.js';
import type { Store } from '../store/types.js';
import { StepFailed } from './errors.js';
import type { Recorder } from './recorder.js';
import { RULES } from './rules.js';
import type { Runner } from './runner.js';

export interface RecoveryDeps {
  store: Store;
  rec: Recorder;
  runner: Runner;
  log: Logger;
}

export function recover(d: RecoveryDeps): void {
  for (const action of d.store.listUnfinishedActions()) {
    const inst = d.store.getInstance(action.instance_id);
    const openStep = action.events.find((e) => e.finish_time === null)?.event ?? null;
    const interrupted = `interrupted by an agent restart${openStep ? ` during step '${openStep}'` : ''}`;
    if (!inst || inst.task_request_id !== action.request_id) {
      d.rec.abortAction(action.request_id, interrupted);
      continue;
    }
    const kind = inst.task ?? 'create';
    d.log.warn({ instance_id: inst.id, request_id: action.request_id, operation: kind, step: openStep, plan_step: action.plan?.step ?? null }, 'recovering an operation in flight');
    if (action.plan?.data && typeof action.plan.data['inputs'] === 'object') {
      d.runner.launch(inst.id, action.request_id, kind, { start: { from: 'resume', action }, recovered: true });
      continue;
    }
    d.rec.closeOpenEvents(action.request_id, interrupted);
    if (RULES[kind].plan === 'delete') {
      d.store.setActionPlan(action.request_id, { step: 0, data: { inputs: { plan: 'delete' } } });
      d.runner.launch(inst.id, action.request_id, 'delete', { recovered: true });
      continue;
    }
    // The step a failure names: the open one, else the one after the last that closed (never a generic word).
    const lastEvent = action.events[action.events.length - 1];
    const failedStep = openStep ?? (lastEvent ? `after_${lastEvent.event}` : 'start');
    d.runner.launch(inst.id, action.request_id, kind, { start: { from: 'fail', error: new StepFailed(failedStep, 'AGENT_ERR_INTERRUPTED', interrupted) }, recovered: true });
  }
  // A node-level power request (free node, enforcement) does not outlive the process: its target is stale. The
  // power sync that follows reads every node's power.
  for (const n of d.store.listNodes()) {
    if (n.target_power_state !== null) d.rec.setNodeTarget(n.id, null, 'recovery');
  }
  // A lock whose action is gone (it cannot happen through the engine, which commits both together) would hold the
  // instance forever: release it, failing whatever it claimed to be doing.
  for (const inst of d.store.listInstances()) {
    if (inst.task === null || d.runner.isRunning(inst.id)) continue;
    d.log.error({ instance_id: inst.id, operation: inst.task }, 'a lock without an action in flight: released');
    const processing = inst.operation_state?.endsWith('-processing') ? (inst.operation_state.replace(/-processing$/, '-failed') as OperationState) : inst.operation_state;
    d.rec.mutate(inst.id, {
      task: null,
      task_request_id: null,
      target_power_state: null,
      operation_state: processing,
      error: { error_code: 'AGENT_ERR_INTERRUPTED', error_msg: `the '${inst.task}' operation was lost at an agent restart`, error_type: RULES[inst.task].errorType },
    }, { cause: 'recovery' });
  }
}
