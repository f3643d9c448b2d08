/**
 * Deadlines of every request in one binary min-heap, swept by one timer, instead of a setTimeout
 * per request. Entries whose request already finished are skipped when they surface. An entry is
 * keyed by the deadline it had when pushed; a request whose deadline was extended since (a resumed
 * stream) is pushed again, and its older entry is skipped when it surfaces.
 */
export interface HasDeadline {
  readonly deadline: number;
  /** True once the request finished; its heap entry is then stale. */
  readonly settled: boolean;
}

interface Entry<T> {
  readonly at: number;
  readonly item: T;
}

export class DeadlineHeap<T extends HasDeadline> {
  private readonly items: Array<Entry<T>> = [];

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    const items = this.items;
    const entry = { at: item.deadline, item };
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.at <= entry.at) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
  }

  /** Removes and returns every unsettled item whose deadline is ≤ now. */
  popExpired(now: number, out: T[] = []): T[] {
    const items = this.items;
    while (items.length > 0 && (items[0]!.at <= now || items[0]!.item.settled)) {
      const top = this.popTop().item;
      if (!top.settled && top.deadline <= now) out.push(top);
    }
    return out;
  }

  private popTop(): Entry<T> {
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
        const c = r < n && items[r]!.at < items[l]!.at ? r : l;
        if (items[c]!.at >= last.at) break;
        items[i] = items[c]!;
        i = c;
      }
      items[i] = last;
    }
    return top;
  }
}
