package emucore

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is one injected misbehaviour. Kind is emulator-specific ("429",
// "500", "503", "UNABLE_TO_LOCK_ROW", "latency", ...); the emulator decides
// how to render it. A fault applies to calls whose endpoint name equals
// Endpoint, or to every endpoint when Endpoint is "*" or empty.
//
// Count > 0 makes the fault fire on the next Count matching calls and then
// disappear; otherwise Rate (0..1] makes it fire on that fraction of calls
// until cleared. Latency is added before the response whenever the fault
// fires (a pure "latency" fault has only that effect).
type Fault struct {
	ID         int      `json:"id"`
	Endpoint   string   `json:"endpoint"`
	Kind       string   `json:"kind"`
	Count      int      `json:"count,omitempty"`
	Rate       float64  `json:"rate,omitempty"`
	Latency    Duration `json:"latency,omitempty"`
	RetryAfter int      `json:"retryAfter,omitempty"`
	Remaining  int      `json:"remaining,omitempty"`
	Fired      int      `json:"fired"`
	created    time.Time
}

// Duration is a time.Duration that reads and writes as a Go duration
// string ("250ms") and also accepts a number of milliseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "250ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "250ms" or 250 (milliseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration must be a string like \"250ms\" or a number of milliseconds")
	}
	*d = Duration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// Faults is a set of active faults. The zero value is ready to use.
type Faults struct {
	mu     sync.Mutex
	nextID int
	list   []*Fault
	active atomic.Bool // lock-free fast path: false when list is empty
}

// Add validates and installs f, returning it with its id.
func (fs *Faults) Add(f Fault, validKinds ...string) (Fault, error) {
	if f.Kind == "" {
		return Fault{}, fmt.Errorf("kind is required (one of %v)", validKinds)
	}
	if len(validKinds) > 0 {
		ok := false
		for _, k := range validKinds {
			if k == f.Kind {
				ok = true
			}
		}
		if !ok {
			return Fault{}, fmt.Errorf("unknown fault kind %q (one of %v)", f.Kind, validKinds)
		}
	}
	if f.Count < 0 || f.Rate < 0 || f.Rate > 1 {
		return Fault{}, fmt.Errorf("count must be >= 0 and rate within [0,1]")
	}
	if f.Count == 0 && f.Rate == 0 {
		f.Rate = 1
	}
	if f.Endpoint == "" {
		f.Endpoint = "*"
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextID++
	f.ID = fs.nextID
	f.Remaining = f.Count
	f.created = time.Now()
	cp := f
	fs.list = append(fs.list, &cp)
	fs.active.Store(true)
	return cp, nil
}

// Match returns the first active fault for endpoint that fires on this
// call, consuming one of its remaining uses, or nil. Only faults whose Kind
// is in kinds are considered when kinds is non-empty.
func (fs *Faults) Match(endpoint string, kinds ...string) *Fault {
	if !fs.active.Load() {
		return nil
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.list {
		if f.Endpoint != "*" && f.Endpoint != endpoint {
			continue
		}
		if len(kinds) > 0 && !contains(kinds, f.Kind) {
			continue
		}
		if f.Count > 0 {
			f.Remaining--
			f.Fired++
			out := *f
			if f.Remaining <= 0 {
				fs.list = append(fs.list[:i], fs.list[i+1:]...)
				fs.active.Store(len(fs.list) > 0)
			}
			return &out
		}
		if f.Rate >= 1 || rand.Float64() < f.Rate {
			f.Fired++
			out := *f
			return &out
		}
	}
	return nil
}

// List returns the active faults.
func (fs *Faults) List() []Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]Fault, 0, len(fs.list))
	for _, f := range fs.list {
		out = append(out, *f)
	}
	return out
}

// Remove deletes the fault with id, reporting whether it existed.
func (fs *Faults) Remove(id int) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, f := range fs.list {
		if f.ID == id {
			fs.list = append(fs.list[:i], fs.list[i+1:]...)
			fs.active.Store(len(fs.list) > 0)
			return true
		}
	}
	return false
}

// Clear removes every fault.
func (fs *Faults) Clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = nil
	fs.active.Store(false)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
