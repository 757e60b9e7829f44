import { z } from 'zod';
import { InvalidInputError } from './errors';
import { parseSeedUrl } from './url';
import { itemsSchema, ruleSpecKeys } from './rules/schema';
import { headerValue, regex, text } from './spec-values';

/**
 * The crawl spec: everything that describes one crawl. The CLI flags and the
 * `--spec` JSON file are two spellings of this one schema; the TypeScript type
 * is derived from it so the two cannot drift. Every check lives here, so a
 * script that builds a spec gets the same validation as the CLI.
 */

/** A seed, canonicalized (IDN hosts punycoded); parseSeedUrl says what is wrong with a bad one. */
const seedUrl = z.string().transform((raw, ctx) => {
  try {
    return parseSeedUrl(raw);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    ctx.issues.push({ code: 'custom', message: error.message, input: raw });
    return z.NEVER;
  }
});

const noSeeds = 'needs at least one seed URL';

const positiveInt = z.number().int().positive();
/** Milliseconds for a timer: Node's setTimeout fires at once beyond 2^31-1 (about 24.8 days). */
const timeoutMs = positiveInt.max(2 ** 31 - 1, 'must be at most 2147483647 ms (Node timers cannot wait longer)');

export const rateGroupSchema = z.strictObject({
  /** Name used by `tcrawl set-rate --group` and in status. */
  name: text.min(1),
  /** Hosts sharing the limit: exact `host[:port]`, or `*.example.com` for any subdomain. */
  hosts: z.array(text.min(1)).min(1),
  /** Request starts per second across all hosts of the group; 0 = no group limit. */
  rate: z.number().nonnegative(),
});

export const crawlSpecSchema = z.strictObject({
  /** Absolute http(s) URLs the crawl starts from, without credentials; canonicalized. */
  seeds: z.array(seedUrl, { error: (issue) => (issue.input === undefined ? noSeeds : undefined) }).min(1, noSeeds),
  /** Stop after this many pages have been fetched (saved, failed or skipped). @default 1000 */
  maxPages: positiveInt.default(1000),
  /** Links further than this many hops from a seed are not followed. @default 5 */
  maxDepth: z.number().int().nonnegative().default(5),
  /** Which discovered links are in scope: the seeds' hosts, their registrable domains, or anything. @default 'host' */
  scope: z.enum(['host', 'domain', 'any']).default('host'),
  /** Only URLs matching at least one of these regexes are followed (seeds always are). @default [] */
  include: z.array(regex).default([]),
  /** URLs matching any of these regexes are never followed. @default [] */
  exclude: z.array(regex).default([]),
  /** Request starts per second per host; 0 means no limit. @default 1 */
  rate: z.number().nonnegative().default(1),
  /** Requests in flight per host at once. @default 2 */
  concurrency: positiveInt.default(2),
  /** Request starts per second across all hosts of the crawl (an API quota); 0 = no limit. @default 0 */
  totalRate: z.number().nonnegative().default(0),
  /** Hosts that share one limit, e.g. several API hostnames behind one quota. @default [] */
  rateGroups: z.array(rateGroupSchema).default([]),
  /** A robots.txt Crawl-delay above this many seconds skips the host (reason crawl_delay_too_long). @default 60 */
  maxCrawlDelaySecs: z.number().nonnegative().default(60),
  /** Statuses that mean "slow down" (a ban): retried later, and the host's rate is halved. @default [403, 429] */
  banStatuses: z.array(z.number().int().min(100).max(599)).default([403, 429]),
  /** Regexes that mark a 2xx body as a ban page (a soft block), treated like a ban status. @default [] */
  banBodyMarkers: z.array(regex).default([]),
  /** 'fixed': the configured rates; 'adaptive': per-host delay ≈ response latency / targetConcurrency, within them. @default 'fixed' */
  throttle: z.enum(['fixed', 'adaptive']).default('fixed'),
  /** Adaptive throttle: requests each host should be processing in parallel on average. @default 1 */
  targetConcurrency: z.number().positive().default(1),
  /** Also seed from the sitemaps listed in robots.txt and /sitemap.xml of each seed's origin. @default false */
  sitemaps: z.boolean().default(false),
  /** Obey robots.txt. @default true */
  obeyRobots: z.boolean().default(true),
  /** Allow fetching loopback, private, link-local and unspecified addresses. @default false */
  allowPrivate: z.boolean().default(false),
  /** User-Agent header; its first product token is what robots.txt groups are matched against. @default 'tcrawl/0.1' */
  userAgent: headerValue.default('tcrawl/0.1 (+https://github.com/tcrawl/tcrawl)'),
  /** A response body larger than this is abandoned and the page recorded as failed `too_large`. @default 10 MiB */
  maxBodyBytes: positiveInt.default(10 * 1024 * 1024),
  /** Redirect hops followed per URL. @default 5 */
  maxRedirects: z.number().int().nonnegative().default(5),
  /** Milliseconds to establish a connection. @default 10000 */
  connectTimeoutMs: timeoutMs.default(10_000),
  /** Milliseconds to wait for response headers. @default 30000 */
  headersTimeoutMs: timeoutMs.default(30_000),
  /** Milliseconds the body may stay idle. @default 30000 */
  bodyTimeoutMs: timeoutMs.default(30_000),
  /** Total milliseconds for one URL: every redirect hop, headers and body (a body trickling in under bodyTimeoutMs still ends). @default 120000 */
  fetchTimeoutMs: timeoutMs.default(120_000),
  /** Retries of a URL after a transient failure (5xx, 408, 429, timeouts, connection errors). @default 3 */
  maxRetries: z.number().int().nonnegative().default(3),
  /** First retry delay; doubles each retry. @default 1000 */
  retryBaseMs: positiveInt.default(1000),
  /** Cap on one retry delay, and on a honoured Retry-After. @default 300000 */
  retryMaxMs: positiveInt.default(300_000),
  /** URLs leased and fetched per activity task. @default 100 */
  batchSize: positiveInt.max(1000).default(100),
  /** Items extracted from responses no rule matches (each rule has its own `items`). */
  items: itemsSchema.optional(),
  /** Store each saved page's HTML in `pages.html`. @default false */
  saveHtml: z.boolean().default(false),
  ...ruleSpecKeys,
});

/** The spec as written by a user: defaults may be omitted. */
export type CrawlSpecInput = z.input<typeof crawlSpecSchema>;
/** The spec after validation, every default filled in. */
export type CrawlSpec = z.output<typeof crawlSpecSchema>;
export type ItemsSpec = z.output<typeof itemsSchema>;
export type RateGroup = z.output<typeof rateGroupSchema>;

/** Validates a spec at the edge; throws InvalidInputError naming every problem. */
export function parseCrawlSpec(input: unknown, source = 'crawl spec'): CrawlSpec {
  const result = crawlSpecSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map(describeIssue);
    throw new InvalidInputError(`Invalid ${source}:\n  ${problems.join('\n  ')}`, 'TCRAWL_INVALID_SPEC');
  }
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length > 0 ? issue.path.map(printable).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${printable(k)}"`).join(', ')} at ${where} (known keys: ${knownKeys(issue.path)})`;
  }
  if (issue.code === 'invalid_union') return describeUnionIssue(issue, where);
  if (issue.code === 'invalid_key') return `${where} (the key): ${issue.issues.map((inner) => inner.message).join('; ')}`;
  return `${where}: ${issue.message}`;
}

/**
 * A value that fits no form of a union (a source is a string or an object):
 * the problems of the form it was meant as — the one whose issues are not
 * "wrong type" — else the forms it could have had.
 */
function describeUnionIssue(issue: z.core.$ZodIssueInvalidUnion, where: string): string {
  const wrongType = (branch: z.core.$ZodIssue[]) => branch.length === 1 && branch[0]!.code === 'invalid_type' && branch[0]!.path.length === 0;
  const meant = issue.errors.find((branch) => branch.length > 0 && !wrongType(branch));
  if (meant) return meant.map((inner) => describeIssue({ ...inner, path: [...issue.path, ...inner.path] })).join('\n  ');
  const forms = issue.errors.flatMap((branch) => (branch[0]?.code === 'invalid_type' ? [branch[0].expected] : []));
  return `${where}: must be ${[...new Set(forms)].join(' or ') || 'another value'}`;
}

/** Keys are echoed in messages: control characters in them are shown as escapes, not sent to the terminal. */
function printable(segment: PropertyKey): string {
  return String(segment).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function knownKeys(path: PropertyKey[]): string {
  const shape = objectShapeAt(crawlSpecSchema, path);
  return shape ? Object.keys(shape).join(', ') : '(none)';
}

/** The shape of the object schema found by following `path` through objects, arrays, records, unions and defaults. */
function objectShapeAt(schema: z.core.$ZodType, path: PropertyKey[]): Record<string, unknown> | null {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case 'object':
      if (path.length === 0) return def.shape as Record<string, unknown>;
      return (def.shape as Record<string, z.core.$ZodType>)[String(path[0])] ? objectShapeAt((def.shape as Record<string, z.core.$ZodType>)[String(path[0])], path.slice(1)) : null;
    case 'array':
      return objectShapeAt(def.element as z.core.$ZodType, path.slice(1));
    case 'record':
      return objectShapeAt(def.valueType as z.core.$ZodType, path.slice(1));
    case 'default':
    case 'optional':
    case 'nullable':
      return objectShapeAt(def.innerType as z.core.$ZodType, path);
    case 'pipe':
      return objectShapeAt(def.in as z.core.$ZodType, path);
    case 'union':
      for (const option of def.options as z.core.$ZodType[]) {
        const shape = objectShapeAt(option, path);
        if (shape) return shape;
      }
      return null;
    default:
      return null;
  }
}
