package store

// Hooks for the external tests, which import storetest and so cannot live
// in package store.

// SetBeforeWatch makes the cache call f before it starts each watch; a test
// blocks in f to hold the watch down while it changes the store.
func SetBeforeWatch[T any](c *Cache[T], f func()) { c.beforeWatch.Store(&f) }

// InterruptWatch ends the cache's current watch, as a network failure
// would, so that the cache resumes it.
func InterruptWatch[T any](c *Cache[T]) {
	c.mu.Lock()
	cancel := c.cancelWatch
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
