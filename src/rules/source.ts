import { load } from 'cheerio';
import { jsonpath, type JSONPathQuery } from 'json-p3';

/**
 * A source in the one form the extractor works with: what a rule's string
 * shorthand or object says, with its CSS selector checked and its JSONPath
 * compiled. Checked once at the edge (sourceProblems) and compiled again by
 * the worker, which receives the spec as the user wrote it.
 */
export interface CompiledSource {
  css?: string;
  /** With `css`: the attribute to read (null: the text). */
  attr?: string | null;
  jsonPath?: JSONPathQuery;
  /** Global: every match is a value. */
  regex?: RegExp;
}

interface SourceObject {
  css?: string;
  attr?: string;
  jsonPath?: string;
  regex?: string;
}

/**
 * `$…` is a JSONPath; anything else is a CSS selector, `sel@attr` taking an
 * attribute. The attribute must be a plain name at the very end, so an `@`
 * inside the CSS (`a[href*="@"]`) stays part of the selector; `@attr` alone
 * reads the item element's own attribute.
 */
export function parseShorthand(raw: string): SourceObject {
  const trimmed = raw.trim();
  if (trimmed.startsWith('$')) return { jsonPath: trimmed };
  const match = /^(.*)@([A-Za-z_:][\w:.-]*)$/s.exec(trimmed);
  if (match === null) return { css: trimmed };
  return { css: (match[1] ?? '').trim(), attr: match[2] };
}

function asObject(value: string | SourceObject): SourceObject {
  return typeof value === 'string' ? parseShorthand(value) : value;
}

const emptyDocument = load('');

/** What is wrong with a source, as messages for the spec's error list; none if it compiles. */
export function sourceProblems(value: string | SourceObject, { needsOne }: { needsOne: boolean }): string[] {
  const source = asObject(value);
  const problems: string[] = [];
  if (source.css !== undefined && source.jsonPath !== undefined) problems.push('give `css` or `jsonPath`, not both');
  if (source.attr !== undefined && source.css === undefined) problems.push('`attr` needs `css`');
  if (needsOne && source.css === undefined && source.jsonPath === undefined && source.regex === undefined) problems.push('needs `css`, `jsonPath` or `regex`');
  if (source.css !== undefined && source.css !== '') {
    try {
      emptyDocument.root().find(source.css);
    } catch (error) {
      problems.push(`invalid CSS selector "${source.css}": ${(error as Error).message}`);
    }
  }
  if (source.jsonPath !== undefined) {
    try {
      jsonpath.compile(source.jsonPath);
    } catch (error) {
      problems.push(`invalid JSONPath "${source.jsonPath}": ${(error as Error).message}`);
    }
  }
  return problems;
}

/** Compiles a source the spec validated; `css: ''` (from `@attr`) means the element itself. */
export function compileSource(value: string | SourceObject): CompiledSource {
  const source = asObject(value);
  const compiled: CompiledSource = {};
  if (source.css !== undefined) {
    compiled.css = source.css;
    compiled.attr = source.attr ?? null;
  }
  if (source.jsonPath !== undefined) compiled.jsonPath = jsonpath.compile(source.jsonPath);
  if (source.regex !== undefined) compiled.regex = new RegExp(source.regex, 'g');
  return compiled;
}
