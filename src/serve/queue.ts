/**
 * A bounded work queue for model jobs: at most `concurrency` run at once and at most
 * `capacity` more wait. Admission happens before a request's body is read, so the memory and
 * disk held by uploads is bounded by (concurrency + capacity) requests; a request that finds
 * the queue full is refused at once (the server answers 503 with Retry-After).
 */
export class QueueFullError extends Error {
  constructor() {
    super('the work queue is full');
  }
}

export class QueueClosedError extends Error {
  constructor() {
    super('the server is shutting down');
  }
}

export interface Ticket {
  /** Waits for a slot, runs `fn`, frees the slot; the ticket is used up afterwards. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Gives the admission back without running (request failed before its job). */
  release(): void;
}

export class WorkQueue {
  private admitted = 0;
  private running = 0;
  private closed = false;
  private readonly waiters: { start: () => void; fail: (e: Error) => void }[] = [];
  private idleResolvers: (() => void)[] = [];

  constructor(
    readonly concurrency: number,
    readonly capacity: number,
  ) {
    if (!(Number.isInteger(concurrency) && concurrency >= 1))
      throw new RangeError(`concurrency must be >= 1, got ${concurrency}`);
    if (!(Number.isInteger(capacity) && capacity >= 0))
      throw new RangeError(`queue length must be >= 0, got ${capacity}`);
  }

  stats(): { running: number; waiting: number; admitted: number; concurrency: number; capacity: number } {
    return {
      running: this.running,
      waiting: this.waiters.length,
      admitted: this.admitted,
      concurrency: this.concurrency,
      capacity: this.capacity,
    };
  }

  /** A ticket, or an error when the queue is full or closed. */
  admit(): Ticket {
    if (this.closed) throw new QueueClosedError();
    if (this.admitted >= this.concurrency + this.capacity) throw new QueueFullError();
    this.admitted++;
    let used = false;
    const done = () => {
      this.admitted--;
      if (this.admitted === 0) {
        for (const r of this.idleResolvers.splice(0)) r();
      }
    };
    return {
      run: async <T>(fn: () => Promise<T>): Promise<T> => {
        if (used) throw new Error('ticket already used');
        used = true;
        try {
          await this.acquire();
        } catch (e) {
          done();
          throw e;
        }
        try {
          return await fn();
        } finally {
          this.running--;
          this.next();
          done();
        }
      },
      release: () => {
        if (used) return;
        used = true;
        done();
      },
    };
  }

  private acquire(): Promise<void> {
    if (this.closed) return Promise.reject(new QueueClosedError());
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((start, fail) => this.waiters.push({ start: () => start(), fail }));
  }

  private next(): void {
    const w = this.waiters.shift();
    if (w) {
      this.running++;
      w.start();
    }
  }

  /** Refuses new work and fails jobs still waiting; running jobs finish. */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.fail(new QueueClosedError());
  }

  /** Resolves when no admitted request remains. */
  idle(): Promise<void> {
    if (this.admitted === 0) return Promise.resolve();
    return new Promise((r) => this.idleResolvers.push(r));
  }
}
