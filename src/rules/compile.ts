import type { CrawlSettings } from '../crawl-types';
import type { FieldType } from './coerce';
import { globToRegExp } from './glob';
import type { HttpMethod } from './request';
import type { Field, Follow, HeaderValues, ItemsRule, Paginate, Rule, SecretQuery } from './schema';
import { compileSource, parseShorthand, type CompiledSource } from './source';
import type { ElementReading } from './values';

/**
 * A crawl's rules, compiled once per worker and crawl: regexes and JSONPaths
 * built, shorthands expanded, defaults filled. The spec was validated when
 * the crawl started; nothing here can fail on a spec that passed.
 */

export interface CompiledField {
  /** Null: the item itself. */
  source: CompiledSource | null;
  reading: ElementReading;
  from: 'body' | 'url' | 'finalUrl' | 'label';
  type?: FieldType;
  all: boolean;
}

export interface CompiledItems {
  /** Null: the whole document is one item. */
  selector: CompiledSource | null;
  /** Null: a JSON item is saved as it is. */
  fields: Array<[string, CompiledField]> | null;
}

export interface CompiledFollow {
  source: CompiledSource;
  template?: string;
  label?: string;
  maxDepth?: number;
  method: HttpMethod;
  body?: unknown;
  form?: Record<string, string>;
  query?: Record<string, string>;
}

export interface CompiledPaginate {
  param?: string;
  type: 'page' | 'offset' | 'cursor';
  start: number;
  step: number;
  perPage?: number;
  stopWhenEmpty?: CompiledSource;
  total?: CompiledSource;
  cursor?: CompiledSource;
  next?: CompiledSource;
  maxPages?: number;
}

export interface CompiledRule {
  name: string;
  /** Whether a request with this URL and label is this rule's. */
  matches: (url: string, label: string | undefined) => boolean;
  parse: Rule['parse'];
  /**
   * The default rule reads whatever a response is: a source that does not fit
   * it (CSS on JSON) yields nothing. A user's rule fails such a response
   * `parse_error` instead, so a rule aimed at the wrong responses is seen.
   */
  lenient: boolean;
  headers: HeaderValues;
  query: SecretQuery;
  follow: CompiledFollow[];
  paginate?: CompiledPaginate;
  items?: CompiledItems;
  handler?: string;
  save: boolean;
}

export interface CompiledRules {
  rules: CompiledRule[];
  /** For a request no rule matches: HTML links followed, the spec's top-level `items`. */
  fallback: CompiledRule;
}

/** An HTML page's links, as the crawler has always followed them: the default rule's one follow entry. */
export const htmlLinksFollow: CompiledFollow = Object.freeze({ source: Object.freeze({ css: 'a[href], area[href]', attr: 'href' }), method: 'GET' });

export function compileRules(settings: Pick<CrawlSettings, 'rules' | 'items'>): CompiledRules {
  return {
    rules: settings.rules.map((rule, index) => compileRule(rule, index)),
    fallback: {
      name: 'default',
      matches: () => true,
      parse: 'auto',
      lenient: true,
      headers: {},
      query: {},
      follow: [htmlLinksFollow],
      items: settings.items ? compileItems(settings.items) : undefined,
      save: true,
    },
  };
}

/** The rule for a request: the first that matches, else the fallback. */
export function ruleFor(compiled: CompiledRules, url: string, label: string | undefined): CompiledRule {
  return compiled.rules.find((rule) => rule.matches(url, label)) ?? compiled.fallback;
}

function compileRule(rule: Rule, index: number): CompiledRule {
  const url = rule.url === undefined ? null : new RegExp(rule.url);
  const glob = rule.glob === undefined ? null : globToRegExp(rule.glob);
  return {
    name: rule.name ?? `rules[${index}]`,
    matches: (candidate, label) =>
      (url === null || url.test(candidate)) && (glob === null || glob.test(candidate)) && (rule.label === undefined || rule.label === label),
    parse: rule.parse,
    lenient: false,
    headers: rule.headers ?? {},
    query: rule.query ?? {},
    follow: rule.follow.map(compileFollow),
    paginate: rule.paginate ? compilePaginate(rule.paginate) : undefined,
    items: rule.items ? compileItems(rule.items) : undefined,
    handler: rule.handler,
    save: rule.save,
  };
}

function compileFollow(follow: Follow): CompiledFollow {
  if (typeof follow === 'string') return { source: compileSource(follow), method: 'GET' };
  const { css, attr, jsonPath, regex, template, label, maxDepth, method = 'GET', body, form, query } = follow;
  return { source: compileSource({ css, attr, jsonPath, regex }), template, label, maxDepth, method, body, form, query };
}

function compilePaginate(paginate: Paginate): CompiledPaginate {
  const optional = (source: Paginate['next']) => (source === undefined ? undefined : compileSource(source));
  return {
    param: paginate.param,
    type: paginate.type,
    start: paginate.start ?? (paginate.type === 'offset' ? 0 : 1),
    step: paginate.step ?? 1,
    perPage: paginate.perPage,
    stopWhenEmpty: optional(paginate.stopWhenEmpty),
    total: optional(paginate.total),
    cursor: optional(paginate.cursor),
    next: optional(paginate.next),
    maxPages: paginate.maxPages,
  };
}

export function compileItems(items: ItemsRule): CompiledItems {
  return {
    selector: items.selector === undefined ? null : compileSource(items.selector),
    fields: items.fields === undefined ? null : Object.entries(items.fields).map(([name, field]) => [name, compileField(field)]),
  };
}

function compileField(field: Field): CompiledField {
  const { css, attr, jsonPath, regex, html = false, from = 'body', type, all = false }: Exclude<Field, string> = typeof field === 'string' ? parseShorthand(field) : field;
  const source = css === undefined && jsonPath === undefined && regex === undefined ? null : compileSource({ css, attr, jsonPath, regex });
  return { source, reading: { attr: null, html }, from, type, all };
}
