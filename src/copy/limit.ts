/** Runs `task` over `items` with at most `concurrency` in flight, in input order, keeping results in order. */
export function mapLimit<T, R>(items: readonly T[], concurrency: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  return mapLargestFirst(items, () => 0, { concurrency, smallConcurrency: 0, smallMaxSize: 0 }, task);
}

/** How {@link mapLargestFirst} shares its workers out. */
export interface LargestFirstLimits<T> {
  /**
   * Workers that take the largest item first; while small workers exist, small items only once
   * no large one is left to come.
   */
  concurrency: number;
  /** Extra workers that take only items of at most `smallMaxSize`, smallest first. */
  smallConcurrency: number;
  smallMaxSize: number;
  /**
   * Settles once an item may start (either way: its task meets a failure itself); by default
   * every item may start at once. Workers take the largest item that may start, so one waiting
   * for its turn holds no worker.
   */
  ready?: (item: T) => Promise<unknown>;
}

/**
 * Runs `task` over `items` (results in input order), largest `sizeOf` first on `concurrency`
 * workers, while `smallConcurrency` more workers take the small items from the other end.
 *
 * Large items are bound by bandwidth: starting them first lets the longest transfers overlap
 * instead of finishing one after another behind small ones. Small items are bound by round trips
 * and cost little memory, so on a distant registry running many together is what keeps the link
 * busy. A failure stops both ends from starting anything new; the promise settles only once
 * every started task has.
 */
export async function mapLargestFirst<T, R>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  limits: LargestFirstLimits<T>,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  // Indexes that may start, largest first (equal sizes in input order).
  const ready: number[] = [];
  let unready = items.length;
  let smallLeft = items.filter((item) => sizeOf(item) <= limits.smallMaxSize).length;
  let largeLeft = items.length - smallLeft;
  // A main worker busy with a small item would leave a large one that becomes ready waiting.
  const leaveSmall = () => limits.smallConcurrency > 0 && largeLeft > 0;
  let failed = false;
  // Resolved, and replaced, whenever an item becomes ready or a task fails.
  let wake: () => void = () => {};
  let changed = new Promise<void>((resolve) => (wake = resolve));
  const signal = () => {
    wake();
    changed = new Promise<void>((resolve) => (wake = resolve));
  };
  const makeReady = (index: number) => {
    const size = sizeOf(items[index]);
    let at = ready.length;
    while (at > 0 && sizeOf(items[ready[at - 1]]) < size) at--;
    ready.splice(at, 0, index);
    unready--;
  };
  if (limits.ready) {
    items.forEach((item, index) => {
      const settle = () => {
        makeReady(index);
        signal();
      };
      limits.ready!(item).then(settle, settle);
    });
  } else {
    for (let index = 0; index < items.length; index++) makeReady(index);
  }

  async function worker(small: boolean): Promise<void> {
    // Once one task fails, the others finish what they hold but start nothing new.
    while (!failed) {
      let index: number | undefined;
      if (!small) {
        if (ready.length > 0 && (sizeOf(items[ready[0]]) > limits.smallMaxSize || !leaveSmall())) index = ready.shift();
      } else if (ready.length > 0 && sizeOf(items[ready[ready.length - 1]]) <= limits.smallMaxSize) index = ready.pop();
      if (index === undefined) {
        if (unready === 0 || (small && smallLeft === 0)) return;
        await changed;
        continue;
      }
      if (sizeOf(items[index]) <= limits.smallMaxSize) smallLeft--;
      // The last large one taken: main workers waiting for it may take small ones now.
      else if (--largeLeft === 0) signal();
      try {
        results[index] = await task(items[index], index);
      } catch (error) {
        failed = true;
        signal();
        throw error;
      }
    }
  }
  const workers = [
    ...Array.from({ length: Math.max(1, Math.min(limits.concurrency, items.length)) }, () => worker(false)),
    ...Array.from({ length: Math.min(limits.smallConcurrency, items.length) }, () => worker(true)),
  ];
  const settled = await Promise.allSettled(workers);
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  return results;
}
