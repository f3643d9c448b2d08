/**
 * Deadlines of every request in one binary min-heap, swept by one timer, instead of a setTimeout
 * per request. Entries whose request already finished are skipped when they surface.
 */
export interface HasDeadline {
  readonly deadline: number;
  /** True once the request finished; its heap entry is then stale. */
  readonly settled: boolean;
}

export class DeadlineHeap<T extends HasDeadline> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.deadline <= item.deadline) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  /** Removes and returns every unsettled item whose deadline is ≤ now. */
  popExpired(now: number, out: T[] = []): T[] {
    const items = this.items;
    while (items.length > 0 && (items[0]!.deadline <= now || items[0]!.settled)) {
      const top = this.popTop();
      if (!top.settled) out.push(top);
    }
    return out;
  }

  private popTop(): T {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      let i = 0;
      const n = items.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && items[r]!.deadline < items[l]!.deadline ? r : l;
        if (items[c]!.deadline >= last.deadline) break;
        items[i] = items[c]!;
        i = c;
      }
      items[i] = last;
    }
    return top;
  }
}
