/**
 * Operation metrics: one observation per operation the runner ends (agent/operations/runner.ts `onOperationEnded`),
 * resumed ones included, by kind (OPERATION_KINDS) and result. `success` is an action closed with no message;
 * `failure` every other end (a failed step, a failure recorded after a restart, a create preempted by a delete):
 * the action's own result (`Error`). The duration is from the action's acceptance (`start_time`) to the moment the
 * runner ended it (the agent's clock): for an operation resumed after a restart it includes the time the agent was
 * down. The runner passes the start time it holds, so an operation's end reads nothing from the store (only an
 * operation failed before its action was read, at a restart, has its action read here).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Action, OperationKind } from '../model.js';

export type OperationResult = 'success' | 'failure';

/** Upper bounds, seconds: a power change takes seconds, an install minutes, a Redfish virtual-media install more. */
export const OPERATION_DURATION_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];

const NAMES = ['metald_operations_total', 'metald_operation_duration_seconds'] as const;

/**
 * Registers the operation metrics on `registry`.
 * @returns the runner's hook: reads the ended action (`action(requestId)`) for its duration; never throws.
 */
export function createOperationMetrics(
  registry: Registry,
  action: (requestId: string) => Pick<Action, 'start_time' | 'finish_time'> | null,
  now: () => number,
  onError: (err: unknown) => void = () => undefined,
): (kind: OperationKind, result: OperationResult, requestId: string, startTime: string | null) => void {
  for (const name of NAMES) if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  const total = new Counter({
    name: 'metald_operations_total',
    help: 'Operations ended (run by the runner, resumed ones included), by kind and result (success, failure).',
    labelNames: ['kind', 'result'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'metald_operation_duration_seconds',
    help: "Operations' durations from acceptance to end (their action's start and finish times), by kind and result, seconds.",
    labelNames: ['kind', 'result'],
    buckets: OPERATION_DURATION_BUCKETS,
    registers: [registry],
  });
  return (kind, result, requestId, startTime) => {
    try {
      let seconds = startTime === null ? NaN : (now() - Date.parse(startTime)) / 1000;
      if (startTime === null) {
        const a = action(requestId);
        seconds = a?.finish_time ? (Date.parse(a.finish_time) - Date.parse(a.start_time)) / 1000 : NaN;
      }
      const labels = { kind, result };
      total.inc(labels);
      duration.observe(labels, Number.isFinite(seconds) ? Math.max(0, seconds) : 0);
    } catch (e) {
      onError(e);
    }
  };
}
