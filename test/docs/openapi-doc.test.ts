/**
 * docs/openapi.json is the document the API serves at GET /openapi.json (scripts/openapi.ts writes it): a route, a
 * parameter or a response declared in the code and not in the committed document fails here, naming the command that
 * brings the document up to date.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPENAPI_DOC, openapiText } from '../../scripts/openapi.js';

describe('docs/openapi.json', () => {
  it('is what the API serves (run `npm run openapi` after changing a route)', async () => {
    const served = JSON.parse(await openapiText()) as { paths: Record<string, unknown> };
    const committed = JSON.parse(readFileSync(OPENAPI_DOC, 'utf8')) as { paths: Record<string, unknown> };
    expect(Object.keys(committed.paths).sort(), 'the paths').toEqual(Object.keys(served.paths).sort());
    expect(committed, 'the whole document: run `npm run openapi`').toEqual(served);
    expect(Object.keys(served.paths)).toEqual(expect.arrayContaining(['/v1/{project_id}/instances', '/v2/{project_id}/servers/{id}', '/status']));
    expect(Object.keys(served.paths).some((p) => p.includes('fake')), 'no test-only route').toBe(false);
  });
});
