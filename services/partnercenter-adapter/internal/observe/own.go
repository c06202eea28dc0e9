package observe

import (
	"sync"
	"time"
)

// OwnCreates remembers, for a while, the referrals this replica created.
// Partner Center sends a referral-created notification for those too; the
// create's result already carried the referral to the mapper, and any
// later change to it raises a referral-updated notification of its own,
// so reading the referral again for that notification only costs a
// Partner Center call, a message and a mapper transaction. A notification
// that reaches another replica, or this one after a restart or after the
// entry expired, is handled as any other: remembering is an optimisation,
// never needed for correctness.
type OwnCreates struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	now   func() time.Time
	at    map[string]time.Time
	order []string // insertion order, for evicting the oldest
}

// Defaults of NewOwnCreates: Partner Center delivers a webhook within
// seconds, and a few thousand ids cost well under a megabyte.
const (
	DefaultOwnCreatesTTL = 10 * time.Minute
	DefaultOwnCreatesMax = 4096
)

// NewOwnCreates returns a set that keeps an id for ttl, and at most max
// ids (the oldest go first).
func NewOwnCreates(ttl time.Duration, max int) *OwnCreates {
	if ttl <= 0 {
		ttl = DefaultOwnCreatesTTL
	}
	if max <= 0 {
		max = DefaultOwnCreatesMax
	}
	return &OwnCreates{ttl: ttl, max: max, now: time.Now, at: map[string]time.Time{}}
}

// Add remembers that this replica created referral id.
func (c *OwnCreates) Add(id string) {
	if c == nil || id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.at[id]; !ok {
		c.order = append(c.order, id)
	}
	c.at[id] = c.now()
	for len(c.order) > c.max {
		delete(c.at, c.order[0])
		c.order = c.order[1:]
	}
	// Drop expired ids from the front now and then, so a quiet set does
	// not hold them until max is reached.
	for len(c.order) > 0 && c.now().Sub(c.at[c.order[0]]) > c.ttl {
		delete(c.at, c.order[0])
		c.order = c.order[1:]
	}
}

// Has reports whether this replica created referral id within the TTL.
func (c *OwnCreates) Has(id string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.at[id]
	return ok && c.now().Sub(at) <= c.ttl
}

// Len returns how many ids the set holds (expired ones included until
// they are dropped).
func (c *OwnCreates) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}
