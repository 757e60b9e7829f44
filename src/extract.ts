import { applyRule, scanRule, type Item } from './rules/apply';
import { compileRules } from './rules/compile';
import { parseDocument } from './rules/document';
import type { ItemsSpec } from './spec';

/** What one HTML page yields under the default rule. */
export interface ExtractedPage {
  /** Text of `<title>`, whitespace collapsed; null if absent or blank. */
  title: string | null;
  /** Canonical http(s) URLs of `<a href>` and `<area href>`, de-duplicated, in document order. */
  links: string[];
  /** One object per element matching `items.selector`; a field is null when its element or attribute is missing. */
  items: Item[];
}

/**
 * Extracts title, links and (if `items` is given) items from an HTML page, as
 * a crawl does for a page no rule matches. Relative URLs resolve against the
 * first `<base href>` (itself resolved against `pageUrl`), else `pageUrl`.
 */
export function extractPage(html: string, pageUrl: string, items?: ItemsSpec): ExtractedPage {
  const { fallback } = compileRules({ rules: [], items });
  const context = { request: { method: 'GET' as const, url: pageUrl }, finalUrl: pageUrl, depth: 0, maxDepth: Infinity };
  const page = scanRule(fallback, html, context) ?? applyRule(fallback, parseDocument('html', html, pageUrl), context);
  return { title: page.title, links: page.requests.map(({ request }) => request.url), items: page.items };
}
