// News between hubs that share one store (PostgreSQL: LISTEN/NOTIFY). Only what a hub would
// otherwise miss about another hub's changes travels here; the store stays the one truth, so a
// lost notice delays a push and loses nothing.

/**
 * A channel every hub on the same database hears: a notice published by one reaches the others
 * (not itself), in no guaranteed order, at most once.
 *
 * @example
 * await news.subscribe((n) => console.log('another hub says', n));
 * news.publish('work');
 */
export interface StoreNews {
  /** Tells the other hubs; a notice is at most 7,000 bytes (PostgreSQL's NOTIFY payload limit is 8,000). */
  publish(notice: string): void;
  /** Hears the other hubs' notices. */
  subscribe(fn: (notice: string) => void): Promise<void>;
}
