import { createHash } from 'node:crypto';
import { canonicalizeUrl } from '../url';
import { textOf } from './values';

/**
 * A request of the crawl: what is fetched, and what it is known by. Two
 * requests are the same when their keys are: the key is the canonical URL for
 * a GET without a body (so HTML crawls key pages by URL, as always), else
 * `METHOD URL sha256:<body digest>` — two POST bodies to one URL are two
 * requests. Headers are not part of it: they are decided when it is sent.
 */

export const httpMethods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type HttpMethod = (typeof httpMethods)[number];

export interface CrawlRequest {
  method: HttpMethod;
  /** Canonical http(s) URL, without the secrets a rule adds when sending it. */
  url: string;
  body?: string;
  /** The body's Content-Type. */
  contentType?: string;
  /** Carried from the follow entry that found it; rules can match it. */
  label?: string;
  /** Pages of pagination followed to reach it (0 or absent: not a next page). */
  page?: number;
}

export function requestKey(request: CrawlRequest): string {
  if (request.method === 'GET' && request.body === undefined) return request.url;
  const digest = request.body === undefined ? '' : ` sha256:${createHash('sha256').update(request.body).digest('hex')}`;
  return `${request.method} ${request.url}${digest}`;
}

/** The URL a request key names: the key itself for a plain GET, else its second word (see {@link requestKey}). */
export function urlOfKey(key: string): string {
  const words = key.split(' ');
  return words.length > 1 ? words[1] : key;
}

/** Whether a request needs more than its key to be made again (stored in `frontier.request` when so). */
export function isPlainGet(request: CrawlRequest): boolean {
  return request.method === 'GET' && request.body === undefined && request.label === undefined && !request.page;
}

/** `{id}` replaced by the value, URL-encoded. */
export function fillUrlTemplate(template: string, id: unknown): string {
  return template.replaceAll('{id}', encodeURIComponent(textOf(id)));
}

/** `{id}` replaced by the value as text. */
export function fillText(template: string, id: unknown): string {
  return template.replaceAll('{id}', textOf(id));
}

/** A JSON body template: a string that is exactly `{id}` takes the value with its JSON type; `{id}` in other strings is replaced. */
export function fillJson(template: unknown, id: unknown): unknown {
  if (typeof template === 'string') return template === '{id}' ? id : fillText(template, id);
  if (Array.isArray(template)) return template.map((entry) => fillJson(entry, id));
  if (template !== null && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([key, value]) => [key, fillJson(value, id)]));
  }
  return template;
}

/** A URL with query parameters set, canonical; null if it is not an http(s) URL. */
export function withQuery(url: string, params: Record<string, string>, base?: string): string | null {
  const canonical = canonicalizeUrl(url, base);
  if (canonical === null || Object.keys(params).length === 0) return canonical;
  const parsed = new URL(canonical);
  for (const [name, value] of Object.entries(params)) parsed.searchParams.set(name, value);
  return canonicalizeUrl(parsed.href);
}
