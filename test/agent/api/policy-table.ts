/**
 * The policy table of docs/api.md ("Policy"), as data: path x role -> status. Run against the stub service
 * (policy.test.ts) and against the real agent (policy-real.test.ts). Roles: admin (its own project), member-owner
 * (the instance's project), member-other (another project, through its own project's URL), no token.
 */
export type Role = 'admin' | 'owner' | 'other' | 'none';
export const ROLES: readonly Role[] = ['admin', 'owner', 'other', 'none'];

export interface Row {
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** {p}: the caller's project; {id}: the owner's instance; {node}: a free node; {req}: an action of the instance. */
  path: string;
  body?: unknown;
  expect: Record<Role, number>;
}

const IMG = '1fd5ab9b-1769-4dd5-b0bd-e075614cc866';

export const POLICY: Row[] = [
  { name: 'list instances', method: 'GET', path: '/v1/{p}/instances', expect: { admin: 200, owner: 200, other: 200, none: 401 } },
  {
    name: 'create instance',
    method: 'POST',
    path: '/v1/{p}/instances',
    body: { name: 'vm', image_uuid: IMG },
    expect: { admin: 201, owner: 201, other: 201, none: 401 },
  },
  { name: 'show instance', method: 'GET', path: '/v1/{p}/instances/{id}', expect: { admin: 200, owner: 200, other: 404, none: 401 } },
  { name: 'delete instance', method: 'DELETE', path: '/v1/{p}/instances/{id}', expect: { admin: 202, owner: 202, other: 404, none: 401 } },
  { name: 'instance status', method: 'GET', path: '/v1/{p}/instances/{id}/status', expect: { admin: 200, owner: 200, other: 404, none: 401 } },
  {
    name: 'OS operation',
    method: 'POST',
    path: '/v1/{p}/instances/{id}/actions',
    body: { uninstall: {} },
    expect: { admin: 202, owner: 202, other: 404, none: 401 },
  },
  { name: 'power states', method: 'GET', path: '/v1/instances/{id}/states', expect: { admin: 200, owner: 200, other: 404, none: 401 } },
  {
    name: 'set power',
    method: 'PUT',
    path: '/v1/instances/{id}/states/power',
    body: { target: 'power off' },
    expect: { admin: 202, owner: 202, other: 404, none: 401 },
  },
  { name: 'fping one', method: 'GET', path: '/v2.1/{p}/os-fping/{id}', expect: { admin: 200, owner: 200, other: 404, none: 401 } },
  { name: 'fping project', method: 'GET', path: '/v2.1/{p}/os-fping', expect: { admin: 200, owner: 200, other: 200, none: 401 } },
  {
    name: 'fping all tenants',
    method: 'GET',
    path: '/v2.1/{p}/os-fping?all_tenants=1',
    expect: { admin: 200, owner: 403, other: 403, none: 401 },
  },
  { name: 'server details', method: 'GET', path: '/v2/{p}/servers/{id}', expect: { admin: 200, owner: 200, other: 404, none: 401 } },
  {
    name: 'list actions',
    method: 'GET',
    path: '/v2/{p}/servers/{id}/os-instance-actions',
    expect: { admin: 200, owner: 200, other: 404, none: 401 },
  },
  {
    name: 'show action',
    method: 'GET',
    path: '/v2/{p}/servers/{id}/os-instance-actions/{req}',
    expect: { admin: 200, owner: 200, other: 404, none: 401 },
  },
  { name: 'list nodes', method: 'GET', path: '/v1/nodes', expect: { admin: 200, owner: 403, other: 403, none: 401 } },
  { name: 'show node', method: 'GET', path: '/v1/nodes/{node}', expect: { admin: 200, owner: 403, other: 403, none: 401 } },
  {
    name: 'node power',
    method: 'PUT',
    path: '/v1/nodes/{node}/states/power',
    body: { target: 'on' },
    expect: { admin: 202, owner: 403, other: 403, none: 401 },
  },
  {
    name: 'node maintenance',
    method: 'PUT',
    path: '/v1/nodes/{node}/maintenance',
    body: { maintenance: true, reason: 'disk swap' },
    expect: { admin: 200, owner: 403, other: 403, none: 401 },
  },
  {
    name: 'fake faults (test builds only)',
    method: 'PUT',
    path: '/v1/nodes/{node}/fake-faults',
    body: { unreachable: true },
    expect: { admin: 204, owner: 403, other: 403, none: 401 },
  },
  { name: 'healthz', method: 'GET', path: '/healthz', expect: { admin: 200, owner: 200, other: 200, none: 200 } },
  { name: 'readyz', method: 'GET', path: '/readyz', expect: { admin: 200, owner: 200, other: 200, none: 200 } },
  { name: 'metrics', method: 'GET', path: '/metrics', expect: { admin: 200, owner: 200, other: 200, none: 200 } },
  { name: 'openapi', method: 'GET', path: '/openapi.json', expect: { admin: 200, owner: 200, other: 200, none: 200 } },
];

/** The row's URL for a role: `{p}` is the role's project, the other placeholders the fixture's ids. */
export function rowUrl(row: Row, project: string, ids: { id: string; node: string; req: string }): string {
  return row.path.replace('{p}', project).replace('{id}', ids.id).replace('{node}', ids.node).replace('{req}', ids.req);
}
