/** metalctl's `instance` commands (seeds 000-004): read, create, delete, power, OS operations, actions, liveness. */
import type { Command } from 'commander';
import type { ActionBody, CreateInstanceBody } from './client.js';
import { POWER_ACTIONS } from '../../drivers/power.js';
import {
  addOsParamOptions,
  addWaitOptions,
  collect,
  osParams,
  parseCreateNetwork,
  parseMetadata,
  parseModifyNetwork,
  positiveInt,
  powerBody,
  readPasswordHash,
  type OsParamOpts,
  type WaitOpts,
} from './args.js';
import { accepted, EXIT_OK, type ActionOf } from './context.js';
import { escapeControl, formatKeyValue, formatTable } from './format.js';
import { instanceDetail, instanceTable, statusDetail, yesNo } from './views.js';
import { actionIdOf, waitForAction } from './wait.js';

export function registerInstanceCommands(program: Command, action: ActionOf): void {
  const instance = program.command('instance').description('tenant instances (seeds 002, 003, 004)');

  instance
    .command('list')
    .description('list instances')
    .action(
      action(async (ctx) => {
        const res = await (await ctx.client()).listInstances(ctx.project('instance list'));
        if (ctx.json) ctx.raw(res);
        else ctx.out(instanceTable(res.body?.instances ?? []));
        return EXIT_OK;
      }),
    );

  instance
    .command('show')
    .argument('<id>', 'instance id')
    .description('show one instance')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getInstance(ctx.project('instance show'), id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(instanceDetail(res.body));
        return EXIT_OK;
      }),
    );

  instance
    .command('status')
    .argument('<id>', 'instance id')
    .description('state, operation_state and error (seed 003)')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getStatus(ctx.project('instance status'), id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(statusDetail(res.body));
        return EXIT_OK;
      }),
    );

  addOsParamOptions(
    addWaitOptions(
    instance
      .command('create')
      .description('create an instance on a free node and install its OS')
      .requiredOption('--name <name>', 'instance name')
      .requiredOption('--image <uuid>', 'image uuid (catalogue)')
      .option('--type <uuid>', 'instance type uuid (catalogue)')
      .option('--network <uuid[:port_type]>', 'network to attach (repeatable)', collect)
      .option('--node <uuid>', 'the node to install on (default: the first free node of the type)')
      .option('--metadata <key=value>', 'metadata item (repeatable)', collect)
      .option('--az <zone>', 'availability zone')
      .option('--description <text>', 'description'),
    ),
  ).action(
    action(async (ctx, _args, o) => {
      const project = ctx.project('instance create');
      const body: CreateInstanceBody = { name: o.name as string, image_uuid: o.image as string };
      if (o.description !== undefined) body.description = o.description as string;
      if (o.type !== undefined) body.instance_type_uuid = o.type as string;
      if (o.az !== undefined) body.availability_zone = o.az as string;
      const networks = (o.network as string[] | undefined) ?? [];
      if (networks.length > 0) body.networks = networks.map(parseCreateNetwork);
      const metadata = (o.metadata as string[] | undefined) ?? [];
      if (metadata.length > 0) body.metadata = parseMetadata(metadata);
      const { image_uuid: _image, ...extra } = await osParams({
        hostname: o.hostname as string | undefined,
        sshKeyFile: o.sshKeyFile as string[] | undefined,
        passwordHashFile: o.passwordHashFile as string | undefined,
        userDataFile: o.userDataFile as string | undefined,
      });
      const fullExtra: CreateInstanceBody['extra'] = { ...(o.node !== undefined ? { node_id: o.node as string } : {}), ...extra };
      if (Object.keys(fullExtra).length > 0) body.extra = fullExtra;
      const client = await ctx.client();
      const res = await client.createInstance(project, body);
      if (ctx.json) ctx.raw(res);
      else ctx.out(instanceDetail(res.body));
      const w = o as unknown as WaitOpts;
      if (!w.wait) return EXIT_OK;
      return waitForAction(ctx, client, { kind: 'create', project, instanceId: res.body.uuid, requestId: actionIdOf(res) }, w);
    }),
  );

  addWaitOptions(instance.command('delete').argument('<id>', 'instance id').description('delete an instance (wipes and releases its node)')).action(
    action(async (ctx, [id], o) => {
      const project = ctx.project('instance delete');
      const client = await ctx.client();
      const res = await client.deleteInstance(project, id as string);
      accepted(ctx, `delete of ${id}`, res);
      const w = o as unknown as WaitOpts;
      return w.wait ? waitForAction(ctx, client, { kind: 'delete', project, instanceId: id as string, requestId: actionIdOf(res) }, w) : EXIT_OK;
    }),
  );

  addWaitOptions(
    instance
      .command('power')
      .argument('<id>', 'instance id')
      .argument('<target>', POWER_ACTIONS.join(' | '))
      .option('--timeout-s <seconds>', 'soft-off/soft-reboot: seconds the OS gets before the request fails', positiveInt)
      .description("change an instance's power"),
  ).action(
    action(async (ctx, [id, target], o) => {
      const { body } = powerBody(target as string, o.timeoutS as number | undefined);
      const w = o as unknown as WaitOpts;
      const project = w.wait ? ctx.project('instance power --wait') : '';
      const client = await ctx.client();
      const res = await client.setInstancePower(id as string, body);
      accepted(ctx, `${body.target} of ${id}`, res);
      if (!w.wait) return EXIT_OK;
      return waitForAction(ctx, client, { kind: 'power', project, instanceId: id as string, requestId: actionIdOf(res) }, w);
    }),
  );

  instance
    .command('states')
    .argument('<id>', 'instance id')
    .description('power_state and target_power_state (seed 004)')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).getPowerStates(id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatKeyValue([['power_state', res.body.power_state], ['target_power_state', res.body.target_power_state]]));
        return EXIT_OK;
      }),
    );

  /** Registers one OS operation (POST .../actions with exactly one key). */
  const osCommand = (
    name: string,
    description: string,
    build: (o: Record<string, unknown>) => Promise<ActionBody>,
    configure: (c: Command) => Command = (c) => c,
  ): void => {
    const cmd = configure(instance.command(name).argument('<id>', 'instance id').description(description));
    addWaitOptions(cmd).action(
      action(async (ctx, [id], o) => {
        const project = ctx.project(`instance ${name}`);
        const body = await build(o);
        const client = await ctx.client();
        const res = await client.postAction(project, id as string, body);
        accepted(ctx, `${name} of ${id}`, res);
        const w = o as unknown as WaitOpts;
        return w.wait ? waitForAction(ctx, client, { kind: 'os', project, instanceId: id as string, requestId: actionIdOf(res) }, w) : EXIT_OK;
      }),
    );
  };

  osCommand(
    'reinstall',
    'reinstall the OS (same image unless --image)',
    async (o) => ({ reinstall: await osParams(o as OsParamOpts) }),
    (c) => addOsParamOptions(c.option('--image <uuid>', 'image uuid (default: the current one)')),
  );
  osCommand(
    'switch-install',
    'install another image',
    async (o) => ({ 'switch-install': { ...(await osParams(o as OsParamOpts)), image_uuid: o.image as string } }),
    (c) => addOsParamOptions(c.requiredOption('--image <uuid>', 'the new image uuid')),
  );
  osCommand(
    'modify-ip',
    "change the instance's networks and addresses",
    async (o) => ({ 'modify-ip': { networks: ((o.network as string[] | undefined) ?? []).map(parseModifyNetwork) } }),
    (c) => c.requiredOption('--network <uuid[:port_type][=fixed_ip]>', 'network (repeatable); without =fixed_ip an address comes from the pool', collect),
  );
  osCommand('uninstall', 'wipe the OS (the instance stays, stopped)', async () => ({ uninstall: {} }));
  osCommand(
    'change-password',
    "change the OS's root password",
    async (o) => ({ 'change-password': { password_hash: await readPasswordHash(o.passwordHashFile as string) } }),
    (c) => c.requiredOption('--password-hash-file <file>', 'file holding a crypt(3) password hash'),
  );
  osCommand('retry', 're-run the failed provisioning of an instance in error', async () => ({ retry: {} }));

  instance
    .command('actions')
    .argument('<id>', 'instance id')
    .argument('[request-id]', 'one action with its events')
    .description('actions taken on an instance (seed 001)')
    .action(
      action(async (ctx, [id, requestId]) => {
        const project = ctx.project('instance actions');
        const client = await ctx.client();
        if (requestId === undefined) {
          const res = await client.listActions(project, id as string);
          if (ctx.json) ctx.raw(res);
          else
            ctx.out(
              formatTable(
                ['REQUEST_ID', 'ACTION', 'START_TIME', 'USER', 'MESSAGE'],
                (res.body?.instanceActions ?? []).map((a) => [a.request_id, a.action, a.start_time, a.user_id, a.message]),
              ),
            );
          return EXIT_OK;
        }
        const res = await client.getAction(project, id as string, requestId);
        if (ctx.json) {
          ctx.raw(res);
          return EXIT_OK;
        }
        const a = res.body.instanceAction;
        ctx.out(
          formatKeyValue([
            ['request_id', a.request_id],
            ['action', a.action],
            ['instance_uuid', a.instance_uuid],
            ['start_time', a.start_time],
            ['user_id', a.user_id],
            ['project_id', a.project_id],
            ['message', a.message],
          ]),
        );
        const events = a.events ?? [];
        ctx.out('\n' + formatTable(['EVENT', 'START_TIME', 'FINISH_TIME', 'RESULT'], events.map((e) => [e.event, e.start_time, e.finish_time, e.result])));
        for (const e of events) {
          if (typeof e.traceback === 'string' && e.traceback.trim() !== '') {
            const lines = e.traceback.replace(/\n+$/, '').split('\n').map((l) => '  ' + escapeControl(l));
            ctx.out(`\ntraceback of ${escapeControl(e.event)}:\n${lines.join('\n')}\n`);
          }
        }
        return EXIT_OK;
      }),
    );

  instance
    .command('ping')
    .argument('<id>', 'instance id')
    .description('is the instance alive (ICMP, seed 000)')
    .action(
      action(async (ctx, [id]) => {
        const res = await (await ctx.client()).ping(ctx.project('instance ping'), id as string);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatTable(['ID', 'PROJECT', 'ALIVE'], [[res.body.server.id, res.body.server.project_id, yesNo(res.body.server.alive)]]));
        return EXIT_OK;
      }),
    );

  instance
    .command('ping-all')
    .option('--all-tenants', "every project's instances (admin)")
    .description('liveness of all instances of the project')
    .action(
      action(async (ctx, _args, o) => {
        const res = await (await ctx.client()).pingAll(ctx.project('instance ping-all'), o.allTenants === true);
        if (ctx.json) ctx.raw(res);
        else ctx.out(formatTable(['ID', 'PROJECT', 'ALIVE'], (res.body?.servers ?? []).map((s) => [s.id, s.project_id, yesNo(s.alive)])));
        return EXIT_OK;
      }),
    );
}
