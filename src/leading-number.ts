/**
 * How a report reads a number out of an item value. Item values are text
 * taken from HTML ("1,234 members", "$10.00", "12%"), so a value counts as
 * numeric when it *starts* with a number:
 *
 * - leading ASCII whitespace is ignored, then one optional currency sign
 *   (`$ € £ ¥`, optionally followed by a space), then an optional `+`/`-`;
 * - the number: digits, or digits grouped by commas in threes (`1,234,567`),
 *   with an optional decimal part after a `.`; commas are dropped;
 * - it must not run on into more of a number: the next character may not be
 *   a digit, nor one of `. , : / -` followed by a digit. So dates
 *   (`2024-01-05`), times (`12:30`), fractions (`1/2`), versions (`1.2.3`)
 *   and decimal commas (`1,5`, `1.234,56`) are not numbers, whereas
 *   `12 members`, `12.`, `12%`, `12px` and `5, 6 and 7` are (12, 12, 12, 12, 5);
 * - at most 15 digits on each side of the point (doubles hold them exactly
 *   enough); anything longer is not a number;
 * - no exponents, no Unicode minus or digits, no words ("twelve").
 *
 * The rule is one regular expression, written so that JavaScript and
 * Postgres (whose ARE syntax it also is) read it alike: the SQL that bins
 * values applies the very same pattern, and at most one match is possible
 * (every shorter candidate runs on into a digit), so the engines cannot
 * pick different ones.
 */
export const LEADING_NUMBER_PATTERN =
  '^[ \\t\\n\\r\\f]*(?:[$€£¥] ?)?([+-]?(?:[0-9]{1,3}(?:,[0-9]{3}){1,4}|[0-9]{1,15})(?:\\.[0-9]{1,15})?)(?![0-9]|[.,:/-][0-9])';

const leadingNumber = new RegExp(LEADING_NUMBER_PATTERN);

/** The number a value starts with, by the rule of {@link LEADING_NUMBER_PATTERN}; null when it does not start with one. */
export function parseLeadingNumber(value: string): number | null {
  const match = leadingNumber.exec(value);
  return match === null ? null : Number(match[1]!.replaceAll(',', ''));
}

/** What a report knows about one item field's values: counted in SQL over every item of the crawl. */
export interface ItemFieldStats {
  field: string;
  /** Items where the field has a value (not null). */
  values: number;
  /** Of those, values that start with a number. */
  numeric: number;
  /** Smallest and largest number read; null when none is numeric. */
  min: number | null;
  max: number | null;
  /** Every number read is a whole number. */
  integral: boolean;
}

/**
 * The field a report charts when none is named: among fields where more than
 * half the values are numeric, the one with the largest numeric share (ties
 * go to the name first in alphabetical order). Undefined when no field is
 * mostly numeric. (Not "the first field of the spec": the spec is stored as
 * jsonb, which does not keep the order its keys were written in.)
 */
export function chooseNumericField(stats: readonly ItemFieldStats[]): ItemFieldStats | undefined {
  const share = (s: ItemFieldStats) => s.numeric / s.values;
  return stats
    .filter((s) => s.values > 0 && s.numeric * 2 > s.values)
    .sort((a, b) => share(b) - share(a) || (a.field < b.field ? -1 : a.field > b.field ? 1 : 0))[0];
}
