import { getDomain } from 'tldts';
import type { CrawlSpec } from './spec';

/**
 * Which URLs a crawl may follow. Plain JSON (strings and arrays only) because
 * it crosses Temporal activity boundaries; compiled regexes are cached per
 * object on the worker side.
 */
export interface ScopeRules {
  /** `host`: the seeds' hosts; `domain`: their registrable domains; `any`: anything. */
  scope: 'host' | 'domain' | 'any';
  /** Seed hosts, with non-default port (`example.com`, `127.0.0.1:8080`). */
  hosts: string[];
  /** Registrable domains of the seed hosts (`example.co.uk`), or the hostname for IPs and single-label hosts. */
  domains: string[];
  /** Regex sources; if any, a URL must match at least one. */
  include: string[];
  /** Regex sources; a URL matching any is refused. */
  exclude: string[];
}

/** Why a URL is refused: outside the seeds' hosts/domains, matched by `exclude`, or matched by no `include`. */
export type ScopeRejection = 'off_scope' | 'excluded' | 'not_included';

/** Builds the rules of a crawl from its (already canonical) seeds. */
export function scopeRulesFor(spec: Pick<CrawlSpec, 'seeds' | 'scope' | 'include' | 'exclude'>): ScopeRules {
  const seeds = spec.seeds.map((seed) => new URL(seed));
  return {
    scope: spec.scope,
    hosts: unique(seeds.map((url) => url.host)),
    domains: unique(seeds.map((url) => domainKey(url.hostname))),
    include: [...spec.include],
    exclude: [...spec.exclude],
  };
}

/**
 * Why `url` may not be followed, or null if it may. Regexes are searched in
 * the whole URL (unanchored, like `RegExp.test`); anchor them with `^`/`$`
 * to match it entirely. Seeds are the caller's business: the spec promises
 * they are always crawled, whatever `include` says.
 */
export function scopeRejection(url: string, rules: ScopeRules): ScopeRejection | null {
  const parsed = tryParse(url);
  if (parsed === null || !inHostScope(parsed, rules)) return 'off_scope';
  const { include, exclude } = compiled(rules);
  if (exclude.some((re) => re.test(url))) return 'excluded';
  if (include.length > 0 && !include.some((re) => re.test(url))) return 'not_included';
  return null;
}

/** True if `url` is within the seeds' hosts/domains, matches `include` (if any) and no `exclude`. */
export function isInScope(url: string, rules: ScopeRules): boolean {
  return scopeRejection(url, rules) === null;
}

function inHostScope(url: URL, rules: ScopeRules): boolean {
  switch (rules.scope) {
    case 'any':
      return true;
    case 'host':
      return rules.hosts.includes(url.host);
    case 'domain':
      return rules.domains.includes(domainKey(url.hostname));
  }
}

/**
 * The registrable domain (eTLD+1) of a hostname. Private public-suffix
 * entries count (`alice.github.io` is its own site, not part of `github.io`):
 * they exist precisely because those subdomains belong to different people.
 * IPs, `localhost` and single-label hosts have none, so they stand for themselves.
 */
function domainKey(hostname: string): string {
  return getDomain(hostname, { allowPrivateDomains: true }) ?? hostname;
}

interface CompiledRules {
  include: RegExp[];
  exclude: RegExp[];
}

// Keyed by the rules object: scopeRejection runs for every link of every page.
const compiledCache = new WeakMap<ScopeRules, CompiledRules>();

function compiled(rules: ScopeRules): CompiledRules {
  let entry = compiledCache.get(rules);
  if (entry === undefined) {
    // No flags: a `g` regex would carry lastIndex from one test() to the next.
    entry = { include: rules.include.map((s) => new RegExp(s)), exclude: rules.exclude.map((s) => new RegExp(s)) };
    compiledCache.set(rules, entry);
  }
  return entry;
}

function tryParse(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
