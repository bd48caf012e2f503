import { RandomizedExponentialBackoff } from '../../src/local/backoff.js';

describe('RandomizedExponentialBackoff', () => {
  it('starts at the minimum, roughly doubles, and stops at the maximum', () => {
    const backoff = new RandomizedExponentialBackoff(100, 5000, () => 0.5); // no jitter
    expect(Array.from({ length: 8 }, () => backoff.next())).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  });

  it('goes back to the minimum after a poll finds work', () => {
    const backoff = new RandomizedExponentialBackoff(100, 5000, () => 0.5);
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });

  it.each([
    [0, 0.8],
    [0.999, 1.2],
  ])('with random %f scales the growth by about %f', (random, factor) => {
    const backoff = new RandomizedExponentialBackoff(100, 60_000, () => random);
    backoff.next();
    backoff.next();
    // Third delay: minimum + minimum × (2² − 1) × jitter.
    expect(backoff.next()).toBeCloseTo(100 + 300 * factor, -1);
  });
});
