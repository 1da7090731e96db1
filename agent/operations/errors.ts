/** Errors internal to running operations. */
import { isBmcError } from '../../drivers/errors.js';
import { AgentError } from '../errors.js';

/** Why a running operation was aborted without an outcome of its own. */
export type AbortKind = 'shutdown' | 'preempted';

export class OperationAborted extends Error {
  constructor(readonly kind: AbortKind, message: string) {
    super(message);
    this.name = 'OperationAborted';
  }
}

/** A step of an operation failed: names the step, keeps the cause. */
export class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StepFailed';
  }
}

/** A stable code for an error raised inside a step (BMC codes pass through). */
export function codeOf(e: unknown): string {
  if (isBmcError(e)) return e.code;
  if (e instanceof StepFailed) return e.code;
  if (e instanceof Error && e.name === 'AbortError') return 'AGENT_ERR_ABORTED';
  if (e instanceof Error && e.name === 'TimeoutError') return 'AGENT_ERR_TIMEOUT';
  return 'AGENT_ERR_STEP_FAILED';
}

export function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

export function abortReason(signal: AbortSignal): OperationAborted | null {
  return signal.aborted && signal.reason instanceof OperationAborted ? signal.reason : null;
}

/**
 * Runs bookkeeping that belongs to a step without an action event of its own, so that a failure there (a store
 * write) names that step. Aborts pass through.
 * @throws StepFailed named `name`
 */
export async function namedStep<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw named(name, e);
  }
}

/** What a step's bookkeeping threw, named after the step (aborts and step failures as they are). */
export function named(name: string, e: unknown): unknown {
  if (e instanceof OperationAborted || e instanceof StepFailed) return e;
  return new StepFailed(name, e instanceof AgentError ? e.code : codeOf(e), messageOf(e), { cause: e });
}
