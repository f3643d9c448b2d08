/**
 * Items that collect during one event-loop turn and go out together at the start of the next:
 * one message per turn instead of one per item. setImmediate, not a microtask: uWS drains
 * microtasks after every handler, which would deliver once per request.
 */
export class TurnBatcher<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly deliver: (items: T[]) => void) {}

  push(item: T): void {
    this.items.push(item);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  /** Delivers what is waiting now (before a close, say) instead of in the next turn. */
  readonly flush = (): void => {
    this.scheduled = false;
    const items = this.items;
    this.items = [];
    if (items.length > 0) this.deliver(items);
  };
}
