/**
 * Postgres text and jsonb cannot hold U+0000 (a page's title, body or item
 * value can): it is dropped rather than failing the whole save.
 */
export function withoutNul(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '') : text;
}

/** JSON for a jsonb column, with U+0000 dropped from every string in it. */
export function jsonForPg(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'string' ? withoutNul(v) : v));
}
