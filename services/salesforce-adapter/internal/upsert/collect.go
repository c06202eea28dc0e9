package upsert

import (
	"context"
	"time"
)

// collector is the state of the collecting loop; only collect's goroutine
// touches it.
type collector struct {
	pending []*item
	busy    map[string]bool // keys in a batch being processed or waiting for a retry
	delayed []delayed
	seq     uint64
}

// collect is the batching loop. It accepts commands, and hands a batch to
// a free worker when enough distinct referrals are waiting or the oldest
// has waited BatchWait. While every worker is busy, commands keep
// accumulating, so batches grow with the load.
func (b *Batcher) collect(ctx context.Context) {
	c := &collector{busy: map[string]bool{}}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		c.promoteDue(now)
		next, wakeAt := c.plan(now, b.cfg.BatchSize, b.cfg.BatchWait)
		var out chan *batch
		if next != nil {
			out = b.work
		}
		// Since Go 1.23 a stopped timer delivers no stale tick.
		timer.Stop()
		if !wakeAt.IsZero() {
			timer.Reset(max(time.Until(wakeAt), 0))
		}
		select {
		case it := <-b.in:
			c.seq++
			it.seq, it.arrived = c.seq, now
			c.pending = append(c.pending, it)
		case out <- next:
			c.take(next)
			b.metrics.batches.Record(ctx, int64(len(next.groups)))
		case r := <-b.reports:
			for _, k := range r.release {
				delete(c.busy, k)
			}
			c.delayed = append(c.delayed, r.retry...)
		case <-timer.C:
		case <-ctx.Done():
			c.abandon()
			return
		}
	}
}

// promoteDue moves retries whose time has come back to pending (ahead of
// newer commands, by their original arrival) and frees their keys.
func (c *collector) promoteDue(now time.Time) {
	kept := c.delayed[:0]
	for _, d := range c.delayed {
		if d.at.After(now) {
			kept = append(kept, d)
			continue
		}
		delete(c.busy, d.key)
		c.pending = append(d.items, c.pending...)
	}
	clear(c.delayed[len(kept):])
	c.delayed = kept
}

// plan decides whether a batch should go out now. It returns the batch
// (nil if none) and when to look again if nothing else happens.
func (c *collector) plan(now time.Time, size int, wait time.Duration) (*batch, time.Time) {
	var wakeAt time.Time
	for _, d := range c.delayed {
		if wakeAt.IsZero() || d.at.Before(wakeAt) {
			wakeAt = d.at
		}
	}
	// The oldest dispatchable command decides the field and the deadline.
	var oldest *item
	for _, it := range c.pending {
		if !c.busy[it.key] {
			oldest = it
			break
		}
	}
	if oldest == nil {
		return nil, wakeAt
	}
	field := batchField(oldest.cmd)
	groups := map[string]*group{}
	var order []*group
	for _, it := range c.pending {
		if c.busy[it.key] || batchField(it.cmd) != field {
			continue
		}
		g := groups[it.key]
		if g != nil && field == byID {
			// Updates of one opportunity carry different fields: the
			// next one waits for this one's result.
			continue
		}
		if g == nil {
			if len(order) == size {
				continue
			}
			g = &group{key: it.key}
			groups[it.key] = g
			order = append(order, g)
		}
		g.items = append(g.items, it)
		if g.winner == nil || newer(it, g.winner) {
			g.winner = it
		}
	}
	deadline := oldest.arrived.Add(wait)
	if len(order) < size && now.Before(deadline) {
		if wakeAt.IsZero() || deadline.Before(wakeAt) {
			wakeAt = deadline
		}
		return nil, wakeAt
	}
	return &batch{field: field, groups: order}, wakeAt
}

// newer reports whether a supersedes b: a later source timestamp, or the
// same one submitted later.
func newer(a, b *item) bool {
	if !a.cmd.SourceUpdatedAt.Equal(b.cmd.SourceUpdatedAt) {
		return a.cmd.SourceUpdatedAt.After(b.cmd.SourceUpdatedAt)
	}
	return a.seq > b.seq
}

// take removes a dispatched batch's items from pending and marks their
// keys busy.
func (c *collector) take(bt *batch) {
	taken := map[*item]bool{}
	for _, g := range bt.groups {
		c.busy[g.key] = true
		for _, it := range g.items {
			taken[it] = true
		}
	}
	kept := c.pending[:0]
	for _, it := range c.pending {
		if !taken[it] {
			kept = append(kept, it)
		}
	}
	clear(c.pending[len(kept):])
	c.pending = kept
}

// abandon answers everything still queued with RetryLater.
func (c *collector) abandon() {
	stop := Outcome{Kind: RetryLater, Err: ErrStopping, RetryAfter: time.Second}
	for _, it := range c.pending {
		it.done <- stop
	}
	for _, d := range c.delayed {
		for _, it := range d.items {
			it.done <- stop
		}
	}
	c.pending, c.delayed = nil, nil
}
