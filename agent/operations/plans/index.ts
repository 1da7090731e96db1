/** Every operation's plan, by kind, rebuilt from the inputs its action keeps (so a restart rebuilds the same plan). */
import type { Plan, PlanInputs } from '../plan.js';
import type { OperationKind } from '../../model.js';
import { deletePlan } from './delete.js';
import { powerPlan } from './power.js';
import { provisionPlan } from './provision.js';
import { RULES, type PowerKind } from '../rules.js';

/** @throws Error when the inputs are not those of the kind's plan (an action written by another version). */
export function planFor(kind: OperationKind, inputs: PlanInputs): Plan {
  const plan = RULES[kind].plan;
  if (plan === 'power' && inputs.plan === 'power') return powerPlan(kind as PowerKind);
  if (plan === 'delete' && inputs.plan === 'delete') return deletePlan();
  if (plan === 'provision' && inputs.plan === 'provision') return provisionPlan(kind, inputs);
  throw new Error(`no plan of operation '${kind}' takes inputs of a '${inputs.plan}' plan`);
}
