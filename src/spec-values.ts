import { z } from 'zod';

/** Value types shared by the spec's schemas (src/spec.ts, src/rules/schema.ts). */

/**
 * A string of the spec. The spec is stored as jsonb with the crawl, and jsonb
 * cannot hold U+0000: one in a regex or selector would fail the crawl's first
 * activity, so it is refused here. (Seeds are safe: canonical URLs escape it.)
 */
export const text = z.string().refine((value) => !value.includes('\u0000'), 'must not contain U+0000 (NUL), which Postgres cannot store');

export const regex = text.superRefine((source, ctx) => {
  try {
    new RegExp(source);
  } catch (error) {
    const reason = (error as Error).message.replace(/^Invalid regular expression: /, '');
    ctx.addIssue({ code: 'custom', message: `is not a valid regular expression (${reason})` });
  }
});

/**
 * An HTTP header value: RFC 9110 §5.5 allows visible characters, spaces, tabs
 * and obs-text (bytes 0x80–0xFF, which undici sends as Latin-1). undici throws
 * on anything else on every request, which would wedge a crawl, so it fails
 * here instead. C1 controls (U+0080–U+009F) are refused too: obs-text, but
 * invisible, and no header tcrawl sends has a use for them. Surrounding
 * whitespace is not part of a field value, so it is trimmed.
 */
export const headerValue = z
  .string()
  .superRefine((value, ctx) => {
    const problem = headerValueProblem(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  })
  .trim()
  .min(1, 'must not be blank');

function headerValueProblem(value: string): string | null {
  let position = 0;
  for (const char of value) {
    const code = char.codePointAt(0) as number;
    const allowed = code === 0x09 || (code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff);
    if (!allowed) {
      const unicode = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
      const what = code < 0x20 || (code >= 0x7f && code <= 0x9f) ? `a control character (${unicode})` : `"${char}" (${unicode})`;
      return `${what} at position ${position} is not allowed in an HTTP header value (RFC 9110 §5.5: printable Latin-1 characters, spaces and tabs only)`;
    }
    position++;
  }
  return null;
}
