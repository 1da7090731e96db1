/**
 * Input rules that hold on every path alike (design 4.2, docs/api.md "Input rules"), checked after auth and before
 * the body is read: a Content-Encoding (none is decoded) or a charset other than UTF-8 is a 415, a query parameter
 * the route does not declare is a 400; and, while parsing, a JSON body with a duplicate key is a 400.
 */
import type { FastifyRequest } from 'fastify';
import { badRequest, echo, unsupportedMediaType } from './errors.js';

/** The first duplicate key of a valid JSON text, with where it is (`body.extra`), or null. */
export function duplicateKey(json: string): { key: string; path: string } | null {
  interface Frame {
    keys: Set<string> | null; // null: an array
    expectKey: boolean;
    path: string;
    lastKey: string | null;
    index: number;
  }
  const stack: Frame[] = [];
  const childPath = (): string => {
    const top = stack[stack.length - 1];
    if (top === undefined) return 'body';
    return top.keys === null ? `${top.path}[${top.index}]` : `${top.path}.${top.lastKey ?? ''}`;
  };
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top !== undefined && top.keys !== null && top.expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, path: top.path };
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      const path = childPath();
      stack.push({ keys: c === '{' ? new Set() : null, expectKey: c === '{', path, lastKey: null, index: 0 });
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top !== undefined) {
        if (top.keys !== null) top.expectKey = true;
        else top.index += 1;
      }
    }
  }
  return null;
}

/** `application/json; charset=UTF-8` -> 'utf-8'; undefined without a charset. */
function charsetOf(contentType: string): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType);
  return m?.[1]?.toLowerCase();
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/** The route's declared query parameters (its querystring schema), none without one. */
function declaredQuery(req: FastifyRequest): Set<string> {
  const schema = req.routeOptions.schema?.querystring as { properties?: Record<string, unknown> } | undefined;
  return new Set(Object.keys(schema?.properties ?? {}));
}

/**
 * The preParsing checks. @throws AgentError 415 (Content-Encoding, charset) or 400 (unknown query parameter).
 */
export function checkRequestInput(req: FastifyRequest): void {
  const encoding = headerText(req.headers['content-encoding'])?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
    throw unsupportedMediaType(`Unsupported Content-Encoding '${echo(encoding)}': send the body unencoded (identity)`);
  }
  const type = headerText(req.headers['content-type']);
  if (type !== undefined) {
    const charset = charsetOf(type);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      throw unsupportedMediaType(`Unsupported charset '${echo(charset)}': send the body as application/json in UTF-8`);
    }
  }
  const query = req.query;
  if (query !== null && typeof query === 'object') {
    const allowed = declaredQuery(req);
    const unknown = Object.keys(query).filter((k) => !allowed.has(k));
    if (unknown.length > 0) {
      const known = allowed.size > 0 ? ` (known: ${[...allowed].join(', ')})` : ' (this path takes none)';
      throw badRequest(`Invalid input: querystring: unknown parameter '${echo(unknown[0]!)}'${known}`);
    }
  }
}
