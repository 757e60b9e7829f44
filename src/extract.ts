import { load, type CheerioAPI } from 'cheerio';
import { InvalidInputError } from './errors';
import type { ItemsSpec } from './spec';
import { canonicalizeUrl } from './url';

/** What one HTML page yields. */
export interface ExtractedPage {
  /** Text of `<title>`, whitespace collapsed; null if absent or blank. */
  title: string | null;
  /** Canonical http(s) URLs of `<a href>` and `<area href>`, de-duplicated, in document order. */
  links: string[];
  /** One object per element matching `items.selector`; a field is null when its element or attribute is missing. */
  items: Array<Record<string, string | null>>;
}

type Selection = ReturnType<CheerioAPI>;

/** A field selector split into its parts: `css` null means the item element itself. */
interface FieldSelector {
  css: string | null;
  attr: string | null;
}

// Attributes whose value is a URL: returned absolute, so items stay meaningful off the page.
const URL_ATTRIBUTES = new Set(['href', 'src']);

/**
 * Extracts title, links and (if `items` is given) items from an HTML page.
 * Relative URLs resolve against the first `<base href>` (itself resolved
 * against `pageUrl`), else `pageUrl`. `<template>` contents are inert in a
 * browser, so they are ignored here too.
 * Selectors should have passed {@link validateItemsSpec}; an invalid one throws.
 */
export function extractPage(html: string, pageUrl: string, items?: ItemsSpec): ExtractedPage {
  const $ = load(html);
  $('template').remove();
  const baseUrl = baseUrlOf($, pageUrl);
  return {
    title: titleOf($),
    links: linksOf($, baseUrl),
    items: items === undefined ? [] : itemsOf($, items, baseUrl),
  };
}

/**
 * Checks that every selector of an items spec compiles, so that a typo fails
 * at `tcrawl crawl` time instead of on every page inside the worker.
 * @throws InvalidInputError (`TCRAWL_INVALID_SELECTOR`) naming the field and selector.
 */
export function validateItemsSpec(items: ItemsSpec): void {
  const $ = load('');
  checkSelector($, items.selector, `items.selector "${items.selector}"`);
  for (const [name, raw] of Object.entries(items.fields)) {
    const { css } = parseFieldSelector(raw);
    if (css !== null) checkSelector($, css, `items.fields.${name} "${raw}"`);
  }
}

function checkSelector($: CheerioAPI, selector: string, what: string): void {
  try {
    $.root().find(selector);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new InvalidInputError(`Invalid CSS selector in ${what}: ${reason}`, 'TCRAWL_INVALID_SELECTOR');
  }
}

/**
 * `css` → text, `css@attr` → attribute, `@attr` → the item's own attribute.
 * The attribute must be a plain name at the very end, so an `@` inside the
 * CSS (`a[href*="@"]`) stays part of the selector.
 */
function parseFieldSelector(raw: string): FieldSelector {
  const match = /^(.*)@([A-Za-z_:][\w:.-]*)$/s.exec(raw.trim());
  if (match === null) return { css: raw.trim(), attr: null };
  const css = (match[1] ?? '').trim();
  return { css: css === '' ? null : css, attr: match[2] ?? null };
}

function baseUrlOf($: CheerioAPI, pageUrl: string): string {
  const href = $('base[href]').first().attr('href');
  return (href !== undefined && canonicalizeUrl(href, pageUrl)) || pageUrl;
}

function titleOf($: CheerioAPI): string | null {
  // An inline SVG's <title> is a tooltip, not the document's title.
  const title = $('title').filter((_, el) => $(el).closest('svg').length === 0).first();
  if (title.length === 0) return null;
  const text = collapseWhitespace(title.text());
  return text === '' ? null : text;
}

function linksOf($: CheerioAPI, baseUrl: string): string[] {
  const links = new Set<string>();
  $('a[href], area[href]').each((_, el) => {
    const url = canonicalizeUrl($(el).attr('href') ?? '', baseUrl);
    if (url !== null) links.add(url);
  });
  return [...links];
}

function itemsOf($: CheerioAPI, items: ItemsSpec, baseUrl: string): Array<Record<string, string | null>> {
  const fields = Object.entries(items.fields).map(([name, raw]) => [name, parseFieldSelector(raw)] as const);
  // root().find: `$(selector)` would build elements from a selector that looks like HTML.
  return $.root()
    .find(items.selector)
    .toArray()
    .map((el) => {
      const item = $(el);
      return Object.fromEntries(fields.map(([name, field]) => [name, fieldValue(item, field, baseUrl)]));
    });
}

function fieldValue(item: Selection, field: FieldSelector, baseUrl: string): string | null {
  const target = field.css === null ? item : item.find(field.css).first();
  if (target.length === 0) return null;
  if (field.attr === null) return collapseWhitespace(target.text());
  const value = target.attr(field.attr);
  if (value === undefined) return null;
  return URL_ATTRIBUTES.has(field.attr.toLowerCase()) ? absoluteUrl(value, baseUrl) : value;
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

/** HTML's "strip and collapse ASCII whitespace" (non-breaking spaces are content). */
function collapseWhitespace(text: string): string {
  return text.replace(/[\t\n\f\r ]+/g, ' ').trim();
}
