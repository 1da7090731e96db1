/**
 * The store's action rows (actions and action_events): the bodies of SqliteStore's action methods, run inside the
 * store's read/write wrappers (./sqlite.ts), which turn failures into StoreError and count commits.
 */
import type { Action, ActionEvent, ActionPlan } from '../model.js';
import { actionHeader, eventToRow, planToColumns, rowToAction, rowToEvent, type ActionRow } from './rows.js';
import type { Statements } from './statements.js';
import { DuplicateActionError, StoreError } from './types.js';

export class ActionTable {
  constructor(private readonly stmts: Statements) {}

  /** @throws DuplicateActionError when the request id already names an action */
  insert(action: Action): void {
    const header = actionHeader(action);
    const events = (action.events ?? []).map((e, i) => eventToRow(action.request_id, i, e));
    if (this.stmts.actionExists.get(action.request_id)) throw new DuplicateActionError(action.request_id);
    this.stmts.insertActionHeader.run(header);
    for (const e of events) this.stmts.insertEvent.run(e);
  }

  /** @throws DuplicateActionError when the request id names a different action */
  put(action: Action): void {
    const header = actionHeader(action);
    const events = (action.events ?? []).map((e, i) => eventToRow(action.request_id, i, e));
    if (this.stmts.putActionHeader.run(header).changes === 0) throw new DuplicateActionError(action.request_id);
    this.stmts.deleteEvents.run(action.request_id);
    for (const e of events) this.stmts.insertEvent.run(e);
  }

  finish(requestId: string, finishTime: string, message: string | null): { instance_id: string; action: string } | null {
    return this.stmts.finishAction.get(finishTime, message, requestId) ?? null;
  }

  get(requestId: string): Action | null {
    const r = this.stmts.getAction.get(requestId);
    return r ? this.fromRow(r) : null;
  }

  list(instanceId: string): Action[] {
    return this.stmts.listActions.all(instanceId).map((r) => this.fromRow(r));
  }

  unfinished(): Action[] {
    return this.stmts.listUnfinishedActions.all().map((r) => this.fromRow(r));
  }

  appendEvent(requestId: string, event: ActionEvent): number {
    if (!this.stmts.actionExists.get(requestId)) throw new StoreError(`no action ${requestId}`);
    const idx = this.stmts.nextEventIdx.get(requestId)!.next;
    this.stmts.insertEvent.run(eventToRow(requestId, idx, event));
    return idx;
  }

  updateEvent(requestId: string, index: number, event: ActionEvent): void {
    const res = this.stmts.updateEvent.run(eventToRow(requestId, index, event));
    if (res.changes === 0) throw new StoreError(`action ${requestId} has no event at index ${index}`);
  }

  setPlan(requestId: string, plan: ActionPlan): void {
    const { plan_step, plan_data } = planToColumns(plan);
    if (this.stmts.setActionPlan.run(plan_step!, plan_data!, requestId).changes === 0) {
      throw new StoreError(`no action ${requestId.slice(0, 64)}`);
    }
  }

  /** An action row with its events. */
  fromRow(r: ActionRow): Action {
    return rowToAction(r, this.stmts.listEvents.all(r.request_id).map(rowToEvent));
  }
}
