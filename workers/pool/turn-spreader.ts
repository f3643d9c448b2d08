/**
 * Runs pieces of synchronous work one per event-loop turn. A replica answers every cancel as it
 * reads it, and the gateway replaces a replica that leaves a cancel unanswered past
 * `abort_grace_ms` (it looks wedged). Ten 20 MB JSON bodies that arrive in one batch would be
 * parsed back to back in one turn, seconds on a busy machine, during which no message is read:
 * a healthy replica was replaced for it, failing all ten. Spread one per turn, the port is read
 * between them.
 *
 * An immediate queued from inside an immediate runs in the next turn, after the poll phase that
 * delivers port messages; so each piece schedules the next before it runs.
 */
export class TurnSpreader {
  private readonly queue: Array<() => void> = [];
  private scheduled = false;

  run(work: () => void): void {
    this.queue.push(work);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.next);
  }

  private readonly next = (): void => {
    const work = this.queue.shift();
    if (this.queue.length > 0) setImmediate(this.next);
    else this.scheduled = false;
    work?.();
  };
}
