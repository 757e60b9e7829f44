import { parseLeadingNumber } from '../leading-number';

/** The types a field can be coerced to (`json`: as it is). */
export type FieldType = 'string' | 'number' | 'integer' | 'boolean' | 'date' | 'json';

const trueWords = new Set(['true', 'yes', 'on', '1']);
const falseWords = new Set(['false', 'no', 'off', '0', '']);

/**
 * A field's value as its `type` asks; null when it does not coerce (a user
 * sees the gap in the data instead of a failed page). Numbers are read as
 * the report reads them: the number a text starts with (`1,234 members`).
 * Dates: ISO 8601 text out; epoch numbers in seconds below 1e11, else ms.
 */
export function coerceValue(value: unknown, type: FieldType | undefined): unknown {
  if (value === undefined) return null;
  switch (type) {
    case undefined:
    case 'json':
      return value;
    case 'string':
      return value === null ? null : typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
    case 'number':
      return toNumber(value);
    case 'integer': {
      const number = toNumber(value);
      return number === null ? null : Math.trunc(number);
    }
    case 'boolean':
      return toBoolean(value);
    case 'date':
      return toDate(value);
  }
}

function toNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string') return parseLeadingNumber(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  return null;
}

function toBoolean(value: unknown): boolean | null {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value !== 'string') return null;
  const word = value.trim().toLowerCase();
  if (trueWords.has(word)) return true;
  if (falseWords.has(word)) return false;
  return null;
}

function toDate(value: unknown): string | null {
  let ms: number;
  if (typeof value === 'number') ms = Math.abs(value) < 1e11 ? value * 1000 : value;
  else if (typeof value === 'string' && value.trim() !== '') ms = Date.parse(value.trim());
  else return null;
  if (!Number.isFinite(ms)) return null;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
