/** metalctl's `node` commands (admin): list, show, power, maintenance. */
import type { Command } from 'commander';
import { POWER_ACTIONS } from '../../drivers/power.js';
import { addWaitOptions, finalPower, positiveInt, powerBody, type WaitOpts } from './args.js';
import { accepted, EXIT_OK, UsageError, type ActionOf } from './context.js';
import { flattenObject, formatKeyValue } from './format.js';
import { nodeTable } from './views.js';
import { actionIdOf, waitForAction, waitForNode } from './wait.js';

export function registerNodeCommands(program: Command, action: ActionOf): void {
  const node = program.command('node').description('physical servers (admin)');

  node
    .command('list')
    .description('list nodes')
    .action(
      action(async (ctx) => {
        const res = await (await ctx.client()).listNodes();
        if (ctx.json) ctx.raw(res);
        else ctx.out(nodeTable(res.body?.nodes ?? []));
        return EXIT_OK;
      }),
    );

  node
    .command('show')
    .argument('<id>', 'node id')
    .description('show one node')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getNode(id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatKeyValue(flattenObject(res.body)));
        return EXIT_OK;
      }),
    );

  addWaitOptions(
    node
      .command('power')
      .argument('<id>', 'node id')
      .argument('<target>', POWER_ACTIONS.join(' | '))
      .option('--timeout-s <seconds>', 'soft-off/soft-reboot: seconds the OS gets before the request fails', positiveInt)
      .description("change a node's power, whether or not an instance is on it"),
  ).action(
    action(async (ctx, [id, target], o) => {
      const { body, action: powerAction } = powerBody(target as string, o.timeoutS as number | undefined);
      const client = await ctx.client();
      const w = o as unknown as WaitOpts;
      const before = w.wait ? (await client.getNode(id as string)).body : undefined;
      const res = await client.setNodePower(id as string, body);
      accepted(ctx, `${body.target} of node ${id}`, res);
      if (before === undefined) return EXIT_OK;
      // A node with an instance powers it through the instance's action: follow that when a project names the
      // os-instance-actions path; a bare node has no action, and its own view is polled.
      const project = ctx.optionalProject();
      if (typeof before.instance_uuid === 'string' && project !== undefined) {
        return waitForAction(ctx, client, { kind: 'power', project, instanceId: before.instance_uuid, requestId: actionIdOf(res) }, w);
      }
      return waitForNode(ctx, client, id as string, finalPower(powerAction), JSON.stringify(before.last_error ?? null), w);
    }),
  );

  node
    .command('maintenance')
    .argument('<id>', 'node id')
    .argument('<on|off>', 'on: no operation touches the node; off: back in service')
    .option('--reason <text>', 'why (with on)')
    .description('put a node in or out of maintenance')
    .action(
      action(async (ctx, [id, onOff], o) => {
        if (onOff !== 'on' && onOff !== 'off') throw new UsageError(`maintenance '${onOff}': expected on or off`);
        if (onOff === 'off' && o.reason !== undefined) throw new UsageError('--reason goes with on only');
        const res = await (await ctx.client()).setMaintenance(id as string, onOff === 'on', o.reason as string | undefined);
        if (ctx.json) ctx.raw(res);
        else if (res.body !== undefined && res.body !== null && typeof res.body === 'object' && 'uuid' in res.body) ctx.out(formatKeyValue(flattenObject(res.body)));
        else accepted(ctx, `maintenance ${onOff} of node ${id}`, res);
        return EXIT_OK;
      }),
    );

}
