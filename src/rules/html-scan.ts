import { Parser } from 'htmlparser2';
import { collapseWhitespace } from './document';

/**
 * The default rule's reading of an HTML page — its `<title>`, first
 * `<base href>` and every `<a href>` / `<area href>` in document order — from
 * htmlparser2's tokens, without building a DOM: several times faster than
 * cheerio's parse5 tree, which a crawl that asks for nothing but links and
 * titles does not need.
 *
 * Tokens and the HTML tree agree on which start tags are elements, in which
 * order, except where the tree builder reinterprets markup (the HTML
 * standard's insertion modes and tokenizer states htmlparser2 does not model).
 * A page with any such construct gets `null`, and the caller parses it fully:
 * the fast path gives the same rows or none.
 */
export interface ScannedPage {
  title: string | null;
  /** The first `<base href>`'s raw value, if any (resolving it is the caller's). */
  baseHref: string | undefined;
  /** Raw `href` values of `<a>` and `<area>`, in document order, duplicates kept. */
  hrefs: string[];
}

/**
 * Constructs the tree builder treats differently from a tokenizer: inert
 * `<template>` contents; foreign content (`<svg>`, `<math>`: its own `<title>`,
 * CDATA); text-only elements htmlparser2 tokenizes as markup (`<noscript>`
 * with scripting on, as cheerio parses, `<iframe>`, `<noembed>`, `<noframes>`,
 * `<plaintext>`); `<select>` and `<frameset>`, which drop the start tags they
 * hold; CDATA and the short or `--!>`-closed comments parse5 ends early; NUL,
 * which parse5 replaces.
 */
const TREE_ONLY = /<(?:template|svg|math|noscript|iframe|noembed|noframes|plaintext|select|frameset)[\s/>]|<!\[CDATA\[|<!--->|<!-->|--!>|\0/i;

/** Inside a script, `<!--` starts parse5's escaped states, where `</script>` may not end it. */
const SCRIPT_ESCAPE = '<!--';

export function scanHtml(html: string): ScannedPage | null {
  if (TREE_ONLY.test(html)) return null;
  const hrefs: string[] = [];
  let baseHref: string | undefined;
  let title: string | null | undefined;
  let titleText: string[] | null = null;
  let inScript = false;
  let unsure = false;
  const parser = new Parser(
    {
      onopentag(name, attributes) {
        if ((name === 'a' || name === 'area') && attributes.href !== undefined) hrefs.push(attributes.href);
        else if (name === 'base' && baseHref === undefined && attributes.href !== undefined) baseHref = attributes.href;
        else if (name === 'title' && title === undefined) titleText = [];
        else if (name === 'script') inScript = true;
      },
      ontext(text) {
        if (titleText !== null) titleText.push(text);
        else if (inScript && text.includes(SCRIPT_ESCAPE)) unsure = true;
      },
      onclosetag(name, isImplied) {
        if (name === 'script') inScript = false;
        else if (name === 'title' && titleText !== null) {
          // A title the end of input closed: parse5 and htmlparser2 disagree on what it holds.
          if (isImplied) unsure = true;
          title = collapseWhitespace(titleText.join('')) || null;
          titleText = null;
        }
      },
    },
    { decodeEntities: true },
  );
  parser.end(html);
  if (unsure) return null;
  return { title: title ?? null, baseHref, hrefs };
}
