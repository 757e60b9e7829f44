import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseNumericField, parseLeadingNumber, type ItemFieldStats } from '../../src/leading-number';

describe('report: the number an item value starts with', () => {
  const cases: Array<[string, number | null]> = [
    ['1,234 members', 1234],
    ['1 member', 1],
    ['1,234,567', 1234567],
    ['$10.00', 10],
    ['€ 3.5', 3.5],
    ['12%', 12],
    ['12px', 12],
    ['  42', 42],
    ['-7 pts', -7],
    ['+3', 3],
    ['12.', 12],
    ['5, 6 and 7', 5],
    ['9.4. String Functions', 9.4],
    ['0.5', 0.5],
    ['123456789012345', 123456789012345],
    ['12\u00a0members', 12],
  ];
  const notNumbers = ['2024-01-05', '12:30', '1/2', '1.2.3', '1,5', '1.234,56', '1,23', '1234,567', '.5', 'twelve', 'recruiting', 'n/a', '', '-', '$', '#C001', '1234567890123456', '\u00a012', '−5'];

  for (const [value, expected] of cases) it(`${JSON.stringify(value)} → ${expected}`, () => assert.equal(parseLeadingNumber(value), expected));
  it(`not numbers: ${notNumbers.map((v) => JSON.stringify(v)).join(', ')}`, () => {
    for (const value of notNumbers) assert.equal(parseLeadingNumber(value), null, JSON.stringify(value));
  });
});

describe('report: which item field to chart', () => {
  const stats = (field: string, values: number, numeric: number): ItemFieldStats => ({ field, values, numeric, min: numeric > 0 ? 0 : null, max: numeric > 0 ? 1 : null, integral: true });

  it('the field with the largest numeric share, if more than half its values are numeric', () => {
    assert.equal(chooseNumericField([stats('name', 20, 0), stats('members', 20, 18), stats('level', 20, 15)])?.field, 'members');
  });

  it('ties go to the name first in alphabetical order', () => {
    assert.equal(chooseNumericField([stats('b', 10, 10), stats('a', 4, 4)])?.field, 'a');
  });

  it('none when no field is mostly numeric (half is not most)', () => {
    assert.equal(chooseNumericField([stats('half', 10, 5), stats('empty', 0, 0)]), undefined);
    assert.equal(chooseNumericField([]), undefined);
  });
});
