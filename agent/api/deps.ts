/** What the route modules share: the service and how to build a view environment for a caller. */
import type { RequestContext } from '../model.js';
import type { AgentService } from '../service.js';
import type { PageSize } from './paging.js';
import type { ViewEnv } from './views.js';

export interface ApiDeps {
  service: AgentService;
  agentId: string;
  /** publicUrl() without its trailing slash. */
  base: () => string;
  /** Views for this caller; links are built under `urlProject` (the caller's project). */
  viewEnv: (ctx: RequestContext, urlProject: string) => ViewEnv;
  /** api.page_size now (read per request: SIGHUP applies it). */
  pageSize: () => PageSize;
}
