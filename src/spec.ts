import { z } from 'zod';
import { InvalidInputError } from './errors';
import { parseSeedUrl } from './url';
import { outputSpecKeys } from './output-spec';
import { itemsSchema, ruleSpecKeys } from './rules/schema';
import { egressPoolSchema } from './egress';
import { headerValue, regex, text } from './spec-values';

/**
 * The crawl spec: everything that describes one crawl. The CLI flags and the
 * `--spec` JSON file are two spellings of this one schema; the TypeScript type
 * is derived from it so the two cannot drift. Every check lives here, so a
 * script that builds a spec gets the same validation as the CLI.
 *
 * The schema is also the spec's documentation: the `crawl` command's flags
 * (src/spec-flags.ts, src/cli/crawl-options.ts), the published JSON Schema
 * (src/spec-json-schema.ts) and the README's tables of keys
 * (src/spec-tables.ts) are generated from it; `npm run schema` writes the
 * last two, and a unit test fails when they are stale.
 * Every key carries `.meta()`:
 * - `description` (required): what the key does, as help text and in the README;
 *   defaults come from `.default()`, never from the text.
 * - `flag` (optional): the flag's name when it is not the key's kebab-case
 *   (`maxCrawlDelaySecs` -> `max-crawl-delay`); a boolean that defaults to true
 *   is turned off by its flag, so its name starts with `no-`. Keys of nested
 *   objects get a flag only through this (`items.selector` -> `--item`).
 * - `cli` (optional): `false` for no flag; `'arguments'` for the key the
 *   command's positional arguments give (seeds). Objects, records and arrays of
 *   objects have no flag unless `flag` names one: they are spec-file only.
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
  name: text.min(1).meta({ description: 'Name used by `tcrawl set-rate --group` and in status.' }),
  hosts: z.array(text.min(1)).min(1).meta({ description: 'Hosts sharing the limit: exact `host[:port]`, or `*.example.com` for any subdomain.' }),
  rate: z.number().nonnegative().meta({ description: 'Request starts per second across all hosts of the group; 0 = no group limit.' }),
  proxies: egressPoolSchema.optional().meta({ description: "The group's hosts go out through these routes instead of the crawl's `proxies` (same forms); the group's rate is not multiplied by them." }),
});

export const crawlSpecSchema = z.strictObject({
  seeds: z
    .array(seedUrl, { error: (issue) => (issue.input === undefined ? noSeeds : undefined) })
    .min(1, noSeeds)
    .meta({ description: 'Absolute http(s) URLs the crawl starts from, without credentials; canonicalized (IDN hosts punycoded).', cli: 'arguments' }),
  maxPages: positiveInt.default(1000).meta({ description: 'Stop after this many URLs are finished (saved, failed or skipped); the rest stay queued.' }),
  maxDepth: z.number().int().nonnegative().default(5).meta({ description: 'Links further than this many hops from a seed are not followed.' }),
  scope: z.enum(['host', 'domain', 'any']).default('host').meta({
    description: "Which discovered links are in scope: the seeds' hosts, their registrable domains (public suffix list: `www.example.co.uk` and `shop.example.co.uk` share `example.co.uk`), or anything.",
  }),
  include: z.array(regex).default([]).meta({ description: 'Only URLs matching at least one of these regexes are followed (seeds always are).' }),
  exclude: z.array(regex).default([]).meta({ description: 'URLs matching any of these regexes are never followed.' }),
  rate: z.number().nonnegative().default(1).meta({ description: 'Request starts per second per host, across all workers; 0 = no limit.' }),
  concurrency: positiveInt.default(2).meta({ description: 'Requests in flight per host at once, across all workers.' }),
  totalRate: z.number().nonnegative().default(0).meta({ description: 'Request starts per second across all hosts of the crawl (an API quota); 0 = no limit.' }),
  rateGroups: z.array(rateGroupSchema).default([]).meta({ description: 'Hosts that share one limit, e.g. several API hostnames behind one quota.' }),
  proxies: egressPoolSchema.default([]).meta({
    description:
      'Egress routes requests take, one per request: HTTP or SOCKS5 proxies (`http://host:port`, `socks5://host:port`, credentials as `{ url, username, password: { env } }`) or local source addresses (`{ localAddress }`); empty = direct. A route that meets a ban or a connection failure rests; a host\'s rate is the same however many routes there are.',
    flag: 'proxy',
  }),
  proxyRestMs: positiveInt.default(30_000).meta({ description: 'First rest of a route that met a ban or failure, in milliseconds; doubles with each rest in a row (up to 30 minutes).' }),
  maxCrawlDelaySecs: z
    .number()
    .nonnegative()
    .default(60)
    .meta({ description: 'A robots.txt Crawl-delay above this many seconds skips the host (reason `crawl_delay_too_long`).', flag: 'max-crawl-delay' }),
  banStatuses: z
    .array(z.number().int().min(100).max(599))
    .default([403, 429])
    .meta({ description: 'Statuses that mean "slow down" (a ban): retried later, and the host\'s rate is halved.', flag: 'ban-status' }),
  banBodyMarkers: z.array(regex).default([]).meta({ description: 'Regexes that mark a 2xx body as a ban page (a soft block), treated like a ban status.', flag: 'ban-body-marker' }),
  throttle: z.enum(['fixed', 'adaptive']).default('fixed').meta({
    description: '`fixed`: the configured rates; `adaptive`: per-host delay ≈ response latency / targetConcurrency, never faster than the rates.',
  }),
  targetConcurrency: z.number().positive().default(1).meta({ description: 'Adaptive throttle: requests each host should be processing in parallel on average.' }),
  sitemaps: z.boolean().default(false).meta({
    description: "Also seed from the `Sitemap:` lines of each seed origin's robots.txt and its /sitemap.xml (indexes and `.xml.gz` followed).",
  }),
  obeyRobots: z.boolean().default(true).meta({ description: 'Obey robots.txt.', flag: 'no-robots' }),
  allowPrivate: z.boolean().default(false).meta({ description: 'Allow fetching loopback, private, link-local and unspecified addresses.' }),
  userAgent: headerValue
    .default('tcrawl/0.1 (+https://github.com/tcrawl/tcrawl)')
    .meta({ description: 'User-Agent header; its first product token is what robots.txt groups are matched against.' }),
  maxBodyBytes: positiveInt.default(10 * 1024 * 1024).meta({ description: 'A response body (decoded) larger than this is abandoned and the URL fails as `too_large`.' }),
  maxRedirects: z.number().int().nonnegative().default(5).meta({ description: 'Redirect hops followed from a URL; each target is queued as a URL of its own.' }),
  connectTimeoutMs: timeoutMs.default(10_000).meta({ description: 'Milliseconds to establish a connection.' }),
  headersTimeoutMs: timeoutMs.default(30_000).meta({ description: 'Milliseconds to wait for response headers.' }),
  bodyTimeoutMs: timeoutMs.default(30_000).meta({ description: 'Milliseconds the body may stay idle.' }),
  fetchTimeoutMs: timeoutMs.default(120_000).meta({
    description: 'Total milliseconds for one URL, not counting the wait for its rate limit: every redirect hop, headers and body (a body trickling in under bodyTimeoutMs still ends, as `timeout`).',
  }),
  maxRetries: z.number().int().nonnegative().default(3).meta({ description: 'Retries of a URL after a transient failure (5xx, 408, 429, timeouts, connection errors).' }),
  retryBaseMs: positiveInt.default(1000).meta({ description: 'First retry delay in milliseconds; doubles each retry (`retryBaseMs·2^n`).' }),
  retryMaxMs: positiveInt.default(300_000).meta({ description: 'Cap on one retry delay, and on a honoured Retry-After, in milliseconds.' }),
  batchSize: positiveInt.max(1000).default(100).meta({ description: 'URLs of one host leased and fetched per activity task, at most.' }),
  shards: positiveInt.max(64).default(1).meta({
    description:
      'Split the crawl by host over this many child workflows, each tracking and pacing its own hosts with its own history: for crawls over thousands of hosts at low per-host rates. 1 = one workflow. A crawl-wide or group rate is split evenly between shards.',
  }),
  items: itemsSchema.optional().meta({ description: 'Items extracted from responses no rule matches (each rule has its own `items`).' }),
  saveHtml: z.boolean().default(false).meta({ description: "Store each saved response's body (HTML, JSON, any text) in `pages.html`." }),
  ...ruleSpecKeys,
  ...outputSpecKeys,
});

/** The spec as written by a user: defaults may be omitted. */
export type CrawlSpecInput = z.input<typeof crawlSpecSchema>;
/** The spec after validation, every default filled in. */
export type CrawlSpec = z.output<typeof crawlSpecSchema>;
export type ItemsSpec = z.output<typeof itemsSchema>;
export type RateGroup = z.output<typeof rateGroupSchema>;

/**
 * Validates a spec at the edge; throws InvalidInputError naming every problem.
 * A top-level `$schema` (the JSON Schema an editor checks the file against,
 * see the README) is not a setting: it is dropped, not refused.
 */
export function parseCrawlSpec(input: unknown, source = 'crawl spec'): CrawlSpec {
  const result = crawlSpecSchema.safeParse(withoutSchemaReference(input));
  if (!result.success) {
    const problems = result.error.issues.map(describeIssue);
    throw new InvalidInputError(`Invalid ${source}:\n  ${problems.join('\n  ')}`, 'TCRAWL_INVALID_SPEC');
  }
  return result.data;
}

function withoutSchemaReference(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || !Object.hasOwn(input, '$schema')) return input;
  const { $schema: _reference, ...spec } = input as Record<string, unknown>;
  return spec;
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
