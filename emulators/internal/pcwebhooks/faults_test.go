package pcwebhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDropFault(t *testing.T) {
	// One worker makes the queue strictly FIFO, so once B arrives, A, queued
	// before it, would have arrived first had it not been dropped.
	e := newEnv(t, func(c *Config) { c.Workers = 1 })
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralCreated, EventReferralUpdated)
	f := e.addFault(`{"kind":"drop","event":"referral-updated","count":1}`)
	if f.Kind != FaultDrop || f.Event != EventReferralUpdated || f.Remaining != 1 {
		t.Errorf("fault = %+v", f)
	}

	e.d.Notify(EventReferralCreated, "a", changed) // other event: not dropped
	e.d.Notify(EventReferralUpdated, "b", changed) // dropped
	e.d.Notify(EventReferralUpdated, "c", changed) // the fault is used up
	for _, want := range []string{"a", "c"} {
		if got := eventOf(t, rc.next(t).body).ResourceURI; got != want {
			t.Errorf("received %q, want %q", got, want)
		}
	}
	log := e.d.Deliveries()
	if len(log) != 3 || log[1].Status != StatusDropped || !slices.Equal(log[1].Faults, []string{"drop"}) || len(log[1].Attempts) != 0 {
		t.Errorf("log = %+v", log)
	}
	if len(e.d.Faults()) != 0 {
		t.Errorf("count fault still listed after use: %+v", e.d.Faults())
	}
}

func TestDropFaultByRate(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	e.addFault(`{"kind":"drop","rate":1}`)
	for i := range 5 {
		e.d.Notify(EventReferralUpdated, fmt.Sprint(i), changed)
	}
	st, _, b := e.call(http.MethodGet, "/_emulator/webhooks/deliveries?status=dropped", "", "")
	var dropped []Delivery
	if err := json.Unmarshal(b, &dropped); err != nil || st != 200 || len(dropped) != 5 {
		t.Fatalf("dropped = %d %s", st, b)
	}
	var faults []FaultView
	_, _, b = e.call(http.MethodGet, "/_emulator/webhooks/faults", "", "")
	if err := json.Unmarshal(b, &faults); err != nil || len(faults) != 1 || faults[0].Fired != 5 {
		t.Errorf("faults = %s", b)
	}
	if st, _, _ := e.call(http.MethodDelete, "/_emulator/webhooks/faults", "", ""); st != http.StatusNoContent {
		t.Fatalf("clear faults = %d", st)
	}
	e.d.Notify(EventReferralUpdated, "after", changed)
	if got := eventOf(t, rc.next(t).body).ResourceURI; got != "after" {
		t.Errorf("received %q", got)
	}
	if rc.hits.Load() != 1 {
		t.Errorf("receiver got %d requests, want only the one after clearing", rc.hits.Load())
	}
}

func TestDuplicateFault(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	e.addFault(`{"kind":"duplicate","count":1}`)
	e.d.Notify(EventReferralUpdated, "r1", changed)
	a, b := rc.next(t), rc.next(t)
	if string(a.body) != string(b.body) || eventOf(t, a.body).ResourceURI != "r1" {
		t.Errorf("duplicates differ: %s / %s", a.body, b.body)
	}
	for _, r := range []received{a, b} {
		if err := VerifySignature(r.body, r.header, e.d.CAPool(), HTTPFetcher(nil)); err != nil {
			t.Errorf("duplicate signature: %v", err)
		}
	}
	log := e.d.Deliveries()
	if len(log) != 2 || log[1].DuplicateOf != log[0].ID || log[0].DuplicateOf != "" {
		t.Fatalf("log = %+v", log)
	}
	e.settled(log[0].ID, StatusDelivered)
	e.settled(log[1].ID, StatusDelivered)

	e.d.Notify(EventReferralUpdated, "r2", changed) // fault used up
	if got := eventOf(t, rc.next(t).body).ResourceURI; got != "r2" {
		t.Errorf("received %q", got)
	}
	if n := len(e.d.Deliveries()); n != 3 {
		t.Errorf("log has %d entries, want 3", n)
	}
}

func TestReorderFaultReverses(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workers = 4 })
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	f := e.addFault(`{"kind":"reorder","count":3}`)
	if f.Order != ReorderReverse {
		t.Errorf("default order = %q", f.Order)
	}
	e.d.Notify(EventReferralUpdated, "1", changed)
	e.d.Notify(EventReferralUpdated, "2", changed)
	for _, d := range e.d.Deliveries() {
		if d.Status != StatusHeld {
			t.Errorf("%s status = %s, want held", d.ResourceURI, d.Status)
		}
	}
	if fs := e.d.Faults(); len(fs) != 1 || fs[0].Held != 2 {
		t.Errorf("faults = %+v", fs)
	}
	if rc.hits.Load() != 0 {
		t.Fatalf("held events were delivered")
	}
	e.d.Notify(EventReferralUpdated, "3", changed)
	var got []string
	for range 3 {
		got = append(got, eventOf(t, rc.next(t).body).ResourceURI)
	}
	if !slices.Equal(got, []string{"3", "2", "1"}) {
		t.Errorf("arrival order = %v, want [3 2 1]", got)
	}
}

func TestReorderFaultShuffleAndRelease(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	e.addFault(`{"kind":"reorder","count":4,"order":"shuffle"}`)
	for i := range 4 {
		e.d.Notify(EventReferralUpdated, fmt.Sprint(i), changed)
	}
	var got []string
	for range 4 {
		got = append(got, eventOf(t, rc.next(t).body).ResourceURI)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Errorf("shuffled events = %v, want each once", got)
	}

	// Removing a reorder fault before it fills releases what it holds.
	f := e.addFault(`{"kind":"reorder","count":10}`)
	e.d.Notify(EventReferralUpdated, "x", changed)
	e.d.Notify(EventReferralUpdated, "y", changed)
	if st, _, b := e.call(http.MethodDelete, fmt.Sprintf("/_emulator/webhooks/faults/%d", f.ID), "", ""); st != http.StatusNoContent {
		t.Fatalf("delete fault = %d %s", st, b)
	}
	got = nil
	for range 2 {
		got = append(got, eventOf(t, rc.next(t).body).ResourceURI)
	}
	if !slices.Equal(got, []string{"y", "x"}) {
		t.Errorf("released order = %v, want [y x]", got)
	}

	// Flush releases without removing the fault.
	e.addFault(`{"kind":"reorder","count":10}`)
	e.d.Notify(EventReferralUpdated, "p", changed)
	st, _, b := e.call(http.MethodPost, "/_emulator/webhooks/flush", "", "")
	if st != http.StatusOK || !strings.Contains(string(b), `"released":1`) {
		t.Fatalf("flush = %d %s", st, b)
	}
	if got := eventOf(t, rc.next(t).body).ResourceURI; got != "p" {
		t.Errorf("flushed %q", got)
	}
	if fs := e.d.Faults(); len(fs) != 1 || fs[0].Remaining != 9 {
		t.Errorf("faults after flush = %+v", fs)
	}
}

func TestDelayFault(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	const delay = 40 * time.Millisecond
	f := e.addFault(`{"kind":"delay","latency":"40ms","count":1}`)
	if time.Duration(f.Latency) != delay {
		t.Errorf("latency = %v", time.Duration(f.Latency))
	}
	e.d.Notify(EventReferralUpdated, "slow", changed)
	pending := e.lastDelivery()
	if pending.NextAttemptAt == nil || pending.NextAttemptAt.Sub(pending.CreatedAt) < delay {
		t.Errorf("queued entry = %+v, want nextAttemptAt %v after creation", pending, delay)
	}
	rc.next(t)
	d := e.settled(pending.ID, StatusDelivered)
	// The delay is a floor the dispatcher guarantees, not a measurement.
	if d.Attempts[0].At.Sub(d.CreatedAt) < delay || !slices.Equal(d.Faults, []string{"delay"}) {
		t.Errorf("delivery = %+v, want first attempt at least %v after creation", d, delay)
	}
}

func TestFaultCombinationDuplicateAndReorder(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	e.addFault(`{"kind":"duplicate","count":1}`)
	e.addFault(`{"kind":"reorder","count":2}`)
	e.d.Notify(EventReferralUpdated, "a", changed) // a, a' held
	e.d.Notify(EventReferralUpdated, "b", changed) // b held, then all released reversed
	var got []string
	for range 3 {
		got = append(got, eventOf(t, rc.next(t).body).ResourceURI)
	}
	if !slices.Equal(got, []string{"b", "a", "a"}) {
		t.Errorf("arrival = %v, want [b a a]", got)
	}
}

func TestFaultControlValidation(t *testing.T) {
	e := newEnv(t, nil)
	bad := []string{
		`{"kind":"explode"}`,
		`{"kind":"drop","event":"subscription-updated"}`,
		`{"kind":"drop","rate":1.5}`,
		`{"kind":"delay"}`,
		`{"kind":"reorder","count":1}`,
		`{"kind":"reorder","rate":0.5}`,
		`{"kind":"reorder","count":3,"order":"sideways"}`,
		`{"kind":"drop","order":"reverse"}`,
		`{"kind":"drop","latency":"1s"}`,
		`{"kind":"drop","typo":1}`,
		`not json`,
	}
	for _, spec := range bad {
		if st, _, b := e.call(http.MethodPost, "/_emulator/webhooks/faults", "application/json", spec); st != http.StatusBadRequest {
			t.Errorf("POST fault %s = %d %s, want 400", spec, st, b)
		}
	}
	f := e.addFault(`{"kind":"drop","endpoint":"referral-created","rate":0.25}`)
	if f.Event != EventReferralCreated || f.Rate != 0.25 {
		t.Errorf("fault = %+v", f)
	}
	if st, _, _ := e.call(http.MethodDelete, fmt.Sprintf("/_emulator/webhooks/faults/%d", f.ID+100), "", ""); st != http.StatusNotFound {
		t.Errorf("delete unknown fault = %d", st)
	}
	if st, _, _ := e.call(http.MethodDelete, fmt.Sprintf("/_emulator/webhooks/faults/%d", f.ID), "", ""); st != http.StatusNoContent {
		t.Errorf("delete fault = %d", st)
	}
	if len(e.d.Faults()) != 0 {
		t.Errorf("faults left: %+v", e.d.Faults())
	}
}

func TestSignatureTamperingFaults(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	// Like a hardened receiver, fetch certificates only from the known host.
	fetch := func(url string) ([]byte, error) {
		if !strings.HasPrefix(url, e.srv.URL+"/cert/") {
			return nil, fmt.Errorf("certificate host not allowed: %s", url)
		}
		return HTTPFetcher(nil)(url)
	}
	cases := []struct {
		kind string
		want error
	}{
		{FaultBadSignature, ErrSignature},
		{FaultMissingSignature, ErrMissingHeader},
		{FaultWrongOrg, ErrOrganization},
		{FaultUntrustedCert, ErrCertificate},
		{FaultForeignCertHost, ErrCertificate},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			e.addFault(`{"kind":"` + c.kind + `","count":1}`)
			e.d.Notify(EventReferralUpdated, c.kind, changed)
			bad := rc.next(t)
			if err := VerifySignature(bad.body, bad.header, e.d.CAPool(), fetch); !errors.Is(err, c.want) {
				t.Errorf("tampered delivery: err = %v, want %v", err, c.want)
			}
			if d := e.lastDelivery(); !slices.Contains(d.Faults, c.kind) {
				t.Errorf("log faults = %v", d.Faults)
			}
			e.d.Notify(EventReferralUpdated, "clean", changed)
			good := rc.next(t)
			if err := VerifySignature(good.body, good.header, e.d.CAPool(), fetch); err != nil {
				t.Errorf("delivery after the fault: %v", err)
			}
		})
	}
}
