/**
 * The runner: executes any plan (./plan.ts) of an accepted operation in the background, holding the instance's
 * lock. Per step: the step index (and the plan's data) is persisted with the step's action event before it runs; one
 * action event per step, its journal entries carrying the step index; deadlines are the steps' own. At the end it
 * records success or failure by the rules table (./rules.ts), with `on_failure`. An abort for shutdown records
 * nothing (the next start resumes); a preempting delete's abort closes the action without touching the state.
 *
 * After a restart (`resume`), a plan continues from its persisted step: a step that had finished is not run again,
 * the interrupted one is repeated, verified or failed as it declares (`onRestart`), and a failure that was being
 * recorded is recorded.
 */
import type { Logger } from 'pino';
import type { PowerReading } from '../../drivers/power.js';
import type { Bmc, CallRecord } from '../../drivers/types.js';
import { waitFor } from '../../drivers/wait.js';
import { Slots } from '../bounded.js';
import type { Config } from '../config/types.js';
import { AgentError } from '../errors.js';
import type { Liveness } from '../liveness.js';
import type { Action, Instance, InstanceError, Node, OperationKind } from '../model.js';
import type { Deployer, Ports } from '../ports.js';
import { transition } from '../state-machine.js';
import type { Store } from '../store/types.js';
import { durableDeployer } from './durable-deployer.js';
import { OperationAborted, StepFailed, abortReason, codeOf, messageOf, named, namedStep } from './errors.js';
import type { Plan, PlanData, Step, StepContext } from './plan.js';
import { planFor } from './plans/index.js';
import { powerStep } from './plans/steps.js';
import type { Recorder } from './recorder.js';
import { RULES } from './rules.js';

export interface RunnerDeps {
  config: () => Config;
  store: Store;
  ports: Ports;
  liveness: Liveness;
  log: Logger;
  rec: Recorder;
  /**
   * Told once per operation that ended (recorded; not one a stop left to its resume): the metrics. `startTime`: its
   * action's (ISO), when the runner had the action in hand (else null: the hook reads it). Never throws.
   */
  onOperationEnded?: (kind: OperationKind, result: 'success' | 'failure', requestId: string, startTime: string | null) => void;
}

interface Running {
  kind: OperationKind;
  requestId: string;
  controller: AbortController;
  done: Promise<void>;
}

interface Run {
  instanceId: string;
  requestId: string;
  kind: OperationKind;
  signal: AbortSignal;
  plan: Plan;
  data: PlanData;
  /** The instance's node, once read (an instance never moves). */
  nodeId?: string;
}

/** Where a launched plan starts: from its first step, or resuming what a restart interrupted. */
export type Start = { from: 'start'; action?: Action } | { from: 'resume'; action: Action } | { from: 'fail'; error: StepFailed };

/** A run whose plan could not be built (its failure is still recorded). */
type FailingRun = Omit<Run, 'plan' | 'data'> & Partial<Pick<Run, 'plan' | 'data'>>;

const INTERRUPTED = 'interrupted by an agent restart';

export class Runner {
  private readonly running = new Map<string, Running>();
  /** Operations recovered at start run at most `recovery.concurrency` at once (a restart with many in flight). */
  private readonly recoverySlots = new Slots(() => this.cfg.recovery.concurrency);

  /** The deployer as steps see it: each call waits for the store's durability barrier first. */
  private readonly deployer: Deployer;

  constructor(private readonly deps: RunnerDeps) {
    this.deployer = durableDeployer(deps.ports.deployer, deps.store);
  }

  private get cfg(): Config {
    return this.deps.config();
  }
  private get store(): Store {
    return this.deps.store;
  }
  private get rec(): Recorder {
    return this.deps.rec;
  }
  private now(): string {
    return new Date(this.deps.ports.clock.now()).toISOString();
  }

  isRunning(instanceId: string): boolean {
    return this.running.has(instanceId);
  }

  get size(): number {
    return this.running.size;
  }

  /** Resolves when every operation running now has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  /** Aborts every running operation with `reason` (shutdown: nothing is recorded). */
  abortAll(reason: OperationAborted): void {
    for (const r of this.running.values()) r.controller.abort(reason);
  }

  /** Aborts the operation running on an instance (a preempting delete); returns its end, if one ran. */
  preempt(instanceId: string, reason: OperationAborted): Promise<void> | undefined {
    const r = this.running.get(instanceId);
    if (!r) return undefined;
    r.controller.abort(reason);
    return r.done;
  }

  /**
   * Runs the plan of the action `requestId` in the background (the acceptance that wrote it has committed). With
   * `after`, the plan starts once that promise settles (a delete waits for the install it preempted). `replace`
   * lets it take the place of the operation it preempted. `recovered` (start-up recovery): the plan waits for one of
   * the `recovery.concurrency` slots, holding the instance's lock meanwhile.
   */
  launch(instanceId: string, requestId: string, kind: OperationKind, opts: { after?: Promise<void> | undefined; replace?: boolean; start?: Start; recovered?: boolean } = {}): void {
    if (!opts.replace && this.running.has(instanceId)) throw new AgentError('AGENT_ERR_LOCKED', 'instance is locked');
    const controller = new AbortController();
    const entry: Running = { kind, requestId, controller, done: Promise.resolve() };
    this.running.set(instanceId, entry);
    const start = opts.start ?? { from: 'start' };
    entry.done = (async () => {
      let run: Run | undefined;
      let release: (() => void) | null = null;
      let startTime: string | null = null;
      try {
        if (opts.after) await opts.after.catch(() => undefined);
        if (opts.recovered) release = await this.recoverySlots.acquire(controller.signal);
        if (start.from === 'fail') {
          await this.finishFailure({ instanceId, requestId, kind, signal: controller.signal }, start.error);
          return;
        }
        const action = start.from === 'start' ? start.action ?? this.store.getAction(requestId) : start.action;
        startTime = action?.start_time ?? null;
        // A copy: the run patches its data as it goes (the action it was given may be its acceptor's).
        const data = (action?.plan?.data ? { ...action.plan.data } : null) as PlanData | null;
        if (!data?.inputs) throw new StepFailed('start', 'AGENT_ERR_INTERNAL', `the action ${requestId} keeps no plan`);
        if (start.from === 'resume' && data.failed) {
          // The restart came while the failure was being recorded: finish recording it.
          this.rec.closeOpenEvents(requestId, INTERRUPTED);
          await this.finishFailure({ instanceId, requestId, kind, signal: controller.signal, data }, new StepFailed(data.failed.step, data.failed.code, data.failed.message), startTime);
          return;
        }
        run = { instanceId, requestId, kind, signal: controller.signal, plan: planFor(kind, data.inputs), data };
        const r = run;
        // The success is recorded in the last step's close when it can be, else on its own.
        if (!(await this.execute(run, start.from === 'resume' ? start.action : null))) this.store.transaction(() => this.finishSuccess(r));
        this.deps.log.info({ instance_id: instanceId, request_id: requestId, operation: kind }, 'operation succeeded');
        this.deps.onOperationEnded?.(kind, 'success', requestId, startTime);
      } catch (e) {
        const aborted = abortReason(controller.signal) ?? (e instanceof OperationAborted ? e : null);
        if (aborted?.kind === 'shutdown') return;
        if (aborted?.kind === 'preempted') {
          this.rec.closeAction(requestId, aborted.message);
          this.deps.onOperationEnded?.(kind, 'failure', requestId, startTime);
          return;
        }
        await this.finishFailure(run ?? { instanceId, requestId, kind, signal: controller.signal }, e, startTime);
      } finally {
        release?.();
        if (this.running.get(instanceId) === entry) this.running.delete(instanceId);
      }
    })().catch((e: unknown) => {
      this.deps.log.error({ err: e, instance_id: instanceId, request_id: requestId }, 'operation bookkeeping failed');
    });
  }

  /**
   * Runs the plan's steps in order; on a resume, first settles the step the restart interrupted.
   * @returns whether the success was recorded (in the last step's close)
   */
  private async execute(run: Run, resumed: Action | null): Promise<boolean> {
    const steps = run.plan.steps;
    const last = steps.length - 1;
    const finish = () => this.finishSuccess(run);
    let i = 0;
    if (resumed) {
      const at = resumed.plan?.step ?? 0;
      const step = steps[at];
      if (!step) throw new StepFailed('start', 'AGENT_ERR_INTERRUPTED', `${INTERRUPTED}: the plan has no step ${at}`);
      const ev = step.silent || run.data.event === undefined ? undefined : resumed.events[run.data.event];
      if (step.silent || !ev) {
        i = at;
      } else if (ev.finish_time !== null) {
        if (ev.result !== 'Success') throw new StepFailed(step.name, 'AGENT_ERR_INTERRUPTED', `${INTERRUPTED} after step '${step.name}' failed`);
        // The restart may have come between the step's close and its `then`.
        if (step.then) await namedStep(step.name, async () => step.then!(this.context(run, at)));
        i = at + 1;
      } else {
        this.deps.log.warn({ instance_id: run.instanceId, request_id: run.requestId, operation: run.kind, step: step.name, on_restart: step.onRestart }, 'resuming an operation at its interrupted step');
        if (await this.runStep(run, at, { resume: { event: run.data.event!, mode: step.onRestart }, ...(at === last ? { finish } : {}) })) return true;
        i = at + 1;
      }
    }
    for (; i < steps.length; i++) if (await this.runStep(run, i, i === last ? { finish } : {})) return true;
    return false;
  }

  /**
   * One step: skipped when its `when` says so; else its index persisted and its action event opened (one
   * transaction; `opensOnSave`: with the step's first `save`), then run (or, resuming, repeated, verified or failed)
   * and its event closed, in one transaction with what the step records, its `then` and, for the last step, `finish`
   * (the operation's success; each in its own savepoint, so that their failure leaves the close committed).
   * @returns whether `finish` ran
   * @throws StepFailed naming the step.
   */
  private async runStep(run: Run, index: number, o: { resume?: { event: number; mode: Step['onRestart'] }; step?: Step; finish?: () => void } = {}): Promise<boolean> {
    const { resume, step = run.plan.steps[index]!, finish } = o;
    if (run.signal.aborted) throw run.signal.reason;
    if (step.when && !step.when(this.context(run, index))) return false;
    if (step.silent) {
      await namedStep(step.name, async () => {
        this.setPlan(run, index, { event: undefined });
        await step.run(this.context(run, index));
      });
      return false;
    }
    const start = resume ? this.store.getAction(run.requestId)?.events[resume.event]?.start_time ?? this.now() : this.now();
    let event: number | null = resume ? resume.event : null;
    const open = (patch: Partial<PlanData>) => this.openStep(run, index, step, start, event, patch);
    const save = (patch: Record<string, unknown>) => {
      // A patch that changes nothing of an open step writes nothing (a second driver's `sent`).
      if (event !== null && Object.entries(patch).every(([k, v]) => run.data[k] === v)) return;
      event = this.store.transaction(() => open(patch));
    };
    if (!resume && !step.opensOnSave) event = this.store.transaction(() => open({}));
    const c = this.context(run, index, save);
    let after: { then?: unknown; finish?: unknown; finished?: true } = {};
    try {
      let out: unknown;
      if (resume?.mode === 'fail') throw new StepFailed(step.name, 'AGENT_ERR_INTERRUPTED', `${INTERRUPTED} during step '${step.name}'`);
      // Group commit: the step's opening (and everything before it) is on disk before the step acts on anything. A
      // step that opens on its save waits in that save (a power step: before its command leaves, in onSending).
      if (!step.opensOnSave) {
        const pending = this.store.durable();
        if (pending) await pending;
      }
      if (resume?.mode === 'verify' && step.verify) out = await step.verify(c);
      else out = await step.run(c);
      const rec = out as Partial<CallRecord> | undefined;
      const record = rec && typeof rec === 'object' && Array.isArray(rec.tried) ? { tried: rec.tried, succeeded: rec.succeeded ?? null } : {};
      // A call that fell through to a later driver says so to admins, in the event's traceback (docs/api.md).
      const fellThrough = record.tried && record.tried.length > 1 ? `drivers tried: ${record.tried.join(', ')}; succeeded: ${record.succeeded ?? 'none'}` : null;
      event = this.store.transaction(() => {
        after = {};
        const idx = open({});
        this.store.updateActionEvent(run.requestId, idx, { event: step.name, start_time: start, finish_time: this.now(), result: 'Success', traceback: fellThrough });
        this.rec.journal('action.event', { instance_id: run.instanceId, cause: 'operation', data: { request_id: run.requestId, event: step.name, result: 'Success', step: index, ...record } });
        step.record?.(c, out);
        after = this.closing(step, c, finish);
        return idx;
      });
    } catch (e) {
      throw this.stepError(run, step, index, event, start, e);
    }
    if ('then' in after) throw named(step.name, after.then);
    if ('finish' in after) throw after.finish;
    return after.finished === true;
  }

  /** Inside a step's close: its `then`, then `finish`, each in a savepoint; what they threw is given back, not thrown. */
  private closing(step: Step, c: StepContext, finish: (() => void) | undefined): { then?: unknown; finish?: unknown; finished?: true } {
    try {
      if (step.then) this.store.transaction(() => step.then!(c));
    } catch (e) {
      return { then: e };
    }
    if (!finish) return {};
    try {
      this.store.transaction(finish);
      return { finished: true };
    } catch (e) {
      return { finish: e };
    }
  }

  /**
   * Closes a failed step's event (not when stopping: a stop leaves it open, like a crash; an event not opened yet is
   * opened and closed in one commit) and names the failure.
   */
  private stepError(run: Run, step: Step, index: number, event: number | null, start: string, e: unknown): unknown {
    const aborted = abortReason(run.signal);
    // Stopping leaves the step open (or not started), exactly as a crash would: the next start resumes it.
    if (aborted?.kind === 'shutdown') return aborted;
    if (this.store.getAction(run.requestId)?.finish_time) return aborted ?? e;
    const text = aborted ? aborted.message : `${codeOf(e)}: ${messageOf(e)}`;
    this.store.transaction(() => {
      const idx = this.openStep(run, index, step, start, event, {});
      this.store.updateActionEvent(run.requestId, idx, { event: step.name, start_time: start, finish_time: this.now(), result: 'Error', traceback: text });
      this.rec.journal('action.event', { instance_id: run.instanceId, cause: 'operation', data: { request_id: run.requestId, event: step.name, result: 'Error', step: index, code: codeOf(e) } });
    });
    if (aborted) return aborted;
    return e instanceof StepFailed ? e : new StepFailed(step.name, codeOf(e), messageOf(e), { cause: e });
  }

  /**
   * Inside a transaction: opens the step's event unless `event` is open already, persisting the plan's position
   * (step `index`, the event, `patch`); an open step's plan is written only for a patch that has something.
   * @returns the event's index
   */
  private openStep(run: Run, index: number, step: Step, start: string, event: number | null, patch: Partial<PlanData>): number {
    if (event !== null) {
      if (Object.keys(patch).length > 0) this.setPlan(run, index, patch);
      return event;
    }
    const idx = this.rec.appendEvent(run.requestId, run.instanceId, { event: step.name, start_time: start, finish_time: null, result: null, traceback: null }, { step: index });
    this.setPlan(run, index, { ...patch, event: idx });
    return idx;
  }

  /** Persists the plan's position: step `index`, with its data patched. */
  private setPlan(run: Run, index: number, patch: Partial<PlanData>): void {
    Object.assign(run.data, patch);
    if ('event' in patch && patch.event === undefined) delete run.data.event;
    this.store.setActionPlan(run.requestId, { step: index, data: run.data });
  }

  /** A step's context; `save` is the running step's (which may open its event), else a plain write of the data. */
  private context(run: Run, index: number, save: StepContext['save'] = (patch) => this.setPlan(run, index, patch)): StepContext {
    const inst = () => this.store.getInstance(run.instanceId)!;
    const node = () => this.nodeOf((run.nodeId ??= inst().node_id), run.instanceId);
    return {
      instanceId: run.instanceId,
      requestId: run.requestId,
      kind: run.kind,
      index,
      signal: run.signal,
      cfg: this.cfg,
      rec: this.rec,
      clock: this.deps.ports.clock,
      deployer: this.deployer,
      liveness: this.deps.liveness,
      data: run.data,
      inst,
      node,
      bmc: () => this.bmc(node()),
      edge: (event) => {
        this.rec.mutate(run.instanceId, {}, { event, cause: 'operation', owner: run.requestId });
      },
      mutate: (patch, o = {}) =>
        this.rec.mutate(run.instanceId, patch, { cause: o.quiet ? 'installer' : 'operation', owner: run.requestId, ...(o.quiet ? { quiet: true } : {}), ...(o.event ? { event: o.event } : {}) }),
      save,
      durable: () => this.store.durable(),
      pollPower: (expect, deadlineMs) => this.pollPower(node(), expect, deadlineMs),
      deadline: (key, ms) => {
        const kept = run.data[key];
        if (typeof kept === 'number') return kept;
        const at = this.deps.ports.clock.now() + ms;
        save({ [key]: at });
        return at;
      },
    };
  }

  /** Inside a transaction: takes the rules table's success edge, clears the lock and the target, closes the action. */
  private finishSuccess(run: Run): void {
    const rule = RULES[run.kind];
    const inst = this.inst(run);
    const event = rule.success[inst.state];
    const patch: Partial<Instance> = { task: null, task_request_id: null, target_power_state: null };
    const os = rule.os === 'retried' ? inst.failed_operation?.kind ?? null : rule.os;
    if (os) patch.operation_state = `${os}-succeed`;
    if (os && os !== 'uninstall') patch.progress = 100;
    if (os) patch.failed_operation = null;
    const pending = inst.extra.pending_ip;
    if (pending || inst.extra.pending_params) {
      // modify-ip succeeded: its reserved addresses are now the instance's (the old ones are free).
      if (pending && os === 'modify-ip') {
        patch.addresses = pending.addresses;
        patch.networks = pending.networks.map((n) => ({ uuid: n.uuid, ...(n.port_type !== undefined ? { port_type: n.port_type } : {}) }));
      }
      patch.extra = { ...inst.extra, pending_ip: undefined, pending_params: undefined };
    }
    // Set once, when the instance first reaches running (nova's launched_at); later provisioning keeps it.
    if (event && transition(inst.state, event) === 'running' && os && inst.launched_at === null) patch.launched_at = this.now();
    if (rule.releases) {
      patch.terminated_at = this.now();
      // Nothing of the tenant's secrets outlives the instance (it stays readable for terminated_retention).
      patch.extra = {};
      // Its addresses are released (free for the next instance): it shows none.
      patch.addresses = [];
      this.deps.liveness.forget(run.instanceId);
    }
    this.rec.mutate(run.instanceId, patch, { cause: 'operation', owner: run.requestId, ...(event ? { event } : {}) }, inst);
    this.rec.closeAction(run.requestId, null);
  }

  /**
   * Records a failure by the rules table: the failure is persisted in the plan's data first (a restart finishes
   * recording it), the server is powered off when the rule and `on_failure` say so, then the instance and the
   * action are closed with the error naming the step.
   */
  private async finishFailure(run: FailingRun, e: unknown, startTime: string | null = null): Promise<void> {
    const rule = RULES[run.kind];
    const step = e instanceof StepFailed ? e.step : this.stepOfFailure(run);
    const msg = `step '${step}' failed: ${messageOf(e)}`;
    this.deps.log.warn({ instance_id: run.instanceId, request_id: run.requestId, operation: run.kind, step, code: codeOf(e), msg: messageOf(e) }, 'operation failed');
    // The failed operation's installer job, if it has one, is refused from now on (its token revoked).
    await this.deployer.revoke(run.instanceId, msg).catch((err: unknown) => {
      this.deps.log.warn({ instance_id: run.instanceId, err: messageOf(err) }, 'revoking the installer job failed');
    });
    let inst = this.inst(run);
    if (rule.powerOffOnFailure && this.cfg.on_failure === 'power_off') {
      const failed = { step, code: codeOf(e), message: messageOf(e) };
      const plan = run.plan ?? { kind: run.kind, steps: [] };
      const data: PlanData = run.data ?? { inputs: { plan: 'none' } };
      const failing: Run = { ...run, plan, data, signal: new AbortController().signal };
      try {
        this.setPlan(failing, plan.steps.length, { failed });
        const off = powerStep('off', { name: 'power_off_after_failure', onRestart: 'repeat' });
        await this.runStep(failing, plan.steps.length, { step: off });
      } catch {
        // Recorded as its own failed step; the operation's error stays the first failure.
      }
      inst = this.inst(run);
    }
    const event = rule.failure[inst.state];
    const error: InstanceError = { error_code: codeOf(e), error_msg: msg, error_type: rule.errorType };
    // A power request on an instance in `error` keeps the error that put it there (the action records the failure).
    const keepError = inst.state === 'error' && !rule.clearsError(inst.state) && inst.error !== null;
    const patch: Partial<Instance> = { task: null, task_request_id: null, target_power_state: null, ...(keepError ? {} : { error }) };
    const os = rule.os === 'retried' ? inst.failed_operation?.kind ?? null : rule.os;
    if (os) {
      patch.operation_state = `${os}-failed`;
      if (rule.os !== 'retried') patch.failed_operation = { kind: os, ...(inst.extra.pending_ip ? { networks: inst.extra.pending_ip.networks } : {}) };
    }
    // The addresses a failed modify-ip had reserved are released (a retry asks for them again); so are its parameters.
    if (inst.extra.pending_ip || inst.extra.pending_params) patch.extra = { ...inst.extra, pending_ip: undefined, pending_params: undefined };
    this.store.transaction(() => {
      this.rec.mutate(run.instanceId, patch, { cause: 'operation', owner: run.requestId, ...(event ? { event } : {}) });
      this.rec.closeAction(run.requestId, msg);
    });
    this.deps.onOperationEnded?.(run.kind, 'failure', run.requestId, startTime);
  }

  /**
   * The step a failure that is no step's own (a store write between steps) is charged to: the action's open step,
   * else the one after its last (`after_<step>`), else `start`.
   */
  private stepOfFailure(run: FailingRun): string {
    try {
      const events = this.store.getAction(run.requestId)?.events ?? [];
      const open = events.find((ev) => ev.finish_time === null);
      if (open) return open.event;
      const last = events[events.length - 1];
      return last ? `after_${last.event}` : 'start';
    } catch {
      return 'start';
    }
  }

  /**
   * Reads power until it reads `expect` or `deadlineMs` passes, sending nothing.
   * @returns the last reading, or null when no read succeeded
   */
  async pollPower(node: Node, expect: PowerReading, deadlineMs: number): Promise<PowerReading | null> {
    // Read at once, then after each configured delay (the last repeating), a final read at the deadline.
    const waited = await waitFor<PowerReading>(
      { delaysMs: [0, ...this.cfg.power_poll_ms], deadlineMs },
      async () => {
        try {
          const power = (await this.bmc(node).readPower({ timeoutMs: this.cfg.timeouts.bmc_call_ms })).power;
          return { done: power === expect, seen: power };
        } catch {
          // unknown: never taken for on or off; keep polling until the deadline.
          return { done: false };
        }
      },
      { clock: this.deps.ports.clock },
    );
    return waited.last ?? null;
  }

  private inst(run: FailingRun): Instance {
    return this.store.getInstance(run.instanceId)!;
  }

  private nodeOf(nodeId: string, instanceId: string): Node {
    const node = this.store.getNode(nodeId);
    if (!node) throw new AgentError('AGENT_ERR_INTERNAL', `instance ${instanceId} names a node that does not exist`);
    return node;
  }

  private bmc(node: Node): Bmc {
    return this.deps.ports.bmcs.forNode(node);
  }
}
