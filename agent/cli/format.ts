/**
 * Plain-text output of metalctl: aligned tables and key/value blocks, no dependency.
 *
 * Values come from the API and so are not trusted: control characters (terminal escapes, newlines) are shown
 * escaped, so a name cannot rewrite the operator's terminal or break a table's alignment.
 */

/** One cell: null/undefined/'' as '-', objects as compact JSON, control characters escaped. */
export function formatCell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  let s: string;
  if (typeof value === 'string') s = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') s = String(value);
  else s = JSON.stringify(value) ?? String(value);
  return escapeControl(s);
}

/** Replaces C0/C1 control characters and DEL with visible escapes (\n, \t, \x1b, ...). */
export function escapeControl(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/**
 * A table: a header row then one row per item, columns separated by two spaces and padded to the widest cell;
 * the last column is not padded (no trailing blanks). Ends with a newline. With no rows, only the header is printed.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = rows.map((r) => headers.map((_, i) => formatCell(r[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] as string).length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

/** A key/value block: keys padded to the longest, then the value. Ends with a newline. */
export function formatKeyValue(pairs: readonly (readonly [string, unknown])[]): string {
  if (pairs.length === 0) return '';
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${formatCell(v)}`.trimEnd()).join('\n') + '\n';
}

/**
 * Flattens an object into key/value pairs for `show`: nested objects become `a.b`, arrays of scalars are joined
 * with ', ', other arrays are indexed (`a[0].b`). Keys keep the API's order.
 */
export function flattenObject(value: unknown, prefix = ''): [string, unknown][] {
  if (value === null || typeof value !== 'object') return [[prefix || 'value', value]];
  const out: [string, unknown][] = [];
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return [[prefix, value.length ? value.map(formatCell).join(', ') : null]];
    value.forEach((v, i) => out.push(...flattenObject(v, `${prefix}[${i}]`)));
    return out;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return [[prefix || 'value', null]];
  for (const [k, v] of entries) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object') out.push(...flattenObject(v, key));
    else out.push([key, v]);
  }
  return out;
}
