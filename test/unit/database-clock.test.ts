import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { DatabaseClock } from '../../activities/database-clock';

// The database's clock runs 5,000 ms ahead of this process's in every case below.
const ahead = 5_000;

describe('DatabaseClock', () => {
  it('places a database instant by the shortest round trip seen, never earlier than it can be', () => {
    const clock = new DatabaseClock();
    clock.observe(0, 40, 30 + ahead); // read late in a long round trip: offset 5,010 ± 20
    clock.observe(100, 102, 101 + ahead); // offset 5,000 ± 1
    clock.observe(200, 230, 201 + ahead); // longer again: not taken
    assert.equal(clock.toLocalMs(1_000 + ahead), 1_001);
  });

  it('is infinitely late before it has seen a query', () => {
    assert.equal(new DatabaseClock().toLocalMs(ahead), Infinity);
  });

  it('takes a sample that contradicts the best one: a clock stepped', () => {
    const clock = new DatabaseClock();
    clock.observe(100, 102, 101 + ahead);
    clock.observe(200, 210, 205 + ahead - 100); // the database's clock stepped back 100 ms
    assert.equal(clock.toLocalMs(1_000 + ahead - 100), 1_005);
  });

  it('renews its best sample once it is old, so drift cannot build up', () => {
    const clock = new DatabaseClock(1_000);
    clock.observe(100, 102, 101 + ahead);
    clock.observe(1_200, 1_210, 1_205 + ahead + 3); // drifted 3 ms, within both samples' error
    assert.equal(clock.toLocalMs(2_000 + ahead), 2_000 - 3 + 5);
  });
});
