// BurstBatches: what one burst asks for is handed over once per key, in order; the next burst is a new batch.
import { describe, expect, it } from 'vitest';
import { BurstBatches } from '../../shared/batches.js';

describe('BurstBatches', () => {
  it('groups one burst by key, keeps the order within a key, and starts afresh after the burst', async () => {
    const flushed: [string, number[]][] = [];
    const b = new BurstBatches<string, number>((key, items) => flushed.push([key, items]));
    b.add('a', 1);
    b.add('b', 2);
    b.add('a', 3);
    b.add('b', 4);
    expect(flushed).toEqual([]);
    await Promise.resolve();
    expect(flushed).toEqual([
      ['a', [1, 3]],
      ['b', [2, 4]],
    ]);
    b.add('a', 5);
    await Promise.resolve();
    expect(flushed.at(-1)).toEqual(['a', [5]]);
    expect(flushed).toHaveLength(3);
  });
});
