/**
 * What an operation is, as data: a plan is a list of named steps, each saying what it does, whether it is safe to
 * repeat after an agent restart interrupted it, and whether it waits on something outside the agent. One module per
 * operation under ./plans/ declares its plan, read top to bottom; ./runner.ts runs any plan.
 */
import type { PowerReading } from '../../drivers/power.js';
import type { Bmc } from '../../drivers/types.js';
import type { Config } from '../config/types.js';
import type { Instance, Node, OperationKind, OsOperation } from '../model.js';
import type { Clock, Deployer } from '../ports.js';
import type { Liveness } from '../liveness.js';
import type { StateEvent } from '../state-machine.js';
import type { Recorder } from './recorder.js';

/**
 * What an agent restart does to a step it interrupted:
 * - `repeat`: the step is safe to run again (setting a boot device, attaching to the installer's job by its id);
 * - `verify`: the step's command may have been sent and still be taking effect, so it is never sent again: the
 *   step's `verify` checks, sending nothing, that it took effect (a power change is polled for);
 * - `fail`: the plan fails naming the step.
 */
export type OnRestart = 'repeat' | 'verify' | 'fail';

export interface Step {
  /** The action event's name (a repeated name is paired by the step index the journal carries). */
  name: string;
  onRestart: OnRestart;
  /** Waits on something outside the agent (the installer, the OS answering ICMP): its wait survives a restart. */
  waits: boolean;
  /** A store write between steps, recorded without an action event of its own (a failure still names it). */
  silent?: boolean;
  /** Decided when the step is reached, on the first run and on a resume alike: false skips it (no event). */
  when?: (c: StepContext) => boolean;
  /**
   * Its action event is opened with its first durable write (`save`: a power step's `sent` mark, as the command is
   * handed to a driver), not before it runs: a restart before that finds it not started, and it simply runs (nothing
   * of it had left the agent). The event's start_time is still the moment the step began.
   */
  opensOnSave?: boolean;
  run(c: StepContext): Promise<unknown>;
  /** Writes what the step's run (or verify) returned (a power reading) in the transaction that closes its event. */
  record?(c: StepContext, out: unknown): void;
  /** For `verify`: confirms, sending nothing, what the interrupted run sent. */
  verify?(c: StepContext): Promise<unknown>;
  /**
   * Runs in the transaction that closes the step's event Success (a state edge the step's outcome allows; its own
   * savepoint, so a failure leaves the close committed), and again on a resume that finds the step closed (a
   * metald before this kept them apart): it must be idempotent. A failure names the step.
   */
  then?(c: StepContext): void;
}

export interface Plan {
  kind: OperationKind;
  steps: readonly Step[];
}

/**
 * A plan's data, persisted with its action (Action.plan.data) before every step: the inputs decided at acceptance
 * (so a restarted agent rebuilds the same plan), the steps' own keys (a deadline fixed on the first run), and the
 * runner's (`event`, `failed`). Never a secret: secrets live on the instance (`extra`).
 */
export interface PlanData {
  /** What the plan was built from (plans/index.ts). */
  inputs: PlanInputs;
  /** The action event index of the current step (absent for a silent step). */
  event?: number;
  /** Set before on_failure runs: a restart during the failure path finishes the failure. */
  failed?: { step: string; code: string; message: string };
  [key: string]: unknown;
}

/** The inputs of each plan, decided at acceptance and kept in its data. */
export type PlanInputs =
  | { plan: 'power'; deadline_ms: number }
  | { plan: 'provision'; op: OsOperation | 'change-password'; off_first: boolean; virtual_media: boolean }
  | { plan: 'delete' }
  /** No plan: an operation failed before its plan could be built (only its failure is recorded). */
  | { plan: 'none' };

/** What a step works with. */
export interface StepContext {
  readonly instanceId: string;
  readonly requestId: string;
  readonly kind: OperationKind;
  /** The step's index in the plan (a job id or deadline key that must be the same on a resume uses it). */
  readonly index: number;
  readonly signal: AbortSignal;
  readonly cfg: Config;
  readonly rec: Recorder;
  readonly clock: Clock;
  readonly deployer: Deployer;
  readonly liveness: Liveness;
  readonly data: PlanData;
  inst(): Instance;
  node(): Node;
  bmc(): Bmc;
  /** Takes a state edge as this operation (refused once another operation took the instance over). */
  edge(event: StateEvent): void;
  /** Patches the instance as this operation. */
  mutate(patch: Partial<Instance>, opts?: { quiet?: boolean; event?: StateEvent }): Instance;
  /** Persists `patch` into the plan's data now (a deadline fixed on the first run, kept by a resume). */
  save(patch: Record<string, unknown>): void;
  /**
   * The store's durability barrier (Store.durable): resolves once every commit so far is on disk; null when none is
   * pending. A step sends nothing that its records announce before it: the runner awaits it before each step's run
   * and before each deployer call; a power step awaits it after its `sent` save, inside `onSending`.
   */
  durable(): Promise<void> | null;
  /** Reads power until it reads `expect` or the deadline passes, sending nothing; null when no read succeeded. */
  pollPower(expect: PowerReading, deadlineMs: number): Promise<PowerReading | null>;
  /** A timestamp kept in the plan's data under `key`: set to now + ms on the first run, read back on a resume. */
  deadline(key: string, ms: number): number;
}
