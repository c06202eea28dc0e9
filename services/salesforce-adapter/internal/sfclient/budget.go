package sfclient

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// LimitInfoHeader is the response header that carries the org's API usage.
const LimitInfoHeader = "Sforce-Limit-Info"

// ParseLimitInfo reads "api-usage=N/M" from a Sforce-Limit-Info value,
// which may hold several comma-separated items (per-app-api-usage,
// api-bursts). ok is false when no api-usage item parses.
func ParseLimitInfo(v string) (used, limit int64, ok bool) {
	for item := range strings.SplitSeq(v, ",") {
		name, val, found := strings.Cut(strings.TrimSpace(item), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(name), "api-usage") {
			continue
		}
		u, m, found := strings.Cut(strings.TrimSpace(val), "/")
		if !found {
			continue
		}
		uu, err1 := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
		mm, err2 := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
		if err1 != nil || err2 != nil || uu < 0 || mm <= 0 {
			continue
		}
		return uu, mm, true
	}
	return 0, 0, false
}

// Usage is the org's API usage as last reported by Salesforce and what
// the adapter may still spend.
type Usage struct {
	// Known is false until a response carried Sforce-Limit-Info.
	Known bool
	// Used and Limit are the last api-usage=Used/Limit seen.
	Used, Limit int64
	// Budget is the share of Limit the adapter may use (Limit ×
	// percent / 100).
	Budget int64
	// InFlight counts calls sent and not yet answered.
	InFlight int64
	// Exhausted is true when Used has reached Budget: calls are refused
	// until a probe shows the rolling window has freed some.
	Exhausted bool
}

// budget keeps the org's usage and decides whether a call may be made, so
// that the adapter never takes usage past its share of the daily
// allocation. Calls in flight are counted as already used: with several
// concurrent calls, each reserves one unit before it is sent.
//
// Salesforce's allocation is a rolling 24 hours, so spent calls come back
// over time, but the only way to learn it is a response. Once the budget is
// reached the adapter therefore lets one call through every probeEvery (and
// only while the org as a whole is under its limit); every other call is
// refused without being sent.
type budget struct {
	percent    int64
	probeEvery time.Duration

	mu        sync.Mutex
	known     bool
	used      int64
	limit     int64
	inflight  int64
	lastProbe time.Time
	// version counts recorded observations; usedAt is the version of the
	// one in used. See release.
	version uint64
	usedAt  uint64
}

// budgetFor returns the share of limit that percent allows.
func budgetFor(limit, percent int64) int64 { return limit * percent / 100 }

// acquire reserves one call, or reports false when the call must not be
// made now. A reservation is returned with release, passing the version
// acquire returned.
func (b *budget) acquire(now time.Time) (bool, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tryAcquire(now), b.version
}

// tryAcquire is acquire's decision. Caller holds mu.
func (b *budget) tryAcquire(now time.Time) bool {
	if !b.known {
		// Nothing known yet: one call at a time until a response tells us
		// where the org stands.
		if b.inflight > 0 {
			return false
		}
		b.inflight++
		return true
	}
	if b.used+b.inflight < budgetFor(b.limit, b.percent) {
		b.inflight++
		b.lastProbe = time.Time{}
		return true
	}
	if b.lastProbe.IsZero() {
		// The first refusal starts the probe clock.
		b.lastProbe = now
		return false
	}
	if b.inflight == 0 && b.used < b.limit && now.Sub(b.lastProbe) >= b.probeEvery {
		b.lastProbe = now
		b.inflight++
		return true
	}
	return false
}

// waitable reports whether a refused acquire is only waiting for the
// first answer (usage still unknown, one call in flight) rather than out of
// budget.
func (b *budget) waitable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.known
}

// release ends a reservation made at version startedAt and records the
// usage its response reported.
//
// Answers of concurrent calls arrive in any order, so a lower count than
// the one recorded may simply be stale (its call was counted before the
// other's). It is believed only from a call sent after the recorded count
// was seen: Salesforce counted that call after the recorded one, so a lower
// number means the rolling window really dropped old calls.
func (b *budget) release(header string, startedAt uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight--
	used, limit, ok := ParseLimitInfo(header)
	if !ok {
		return
	}
	if b.known && limit == b.limit && used < b.used && startedAt < b.usedAt {
		return
	}
	b.version++
	b.known, b.used, b.limit, b.usedAt = true, used, limit, b.version
}

// usage returns a snapshot.
func (b *budget) usage() Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := Usage{Known: b.known, Used: b.used, Limit: b.limit, InFlight: b.inflight}
	if b.known {
		u.Budget = budgetFor(b.limit, b.percent)
		u.Exhausted = b.used >= u.Budget
	}
	return u
}
