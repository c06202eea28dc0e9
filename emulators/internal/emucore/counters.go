package emucore

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Counters counts calls per endpoint name. It is safe for concurrent use and
// cheap on the hot path (one map read and an atomic add once a name exists).
type Counters struct {
	m sync.Map // string -> *atomic.Int64
}

// Inc adds one call to endpoint.
func (c *Counters) Inc(endpoint string) {
	if v, ok := c.m.Load(endpoint); ok {
		v.(*atomic.Int64).Add(1)
		return
	}
	v, _ := c.m.LoadOrStore(endpoint, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Get returns the count for endpoint.
func (c *Counters) Get(endpoint string) int64 {
	if v, ok := c.m.Load(endpoint); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Snapshot returns every endpoint's count.
func (c *Counters) Snapshot() map[string]int64 {
	out := map[string]int64{}
	c.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// Names returns the endpoint names seen so far, sorted.
func (c *Counters) Names() []string {
	var out []string
	c.m.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	sort.Strings(out)
	return out
}

// Reset forgets every count.
func (c *Counters) Reset() {
	c.m.Range(func(k, _ any) bool { c.m.Delete(k); return true })
}
