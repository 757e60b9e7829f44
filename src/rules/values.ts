import type { Cheerio } from 'cheerio';
import type { AnyNode } from 'domhandler';
import { collapseWhitespace, ParseError, type ParsedDocument } from './document';
import type { CompiledSource } from './source';

/**
 * Reading values out of a parsed document: what a source selects, from the
 * document or from one item within it. Pure; every rule's follow entries,
 * pagination and item fields go through here.
 */

/** A place in a document a source is evaluated from: the document itself, or one item of it. */
export type DocumentNode = { dom: Cheerio<AnyNode> } | { json: unknown } | { text: string };

export function rootOf(document: ParsedDocument): DocumentNode {
  if (document.$) return { dom: document.$.root() };
  if (document.kind === 'json') return { json: document.json };
  return { text: document.text };
}

/** How a selected element becomes a value. */
export interface ElementReading {
  /** Attribute to read; null: the text (whitespace collapsed). */
  attr: string | null;
  /** The inner HTML instead of the text. */
  html?: boolean;
}

/** The nodes a source selects under `node`: elements, JSON values, or the text of regex matches. */
export function selectNodes(source: CompiledSource, node: DocumentNode, document: ParsedDocument): DocumentNode[] {
  if (source.regex) return sourceValues(source, node, document, { attr: null }).map((value) => ({ text: String(value) }));
  if (source.css !== undefined) return elements(source.css, node, document).map((el) => ({ dom: el }));
  if (source.jsonPath) return jsonValues(source, node, document).map((json) => ({ json }));
  return [node];
}

/** The values a source yields under `node`, in document order. */
export function sourceValues(source: CompiledSource, node: DocumentNode, document: ParsedDocument, reading: ElementReading): unknown[] {
  let values: unknown[];
  if (source.css !== undefined) {
    const attr = source.attr ?? reading.attr;
    values = elements(source.css, node, document).flatMap((el) => {
      const value = elementValue(el, { attr, html: reading.html });
      return value === undefined ? [] : [value];
    });
  } else if (source.jsonPath) {
    values = jsonValues(source, node, document);
  } else {
    values = [rawText(node, document)];
  }
  if (!source.regex) return values;
  const pattern = source.regex;
  return values.flatMap((value) => (value === null || value === undefined ? [] : matches(pattern, textOf(value))));
}

/** A node's own value: an element's text (or attribute), a JSON value, a text. */
export function nodeValue(node: DocumentNode, reading: ElementReading): unknown {
  if ('dom' in node) return elementValue(node.dom, reading) ?? null;
  if ('json' in node) return node.json;
  return node.text;
}

function elements(css: string, node: DocumentNode, document: ParsedDocument): Array<Cheerio<AnyNode>> {
  if (!('dom' in node)) throw mismatch('a CSS selector', document);
  // `@attr` alone (css '') reads the item element itself; root().find: `$(selector)` would build elements from a selector that looks like HTML.
  const found = css === '' ? node.dom : node.dom.find(css);
  return found.toArray().map((el) => document.$!(el));
}

function jsonValues(source: CompiledSource, node: DocumentNode, document: ParsedDocument): unknown[] {
  if (!('json' in node)) throw mismatch('a JSONPath', document);
  return source.jsonPath!.query(node.json as never).values();
}

function elementValue(el: Cheerio<AnyNode>, { attr, html }: ElementReading): unknown {
  if (attr !== null) return el.attr(attr);
  if (html) return el.html();
  return collapseWhitespace(el.text());
}

/** What a regex alone reads: the whole body at the top, an item's markup or JSON text within. */
function rawText(node: DocumentNode, document: ParsedDocument): string {
  if ('text' in node) return node.text;
  if ('json' in node) return node.json === document.json ? document.text : textOf(node.json);
  return node.dom.is(document.$!.root()) ? document.text : (document.$!.html(node.dom) ?? '');
}

/** A value as text: a string as it is, anything else as its JSON. */
export function textOf(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Every match: the named group `value`, else group 1, else the whole match. */
function matches(pattern: RegExp, input: string): string[] {
  const found: string[] = [];
  for (const match of input.matchAll(pattern)) {
    const value = match.groups?.value ?? (match.length > 1 ? match[1] : match[0]);
    if (value) found.push(value);
  }
  return found;
}

function mismatch(what: string, document: ParsedDocument): ParseError {
  return new ParseError(`The rule reads ${what}, but the response was parsed as ${document.kind}`);
}
