import { z } from 'zod';
import { headerValue, regex, text } from '../spec-values';
import { sourceProblems } from './source';

/**
 * The spec's rules: how a response is parsed, what it yields (items, new
 * requests, its next page) and how requests are made. Validated here, once;
 * stored as written (the worker compiles them, see compile.ts), so a spec
 * that uses none of this stays readable by the release before it.
 */

const positiveInt = z.number().int().positive();

/** An environment variable's name, as POSIX shells allow it. */
const envName = text.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name (letters, digits and _, not starting with a digit)');

/**
 * A secret: named here, read from the worker's environment when a request is
 * made, so its value is never in a spec, a workflow input, a history or a table.
 */
export const secretSchema = z
  .strictObject({
    env: envName.meta({ description: "Environment variable holding the value, read by the worker at request time (e.g. `CLAN_API_KEY`)." }),
    prefix: z.string().optional().meta({ description: 'Text put before the value, e.g. `Bearer `.' }),
  })
  .meta({ description: 'A secret read from the worker\'s environment: never stored, never in a history.' });

// undici refuses these on every request (it manages them itself): a crawl that set one would fail every URL.
const forbiddenHeaders = new Set(['connection', 'content-length', 'expect', 'keep-alive', 'transfer-encoding', 'upgrade']);

/** RFC 9110 §5.1: a field name is a token. */
const headerName = text.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name (RFC 9110 token characters)').superRefine((name, ctx) => {
  if (forbiddenHeaders.has(name.toLowerCase())) ctx.addIssue({ code: 'custom', message: `"${name}" is set by the HTTP client itself and cannot be given` });
});

const headersSchema = z.record(headerName, z.union([headerValue, secretSchema]));
const secretQuerySchema = z.record(text.min(1), z.union([text, secretSchema]));

const cssFields = {
  css: text.min(1).optional().meta({ description: 'CSS selector (HTML and XML responses).' }),
  attr: text.min(1).optional().meta({ description: 'With `css`: take this attribute instead of the text.' }),
};
const sourceFields = {
  ...cssFields,
  jsonPath: text.min(1).optional().meta({ description: 'JSONPath (RFC 9535) over a JSON response, e.g. `$.clans[*].id`.' }),
  regex: regex.min(1).optional().meta({ description: 'Regex over the body, or over each value `css`/`jsonPath` yields: capture group 1, the named group `value`, or the whole match.' }),
};

/** A source given as one string: `$…` is a JSONPath, anything else a CSS selector with an optional `@attr`; checked like the object form. */
const shorthand = text
  .min(1)
  .meta({ description: '`$…`: a JSONPath; otherwise a CSS selector, `sel@attr` for an attribute.' })
  .superRefine((value, ctx) => checkSource(value, ctx, { needsOne: true }));

function checkSource(value: unknown, ctx: z.RefinementCtx, options: { needsOne: boolean }): void {
  for (const message of sourceProblems(value as Record<string, unknown>, options)) ctx.addIssue({ code: 'custom', message });
}

const sourceObject = z.strictObject(sourceFields).superRefine((value, ctx) => checkSource(value, ctx, { needsOne: true }));

/** Where values come from: a CSS selector, a JSONPath, a regex, or a regex over what a CSS selector or JSONPath yields. */
export const sourceSchema = z.union([shorthand, sourceObject]);

const fieldObject = z
  .strictObject({
    ...sourceFields,
    html: z.boolean().optional().meta({ description: 'With `css`: the inner HTML instead of the text.' }),
    from: z.enum(['body', 'url', 'finalUrl', 'label']).optional().meta({ description: "What the field reads: the item (`body`, default), or the request's `url`, `finalUrl` or `label` (with an optional `regex`)." }),
    type: z.enum(['string', 'number', 'integer', 'boolean', 'date', 'json']).optional().meta({
      description: 'Coerce the value: `number`/`integer` (the number it starts with), `boolean`, `date` (ISO 8601), `json` (as is). Unset: JSON values keep their type, HTML text stays text. A value that does not coerce is null.',
    }),
    all: z.boolean().optional().meta({ description: 'Every value as a list, instead of the first.' }),
  })
  .superRefine((value, ctx) => checkSource(value, ctx, { needsOne: false }));

export const fieldSchema = z.union([shorthand, fieldObject]);

export const itemsSchema = z
  .strictObject({
    selector: sourceSchema.optional().meta({ description: 'One item per element or JSON value this yields (CSS or JSONPath); absent: the whole response is one item.', flag: 'item' }),
    fields: z.record(text.min(1), fieldSchema).optional().meta({
      description:
        "Named fields, each relative to the item: a CSS selector (`sel` its text, `sel@attr` an attribute, `href`/`src` made absolute, `@attr` the item element's own), a JSONPath `$.x`, or an object. Absent: a JSON item is saved as it is.",
      flag: 'field',
    }),
  })
  .meta({ description: 'What items a response yields.' });

/** How a new request is made: method, body and query parameters, each of which may use `{id}`. */
const requestFields = {
  template: text.min(1).optional().meta({ description: 'Each value is an id put into this URL template at `{id}` (URL-encoded); relative templates resolve against the response URL. Absent: each value is a URL.' }),
  label: text.min(1).optional().meta({ description: "Label carried by the new requests (rules can match it)." }),
  maxDepth: z.number().int().nonnegative().optional().meta({ description: 'Requests this entry finds are followed only up to this depth (default: the spec\'s maxDepth).' }),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).optional().meta({ description: 'HTTP method (unset: GET).' }),
  body: z.union([z.string(), z.record(z.string(), z.json()), z.array(z.json())]).optional().meta({
    description: 'Request body: a string is sent as it is; an object or array as JSON. `{id}` in strings is replaced; a string that is exactly `{id}` takes the value with its JSON type.',
  }),
  form: z.record(text.min(1), z.string()).optional().meta({ description: 'Request body as `application/x-www-form-urlencoded` fields (`{id}` replaced).' }),
  query: z.record(text.min(1), z.string()).optional().meta({ description: 'Query parameters added to the URL (`{id}` replaced); part of the request key.' }),
};

const followObject = z.strictObject({ ...sourceFields, ...requestFields }).superRefine((value, ctx) => {
  checkSource(value, ctx, { needsOne: true });
  if (value.body !== undefined && value.form !== undefined) ctx.addIssue({ code: 'custom', message: 'give `body` or `form`, not both' });
  if ((value.body !== undefined || value.form !== undefined) && (value.method ?? 'GET') === 'GET') {
    ctx.addIssue({ code: 'custom', message: 'a request with a body needs a `method` other than GET' });
  }
});

export const followSchema = z.union([shorthand, followObject]);

export const paginateSchema = z
  .strictObject({
    param: text.min(1).optional().meta({ description: "Query parameter of this request's URL that selects the page." }),
    type: z.enum(['page', 'offset', 'cursor']).default('page').meta({ description: 'What `param` holds: a page number, an item offset, or a cursor from the response.' }),
    start: z.number().int().optional().meta({ description: 'Value assumed when the URL lacks `param` (unset: 1 for page numbers, 0 for offsets).' }),
    step: positiveInt.optional().meta({ description: 'Increment per page: 1 for page numbers; the page size for offsets (required there).' }),
    perPage: positiveInt.optional().meta({ description: 'Items per page, for `total` with page numbers.' }),
    stopWhenEmpty: sourceSchema.optional().meta({ description: 'Stop when this yields nothing on a page (e.g. `$.clans[*]`).' }),
    total: sourceSchema.optional().meta({ description: 'The total number of items: stop when the next page would start past it.' }),
    cursor: sourceSchema.optional().meta({ description: 'For `type: cursor`: the next cursor; missing, null or empty stops.' }),
    next: sourceSchema.optional().meta({ description: 'Instead of `param`: the next page\'s link (CSS `a.next`, JSONPath `$.links.next`).' }),
    maxPages: positiveInt.optional().meta({ description: 'Pages followed at most from the first.' }),
  })
  .superRefine((value, ctx) => {
    const issue = (message: string) => ctx.addIssue({ code: 'custom', message });
    if ((value.param === undefined) === (value.next === undefined)) return issue('give `param` (a page parameter) or `next` (a next-page link), one of them');
    if (value.next !== undefined) return;
    if (value.type === 'cursor') {
      if (value.cursor === undefined) issue('`type: cursor` needs `cursor`: where the response gives the next cursor');
      return;
    }
    if (value.type === 'offset' && value.step === undefined) issue('`type: offset` needs `step`: the page size');
    if (value.stopWhenEmpty === undefined && value.total === undefined && value.maxPages === undefined) {
      issue('needs a way to stop: `stopWhenEmpty`, `total` or `maxPages`');
    }
    if (value.total !== undefined && value.type === 'page' && value.perPage === undefined) issue('`total` with page numbers needs `perPage`');
  })
  .meta({ description: 'How this response leads to its next page (same label, depth and method).' });

const handlerPath = text.min(1).superRefine((path, ctx) => {
  if (/\.[mc]?ts$/i.test(path)) {
    ctx.addIssue({ code: 'custom', message: `"${path}" is TypeScript: workers load JavaScript only (no TypeScript loader in production); compile it and name the .js/.mjs file` });
  } else if (!/\.[mc]?js$/i.test(path)) {
    ctx.addIssue({ code: 'custom', message: `"${path}" must be a JavaScript module (.js, .mjs or .cjs)` });
  }
});

export const ruleSchema = z
  .strictObject({
    name: text.min(1).optional().meta({ description: 'Shown in errors and status (unset: `rules[i]`).' }),
    url: regex.min(1).optional().meta({ description: 'Matches requests whose URL matches this regex.' }),
    glob: text.min(1).optional().meta({ description: 'Matches requests whose URL matches this glob: `*` any characters but `/`, `**` anything; `?` is literal.' }),
    label: text.min(1).optional().meta({ description: 'Matches requests carrying this label. A rule with no `url`, `glob` or `label` matches every request.' }),
    parse: z.enum(['auto', 'html', 'json', 'xml', 'text', 'binary']).default('auto').meta({
      description: 'How the body is parsed; `auto` goes by Content-Type; `binary` keeps any body as received, unparsed (downloads for `outputs`: no follow, items, paginate or handler).',
    }),
    headers: headersSchema.optional().meta({ description: 'Headers for the requests this rule matches (values may be secrets: `{ env: NAME }`).' }),
    query: secretQuerySchema.optional().meta({ description: 'Query parameters added when a matched request is sent, not part of its key nor stored (for API keys: `{ env: NAME }`).' }),
    follow: z.array(followSchema).default([]).meta({ description: 'What to follow: CSS selectors, regexes, JSONPaths; with a `template` each value is an id.' }),
    paginate: paginateSchema.optional(),
    items: itemsSchema.optional(),
    handler: handlerPath.optional().meta({
      description: 'A JavaScript module exporting `handle(response, context)` → `{ items, requests }`, resolved against the worker\'s TCRAWL_HANDLERS_DIR (default: its working directory).',
    }),
    save: z.boolean().default(true).meta({ description: 'Save the response as a row of `pages`.' }),
  })
  .superRefine((rule, ctx) => {
    if (rule.parse !== 'binary') return;
    for (const key of ['paginate', 'items', 'handler'] as const) {
      if (rule[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `a rule with parse: "binary" reads nothing from its responses: drop "${key}" or parse them` });
    }
    if (rule.follow.length > 0) ctx.addIssue({ code: 'custom', path: ['follow'], message: 'a rule with parse: "binary" reads nothing from its responses: drop "follow" or parse them' });
  })
  .meta({ description: 'One rule: which requests it matches and what their responses yield.' });

/** Keys added to the crawl spec by the rules (spread into crawlSpecSchema). */
export const ruleSpecKeys = {
  headers: headersSchema.default({}).meta({ description: 'Headers sent with every request; a value may be a secret `{ env: NAME }`. Not part of the request key.' }),
  links: z.enum(['discovery', 'all']).default('discovery').meta({
    description: '`discovery`: `export --what links` gives the link each URL was first found by; `all`: every followed link is recorded (table `links`), a graph.',
  }),
  rules: z.array(ruleSchema).default([]).meta({ description: 'Rules, tried in order by request URL and label; a response none matches has its HTML links followed and top-level `items` extracted.' }),
};

export type Source = z.output<typeof sourceSchema>;
export type Field = z.output<typeof fieldSchema>;
export type ItemsRule = z.output<typeof itemsSchema>;
export type Follow = z.output<typeof followSchema>;
export type Paginate = z.output<typeof paginateSchema>;
export type Rule = z.output<typeof ruleSchema>;
export type Secret = z.output<typeof secretSchema>;
export type HeaderValues = z.output<typeof headersSchema>;
export type SecretQuery = z.output<typeof secretQuerySchema>;

/** A request a handler returns: a URL, or an object made like a follow entry's request. */
const handlerRequestSchema = z.union([
  z.string(),
  z.strictObject({
    url: z.string(),
    label: requestFields.label,
    method: requestFields.method,
    body: requestFields.body,
    form: requestFields.form,
    query: requestFields.query,
  }),
]);

/** What a rule's handler returns (`handle(response, context)`), checked before anything of it is used. */
export const handlerResultSchema = z.strictObject({
  items: z.array(z.record(z.string(), z.json())).default([]),
  requests: z.array(handlerRequestSchema).default([]),
});

export type HandlerResult = z.output<typeof handlerResultSchema>;
export type HandlerRequest = z.output<typeof handlerRequestSchema>;
