/**
 * Action.plan (issue 6: the runner persists the current step index before each step): stored in actions.plan_step
 * and actions.plan_data, written by setActionPlan, kept by putAction unless the caller gives a plan.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { DB_FILE_NAME } from '../../../agent/store/sqlite.js';
import { StoreError } from '../../../agent/store/types.js';
import { action, event, useStoreDir } from './fixtures.js';

const stores = useStoreDir();

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('action plan', () => {
  it('round trip: null until set; set, read by get/list/unfinished, kept across reopen', () => {
    let s = stores.open();
    s.insertAction(action({ events: [] }));
    expect(s.getAction('req-1')!.plan).toBeNull();

    const plan = { step: 2, data: { job: 'install-7', deadline: '2024-01-03T01:00:00.000Z', nested: { n: [1, null] } } };
    s.setActionPlan('req-1', plan);
    expect(s.getAction('req-1')!.plan).toStrictEqual(plan);
    expect(s.listActions('inst-1').map((a) => a.plan)).toStrictEqual([plan]);
    expect(s.listUnfinishedActions().map((a) => a.plan)).toStrictEqual([plan]);

    s.setActionPlan('req-1', { step: 3, data: {} });
    s.close();
    s = stores.open();
    expect(s.getAction('req-1')!.plan).toStrictEqual({ step: 3, data: {} });
  });

  it('putAction keeps the stored plan when the action has none (undefined), replaces it when one is given', () => {
    const s = stores.open();
    s.insertAction(action({ plan: { step: 0, data: { a: 1 } } }));
    expect(s.getAction('req-1')!.plan).toStrictEqual({ step: 0, data: { a: 1 } });

    // an action built without a plan (e.g. read before the plan moved, then closed): the plan stays
    const { plan: _dropped, ...withoutPlan } = action({ finish_time: '2024-01-03T00:05:00.000Z', events: [event()] });
    s.setActionPlan('req-1', { step: 4, data: { job: 'j' } });
    s.putAction(withoutPlan);
    const closed = s.getAction('req-1')!;
    expect(closed.finish_time).toBe('2024-01-03T00:05:00.000Z');
    expect(closed.plan).toStrictEqual({ step: 4, data: { job: 'j' } });

    s.putAction(action({ plan: { step: 5, data: { b: 'x' } } }));
    expect(s.getAction('req-1')!.plan).toStrictEqual({ step: 5, data: { b: 'x' } });
    s.putAction(action({ plan: null }));
    expect(s.getAction('req-1')!.plan).toBeNull();

    // a new action through putAction stores its plan, or null without one
    s.putAction(action({ request_id: 'req-2', plan: { step: 1, data: {} } }));
    expect(s.getAction('req-2')!.plan).toStrictEqual({ step: 1, data: {} });
    s.putAction({ ...withoutPlan, request_id: 'req-3' });
    expect(s.getAction('req-3')!.plan).toBeNull();
  });

  it('an unknown action or an unstorable plan is StoreError, with nothing written', () => {
    const s = stores.open();
    expect(thrown(() => s.setActionPlan('missing', { step: 0, data: {} }))).toBeInstanceOf(StoreError);
    expect(s.getAction('missing')).toBeNull();

    s.insertAction(action());
    for (const bad of [
      { step: -1, data: {} },
      { step: 1.5, data: {} },
      { step: 0, data: [1] as unknown as Record<string, unknown> },
      { step: 0, data: { n: 10n } as Record<string, unknown> },
    ]) {
      expect(thrown(() => s.setActionPlan('req-1', bad)), JSON.stringify(bad.step)).toBeInstanceOf(StoreError);
    }
    expect(thrown(() => s.insertAction(action({ request_id: 'req-2', plan: { step: -1, data: {} } })))).toBeInstanceOf(StoreError);
    expect(s.getAction('req-2')).toBeNull();
    expect(s.getAction('req-1')!.plan).toBeNull();
  });

  it('a corrupt plan_data surfaces as StoreError from every read of the action', () => {
    let s = stores.open();
    s.insertAction(action());
    s.setActionPlan('req-1', { step: 1, data: {} });
    s.close();
    const corrupt = (planData: string | null) => {
      const raw = new Database(path.join(stores.dir(), DB_FILE_NAME));
      raw.prepare("UPDATE actions SET plan_data = ? WHERE request_id = 'req-1'").run(planData);
      raw.close();
    };

    corrupt('{not json');
    s = stores.open();
    for (const read of [() => s.getAction('req-1'), () => s.listActions('inst-1'), () => s.listUnfinishedActions()]) {
      const err = thrown(read);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).cause).toBeInstanceOf(SyntaxError);
    }
    // well-formed JSON that is not an object, or no data beside a step
    for (const planData of ['[1,2]', 'null', '"x"', null]) {
      corrupt(planData);
      expect(thrown(() => s.getAction('req-1')), String(planData)).toBeInstanceOf(StoreError);
    }
  });
});

describe('finishAction', () => {
  it('closes an open action (finish time, message) and leaves its events and plan; a closed or missing one is left as it is', () => {
    const s = stores.open();
    const plan = { step: 1, data: { inputs: { plan: 'power' } } };
    s.insertAction(action({ events: [event({ event: 'power_off' }), event({ event: 'power_on', finish_time: null, result: null })] }));
    s.setActionPlan('req-1', plan);
    const before = s.getAction('req-1')!;
    expect(s.finishAction('req-1', '2024-01-02T00:00:09.000Z', 'step failed')).toEqual({ instance_id: 'inst-1', action: before.action });
    expect(s.getAction('req-1')).toStrictEqual({ ...before, finish_time: '2024-01-02T00:00:09.000Z', message: 'step failed' });
    // Closed already: nothing changes.
    expect(s.finishAction('req-1', '2024-01-02T00:00:10.000Z', null)).toBeNull();
    expect(s.getAction('req-1')).toMatchObject({ finish_time: '2024-01-02T00:00:09.000Z', message: 'step failed' });
    expect(s.finishAction('req-missing', '2024-01-02T00:00:10.000Z', null)).toBeNull();
  });
});
