/**
 * nova's list paging on every list route: `limit` (1..api.page_size.max; api.page_size.default without one) and
 * `marker` (the id of the last item of the previous page). A bad limit or a marker that cannot name an item of the
 * list is a 400 in the path's family; a well-formed marker the list does not hold is the service's 400
 * (`marker [X] not found`, nova's words).
 */
import { Type } from '@sinclair/typebox';
import type { PageRequest } from '../service.js';
import { badRequest, echo } from './errors.js';

export interface PageSize {
  default: number;
  max: number;
}

/** The query parameters every list route declares (with its own). */
export const PAGE_QUERY = {
  limit: Type.Optional(Type.String({ description: 'Page size: a whole number from 1 to api.page_size.max (default api.page_size.default).' })),
  marker: Type.Optional(Type.String({ description: 'The id of the last item of the previous page: the page starts after it.' })),
};

/** `?limit=&marker=` -> the page. @throws AgentError BAD_REQUEST naming the parameter. */
export function pageOf(q: { limit?: string | undefined; marker?: string | undefined }, size: PageSize, markerRe: RegExp): PageRequest {
  let limit = size.default;
  if (q.limit !== undefined) {
    limit = /^[0-9]{1,9}$/.test(q.limit) ? Number(q.limit) : Number.NaN;
    if (!(limit >= 1 && limit <= size.max)) {
      throw badRequest(`Invalid input: querystring.limit: '${echo(q.limit)}' is not a whole number from 1 to ${size.max}`);
    }
  }
  if (q.marker === undefined) return { limit };
  if (!markerRe.test(q.marker)) throw badRequest(`marker [${echo(q.marker)}] not found`);
  return { limit, marker: q.marker };
}
