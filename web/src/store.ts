// A value that components can watch: the app's shared state (warnings, auth failures) lives in
// instances of this, owned by the services in ./context, rather than in module variables.

import { useEffect, useState } from 'preact/hooks';

export class Store<T> {
  private listeners = new Set<(value: T) => void>();

  constructor(private current: T) {}

  get value(): T {
    return this.current;
  }

  set(value: T) {
    if (Object.is(value, this.current)) return;
    this.current = value;
    this.listeners.forEach((l) => l(value));
  }

  subscribe(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}

/** The store's value, re-rendering the component when it changes. */
export function useStore<T>(store: Store<T>): T {
  const [value, setValue] = useState(store.value);
  useEffect(() => {
    // A wrapper, so a function-valued T is never taken for a state updater.
    const update = (v: T) => setValue(() => v);
    update(store.value);
    return store.subscribe(update);
  }, [store]);
  return value;
}
