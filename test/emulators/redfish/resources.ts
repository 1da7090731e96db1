/** The DMTF Redfish shapes the emulator serves, rendered from the model (no HTTP, no state changes). */
import { createHash } from 'node:crypto';
import { BOOT_MODES, type EmulatedSystem, type Task } from './model.js';

export const ROOT = '/redfish/v1';
const ref = (path: string): { '@odata.id': string } => ({ '@odata.id': path });

export function serviceRoot(uuid: string): Record<string, unknown> {
  return {
    '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
    '@odata.id': `${ROOT}/`,
    Id: 'RootService',
    Name: 'metald Redfish BMC emulator',
    RedfishVersion: '1.11.0',
    UUID: uuid,
    Product: 'metald-redfish-emulator',
    Vendor: 'metald',
    Systems: ref(`${ROOT}/Systems`),
    Managers: ref(`${ROOT}/Managers`),
    SessionService: ref(`${ROOT}/SessionService`),
    TaskService: ref(`${ROOT}/TaskService`),
    Links: { Sessions: ref(`${ROOT}/SessionService/Sessions`) },
  };
}

export function collection(type: string, name: string, path: string, members: string[]): Record<string, unknown> {
  return { '@odata.type': `#${type}`, '@odata.id': path, Name: name, Members: members.map(ref), 'Members@odata.count': members.length };
}

export const systemPath = (id: string): string => `${ROOT}/Systems/${id}`;
export const managerPath = (id: string): string => `${ROOT}/Managers/${id}`;

export function system(s: EmulatedSystem): Record<string, unknown> {
  const path = systemPath(s.id);
  const out: Record<string, unknown> = {
    '@odata.type': '#ComputerSystem.v1_13_0.ComputerSystem',
    '@odata.id': path,
    '@odata.etag': s.etag(),
    Id: s.id,
    Name: `Emulated system ${s.id}`,
    SystemType: 'Physical',
    Manufacturer: 'metald',
    Model: 'Redfish emulator',
    SerialNumber: `EMU-${s.id}`,
    UUID: uuidOf(s.id),
    PowerState: s.power,
    Status: { State: 'Enabled', Health: 'OK' },
    Boot: {
      BootSourceOverrideTarget: s.boot.target,
      BootSourceOverrideEnabled: s.boot.enabled,
      BootSourceOverrideMode: s.boot.mode,
      'BootSourceOverrideTarget@Redfish.AllowableValues': s.profile.bootTargets,
      'BootSourceOverrideMode@Redfish.AllowableValues': BOOT_MODES,
    },
    Actions: {
      '#ComputerSystem.Reset': { target: `${path}/Actions/ComputerSystem.Reset`, 'ResetType@Redfish.AllowableValues': s.profile.resetTypes },
    },
    Links: { ManagedBy: [ref(managerPath(s.id))] },
  };
  if (s.profile.vmediaUnder !== 'manager') out.VirtualMedia = ref(`${path}/VirtualMedia`);
  return out;
}

export function manager(s: EmulatedSystem): Record<string, unknown> {
  const path = managerPath(s.id);
  const out: Record<string, unknown> = {
    '@odata.type': '#Manager.v1_10_0.Manager',
    '@odata.id': path,
    Id: s.id,
    Name: `BMC of ${s.id}`,
    ManagerType: 'BMC',
    FirmwareVersion: 'emulator-1.0',
    Status: { State: 'Enabled', Health: 'OK' },
    Links: { ManagerForServers: [ref(systemPath(s.id))] },
  };
  if (s.profile.vmediaUnder !== 'system') out.VirtualMedia = ref(`${path}/VirtualMedia`);
  return out;
}

/** The virtual CD, under `base` (the Manager's or the System's path). */
export function virtualCd(s: EmulatedSystem, base: string): Record<string, unknown> {
  const path = `${base}/VirtualMedia/Cd`;
  return {
    '@odata.type': '#VirtualMedia.v1_3_0.VirtualMedia',
    '@odata.id': path,
    '@odata.etag': s.mediaEtag(),
    Id: 'Cd',
    Name: 'Virtual CD',
    MediaTypes: ['CD', 'DVD'],
    Image: s.media.image,
    ImageName: s.media.image === null ? null : (s.media.image.split('/').pop() ?? null),
    Inserted: s.media.inserted,
    WriteProtected: s.media.writeProtected,
    ConnectedVia: s.media.inserted ? 'URI' : 'NotConnected',
    TransferProtocolType: s.media.image?.startsWith('https:') ? 'HTTPS' : s.media.image ? 'HTTP' : null,
    Actions: {
      '#VirtualMedia.InsertMedia': { target: `${path}/Actions/VirtualMedia.InsertMedia` },
      '#VirtualMedia.EjectMedia': { target: `${path}/Actions/VirtualMedia.EjectMedia` },
    },
  };
}

export function sessionService(): Record<string, unknown> {
  return {
    '@odata.type': '#SessionService.v1_1_8.SessionService',
    '@odata.id': `${ROOT}/SessionService`,
    Id: 'SessionService',
    Name: 'Session Service',
    ServiceEnabled: true,
    SessionTimeout: 1800,
    Sessions: ref(`${ROOT}/SessionService/Sessions`),
  };
}

export function session(id: string, user: string): Record<string, unknown> {
  return { '@odata.type': '#Session.v1_3_0.Session', '@odata.id': `${ROOT}/SessionService/Sessions/${id}`, Id: id, Name: `Session ${id}`, UserName: user };
}

export function taskService(): Record<string, unknown> {
  return { '@odata.type': '#TaskService.v1_1_5.TaskService', '@odata.id': `${ROOT}/TaskService`, Id: 'TaskService', Name: 'Task Service', ServiceEnabled: true, Tasks: ref(`${ROOT}/TaskService/Tasks`) };
}

export const taskPath = (id: string): string => `${ROOT}/TaskService/Tasks/${id}`;

export function task(t: Task): Record<string, unknown> {
  return {
    '@odata.type': '#Task.v1_4_3.Task',
    '@odata.id': taskPath(t.id),
    Id: t.id,
    Name: t.message,
    TaskState: t.state,
    TaskStatus: t.state === 'Exception' ? 'Critical' : 'OK',
    StartTime: t.startTime,
    ...(t.endTime ? { EndTime: t.endTime } : {}),
    PercentComplete: t.state === 'Running' ? 50 : 100,
    Messages: [{ MessageId: t.state === 'Exception' ? 'Base.1.8.InternalError' : 'Base.1.8.Success', Message: t.message, Severity: t.state === 'Exception' ? 'Critical' : 'OK' }],
    Links: { 'Origin': ref(systemPath(t.system)) },
  };
}

/** A DMTF error body: the first message as `error.message`, every message in `@Message.ExtendedInfo`. */
export function errorBody(messageId: string, message: string, args: string[] = [], resolution = 'Correct the request and resubmit it.'): Record<string, unknown> {
  return {
    error: {
      code: messageId,
      message,
      '@Message.ExtendedInfo': [
        { '@odata.type': '#Message.v1_1_1.Message', MessageId: messageId, Message: message, MessageArgs: args, Severity: 'Warning', Resolution: resolution },
      ],
    },
  };
}

/** A stable UUID-shaped string per system id (sushy and redfishtool show it; nothing depends on its value). */
function uuidOf(id: string): string {
  const h = createHash('sha1').update(id).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
