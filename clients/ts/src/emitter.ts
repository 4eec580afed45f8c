/**
 * A small typed event emitter: `on`/`off`/`once` checked against an event map
 * (event name → payload type).
 *
 * @module
 */

/** A listener of one event type. */
export type Listener<T> = (event: T) => void;

type AnyListener = (event: unknown) => void;

/** Typed on/off emitter over the event map `M`. */
export class TypedEmitter<M extends object> {
  private readonly listeners = new Map<keyof M, Set<AnyListener>>();

  /** Adds `listener` for `type`; returns a function that removes it. */
  on<K extends keyof M>(type: K, listener: Listener<M[K]>): () => void {
    let set = this.listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(listener as AnyListener);
    return () => this.off(type, listener);
  }

  /** Removes `listener` from `type` (no-op if it was not added). */
  off<K extends keyof M>(type: K, listener: Listener<M[K]>): void {
    this.listeners.get(type)?.delete(listener as AnyListener);
  }

  /** Adds a listener that runs at most once; returns a function that removes it. */
  once<K extends keyof M>(type: K, listener: Listener<M[K]>): () => void {
    const wrapper: Listener<M[K]> = (event) => {
      this.off(type, wrapper);
      listener(event);
    };
    return this.on(type, wrapper);
  }

  /** Number of listeners of `type`. */
  listenerCount(type: keyof M): number {
    return this.listeners.get(type)?.size ?? 0;
  }

  /**
   * Calls every listener of `type` with `event`. A listener that throws does not
   * stop the others nor the client's processing: its error is rethrown from a
   * fresh task, where the host reports it as uncaught.
   */
  protected emit<K extends keyof M>(type: K, event: M[K]): void {
    const set = this.listeners.get(type);
    if (set === undefined || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        listener(event);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
