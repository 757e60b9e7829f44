import { canonicalizeUrl } from '../url';
import { coerceValue } from './coerce';
import { htmlLinksFollow, type CompiledField, type CompiledFollow, type CompiledItems, type CompiledPaginate, type CompiledRule } from './compile';
import { scanHtml } from './html-scan';
import { ParseError, type ParsedDocument } from './document';
import { fillJson, fillText, fillUrlTemplate, requestKey, withQuery, type CrawlRequest } from './request';
import type { CompiledSource } from './source';
import { nodeValue, rootOf, selectNodes, sourceValues, type DocumentNode, type ElementReading } from './values';

/** One item: named JSON values. */
export type Item = Record<string, unknown>;

/** Where a response came from: what its rule reads besides the body. */
export interface ResponseContext {
  request: CrawlRequest;
  /** The URL that answered (the request's, unless a redirect was followed inline). */
  finalUrl: string;
  depth: number;
  /** The spec's maxDepth: a follow entry's own limit overrides it. */
  maxDepth: number;
}

export interface FoundRequest {
  request: CrawlRequest;
  depth: number;
}

export interface RuleYield {
  title: string | null;
  items: Item[];
  /** Requests to add to the frontier (scope is the caller's to check): followed ones within depth, and the next page. */
  requests: FoundRequest[];
  /** Distinct requests the follow entries found, within depth or not (`pages.links`). */
  found: number;
}

// Attributes whose value is a URL: returned absolute, so items stay meaningful off the page.
const urlAttributes = new Set(['href', 'src']);

/** What a rule makes of a parsed response. Throws ParseError when a strict rule's source does not fit the document. */
export function applyRule(rule: CompiledRule, document: ParsedDocument, context: ResponseContext): RuleYield {
  const read = <T>(empty: T, work: () => T): T => {
    try {
      return work();
    } catch (error) {
      if (rule.lenient && error instanceof ParseError) return empty;
      throw error;
    }
  };
  const root = rootOf(document);
  const { requests, found } = followedRequests(rule.follow, (follow) => read([], () => sourceValues(follow.source, root, document, { attr: 'href' })), document.baseUrl, context);
  if (rule.paginate) {
    const next = nextPage(rule.paginate, root, document, context);
    if (next !== null) requests.push({ request: next, depth: context.depth });
  }
  return {
    title: document.title,
    items: rule.items ? read([], () => extractItems(rule.items!, root, document, context)) : [],
    requests,
    found,
  };
}

/**
 * What the default rule yields for an HTML page when it asks for no items —
 * the same as `applyRule` over the parsed page — read from the page's tokens
 * (see scanHtml) instead of a DOM. Null when the rule needs a DOM or the page
 * has markup only a full parse reads right: parse it then.
 */
export function scanRule(rule: CompiledRule, html: string, context: ResponseContext): RuleYield | null {
  if (!readsLinksOnly(rule)) return null;
  const scanned = scanHtml(html);
  if (scanned === null) return null;
  const baseUrl = (scanned.baseHref !== undefined && canonicalizeUrl(scanned.baseHref, context.finalUrl)) || context.finalUrl;
  return { title: scanned.title, items: [], ...followedRequests(rule.follow, () => scanned.hrefs, baseUrl, context) };
}

/** The default rule as compiled, with nothing added: links and titles only. */
function readsLinksOnly(rule: CompiledRule): boolean {
  return rule.follow.length === 1 && rule.follow[0] === htmlLinksFollow && !rule.items && !rule.paginate && !rule.handler;
}

/** The follow entries' requests, de-duplicated by key in first-found order; `found` counts them within depth or not. */
function followedRequests(
  follows: CompiledFollow[],
  valuesOf: (follow: CompiledFollow) => unknown[],
  baseUrl: string,
  context: ResponseContext,
): { requests: FoundRequest[]; found: number } {
  const followed = new Map<string, FoundRequest & { limit: number }>();
  const depth = context.depth + 1;
  for (const follow of follows) {
    const limit = follow.maxDepth ?? context.maxDepth;
    for (const value of valuesOf(follow)) {
      const request = requestFor(follow, value, baseUrl);
      if (request === null) continue;
      const key = requestKey(request);
      if (!followed.has(key)) followed.set(key, { request, depth, limit });
    }
  }
  const requests = [...followed.values()].filter((found) => found.depth <= found.limit).map(({ request, depth }) => ({ request, depth }));
  return { requests, found: followed.size };
}

/** The request a follow entry makes of one value (an id with a template, else a URL); null for a value that makes none. */
export function requestFor(follow: CompiledFollow, value: unknown, baseUrl: string): CrawlRequest | null {
  if (value === null || value === undefined || typeof value === 'object') return null;
  if (follow.template === undefined && typeof value !== 'string') return null;
  const target = follow.template === undefined ? String(value).trim() : fillUrlTemplate(follow.template, value);
  const query = Object.fromEntries(Object.entries(follow.query ?? {}).map(([name, template]) => [name, fillText(template, value)]));
  const url = withQuery(target, query, baseUrl);
  if (url === null) return null;
  const request: CrawlRequest = { method: follow.method, url };
  if (follow.label !== undefined) request.label = follow.label;
  if (follow.form !== undefined) {
    request.body = new URLSearchParams(Object.entries(follow.form).map(([name, template]): [string, string] => [name, fillText(template, value)])).toString();
    request.contentType = 'application/x-www-form-urlencoded';
  } else if (typeof follow.body === 'string') {
    request.body = fillText(follow.body, value);
    request.contentType = 'text/plain; charset=utf-8';
  } else if (follow.body !== undefined) {
    request.body = JSON.stringify(fillJson(follow.body, value));
    request.contentType = 'application/json';
  }
  return request;
}

/**
 * The request for the page after this one — same method, body, label and
 * depth — or null when the response says there is none: an empty page, a
 * total reached, no cursor or no next link, or `maxPages` pages followed.
 */
function nextPage(paginate: CompiledPaginate, root: DocumentNode, document: ParsedDocument, context: ResponseContext): CrawlRequest | null {
  const { request } = context;
  const page = (request.page ?? 0) + 1;
  if (paginate.maxPages !== undefined && page >= paginate.maxPages) return null;
  const first = (source: CompiledSource) => sourceValues(source, root, document, { attr: 'href' })[0];
  let url: string | null;
  if (paginate.next) {
    const link = first(paginate.next);
    url = typeof link === 'string' ? canonicalizeUrl(link.trim(), document.baseUrl) : null;
  } else {
    const param = paginate.param!;
    const value = nextParamValue(paginate, param, root, document, request.url, first);
    url = value === null ? null : withQuery(request.url, { [param]: value });
  }
  if (url === null || url === request.url) return null;
  return { ...request, url, page };
}

function nextParamValue(
  paginate: CompiledPaginate,
  param: string,
  root: DocumentNode,
  document: ParsedDocument,
  url: string,
  first: (source: CompiledSource) => unknown,
): string | null {
  if (paginate.type === 'cursor') {
    const cursor = first(paginate.cursor!);
    return cursor === null || cursor === undefined || cursor === '' || typeof cursor === 'object' ? null : String(cursor);
  }
  if (paginate.stopWhenEmpty && sourceValues(paginate.stopWhenEmpty, root, document, { attr: null }).length === 0) return null;
  const raw = new URL(url).searchParams.get(param);
  const current = raw === null || !/^-?\d+$/.test(raw.trim()) ? paginate.start : Number(raw);
  const next = current + paginate.step;
  if (paginate.total) {
    const total = coerceValue(first(paginate.total), 'number');
    if (typeof total === 'number') {
      const reached = paginate.type === 'offset' ? next : ((next - paginate.start) / paginate.step) * (paginate.perPage ?? 1);
      if (reached >= total) return null;
    }
  }
  return String(next);
}

function extractItems(items: CompiledItems, root: DocumentNode, document: ParsedDocument, context: ResponseContext): Item[] {
  const roots = items.selector === null ? [root] : selectNodes(items.selector, root, document);
  return roots.map((node) => (items.fields === null ? wholeItem(node) : Object.fromEntries(items.fields.map(([name, field]) => [name, fieldValue(field, node, document, context)]))));
}

/** An item without fields: a JSON object as it is; anything else under `value`, or an element's `text`. */
function wholeItem(node: DocumentNode): Item {
  if ('json' in node) return node.json !== null && typeof node.json === 'object' && !Array.isArray(node.json) ? (node.json as Item) : { value: node.json };
  return { text: nodeValue(node, { attr: null }) };
}

function fieldValue(field: CompiledField, item: DocumentNode, document: ParsedDocument, context: ResponseContext): unknown {
  const base = fieldBase(field, item, context);
  if (base === null) return field.all ? [] : null;
  const reading: ElementReading = { attr: field.source?.attr ?? null, html: field.reading.html };
  const raw = field.source === null ? [nodeValue(base, reading)] : sourceValues(field.source, base, document, reading);
  const absolute = reading.attr !== null && urlAttributes.has(reading.attr.toLowerCase()) && !field.source?.regex;
  const values = raw.map((value) => coerceValue(absolute && typeof value === 'string' ? absoluteUrl(value, document.baseUrl) : value, field.type));
  return field.all ? values : (values[0] ?? null);
}

function fieldBase(field: CompiledField, item: DocumentNode, { request, finalUrl }: ResponseContext): DocumentNode | null {
  switch (field.from) {
    case 'body':
      return item;
    case 'url':
      return { text: request.url };
    case 'finalUrl':
      return { text: finalUrl };
    case 'label':
      return request.label === undefined ? null : { text: request.label };
  }
}

/**
 * Canonical form for http(s); other schemes (`mailto:`, `tel:`) are still
 * data worth keeping, so they come back absolute but otherwise untouched.
 */
function absoluteUrl(value: string, baseUrl: string): string {
  const canonical = canonicalizeUrl(value, baseUrl);
  if (canonical !== null) return canonical;
  try {
    return new URL(value.trim(), baseUrl).href;
  } catch {
    return value.trim();
  }
}
