import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { WeightedRotation } from '../../../../engine/balance/weighted-rotation';

test('shares follow the weights exactly over a full cycle', () => {
  const r = new WeightedRotation(['a', 'b', 'c'], [5, 1, 1]);
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  for (let i = 0; i < 700; i++) counts[r.pick()!]++;
  assert.deepEqual(counts, { a: 500, b: 100, c: 100 });
});

test('picks are interleaved, never a long run of the heavy item', () => {
  const r = new WeightedRotation(['a', 'b'], [90, 10]);
  let run = 0;
  let longest = 0;
  for (let i = 0; i < 1000; i++) {
    run = r.pick() === 'a' ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  assert.ok(longest <= 9, `longest run ${longest}`);
});

test('fractional weights work', () => {
  const r = new WeightedRotation(['x', 'y'], [0.3, 0.7]);
  let y = 0;
  for (let i = 0; i < 1000; i++) if (r.pick() === 'y') y++;
  assert.equal(y, 700);
});

test('equal weights rotate; one item always; none gives undefined', () => {
  const r = new WeightedRotation([1, 2, 3], [1, 1, 1]);
  assert.deepEqual([r.pick(), r.pick(), r.pick(), r.pick()], [1, 2, 3, 1]);
  assert.equal(new WeightedRotation(['only'], [3]).pick(), 'only');
  assert.equal(new WeightedRotation([], []).pick(), undefined);
});
