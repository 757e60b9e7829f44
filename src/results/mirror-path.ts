import { createHash } from 'node:crypto';
import { urlOfKey } from '../rules/request';

/**
 * Where a page's body goes in a mirror (and in a tar archive): the relative
 * path `host[:port]/path`, as wget's `--adjust-extension` names it, so that a
 * mirror of a site opens in a browser and a page `/a` can sit beside pages
 * `/a/b`:
 * - a path ending in `/` (the site's root included) is `…/index.html`;
 * - an HTML body whose name does not end in `.html` or `.htm` gets `.html`
 *   (`/docs/intro` → `docs/intro.html`, beside the folder `docs/intro/`);
 * - a query stays in the name after `?` (`/list?page=2` → `list?page=2.html`),
 *   its slashes written `%2F`;
 * - segments stay percent-encoded as in the URL (canonical URLs have no `.`
 *   or `..` segments), so every name is one the URL spelled.
 * Pure: the same URL and type give the same path on any machine.
 */
export function mirrorPath(url: string, contentType: string | null): string {
  const parsed = new URL(url);
  let path = parsed.pathname.endsWith('/') ? `${parsed.pathname}index.html` : parsed.pathname;
  if (parsed.search) path += parsed.search.replaceAll('/', '%2F');
  if (isHtml(contentType) && !/\.html?$/i.test(path)) path += '.html';
  return `${parsed.host}${path}`;
}

/**
 * Where a body goes whose mirror path is taken by something else (a file
 * where a folder is needed, a folder where a file is, or another page of the
 * same name — two POST requests to one URL): `host/.tcrawl-conflicts/`, named
 * by a digest of the page's request key. Nothing is overwritten or lost.
 */
export function conflictPath(url: string, requestKey: string): string {
  const name = new URL(url).pathname.split('/').pop() || 'index';
  return `${new URL(url).host}/.tcrawl-conflicts/${createHash('sha256').update(requestKey).digest('hex').slice(0, 16)}-${name}`;
}

/**
 * An item file's path from the output's `name` template: `{field}` the
 * item's top-level field (text as is, anything else as JSON, `/` written
 * `%2F` so a value cannot climb out of its folder), `{position}` its place on
 * its page, `{host}` its page's host. Null when a field is missing or null,
 * or the path would leave the folder: the item goes to the conflicts.
 */
export function itemFilePath(template: string, item: { url: string; position: number; data: Record<string, unknown> }): string | null {
  let missing = false;
  const filled = template.replace(/\{([^{}]+)\}/g, (_, field: string) => {
    if (field === 'position') return String(item.position);
    if (field === 'host') return new URL(urlOfKey(item.url)).host;
    const value = item.data[field];
    if (value === undefined || value === null || value === '') missing = true;
    return (typeof value === 'string' ? value : JSON.stringify(value ?? '')).replaceAll('/', '%2F');
  });
  if (missing || filled.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) return null;
  return filled;
}

function isHtml(contentType: string | null): boolean {
  const type = contentType?.split(';')[0].trim().toLowerCase();
  return type === 'text/html' || type === 'application/xhtml+xml';
}
