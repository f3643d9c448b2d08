/**
 * One request's cancellation inside a replica. The AbortSignal a predictor sees is made only when
 * the predictor reads `req.signal`: in Node 20 creating a signal costs about 5 µs, as much as the
 * rest of an echo request's work in the replica, and most predictors never look at it. A signal
 * made after the cancel comes out already aborted, with the same reason.
 */
export class Cancellation {
  aborted = false;
  private controller: AbortController | undefined;
  private reason: unknown;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}
