package twoway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 7, 9, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func latest(string) Owner { return OwnerLatest }

// start is a link where both sides hold Amount 100 (agreed at t0).
func start() *State {
	s := &State{}
	s.Baseline(Salesforce, map[string]string{"Amount": "100"}, t0, "")
	s.Baseline(PartnerCenter, map[string]string{"Amount": "100"}, t0, "")
	return s
}

// commands numbers the writes run sends.
var commands int

// event is an observation arriving at the mapper.
type event struct {
	side Side
	v    string
	at   time.Time
}

// run applies events in order, sending what each side needs after every
// event (as the mapper does), and returns the agreed value and what each
// side was last sent or holds.
func run(t *testing.T, s *State, events []event) string {
	t.Helper()
	for _, e := range events {
		s.Observe(e.side, map[string]string{"Amount": e.v}, e.at, latest)
		for _, side := range []Side{Salesforce, PartnerCenter} {
			if need := s.Needs(side, nil); len(need) > 0 {
				commands++
				s.Sent(side, fmt.Sprintf("%s-cmd-%d", side, commands), need)
			}
		}
	}
	return s.Fields["Amount"].Value
}

func TestConcurrentEditsConvergeInBothOrders(t *testing.T) {
	// The seller sets 200 at t1, a Microsoft seller 300 at t2 > t1: the
	// latest change (300) wins whatever order the observations arrive in.
	sf := event{Salesforce, "200", at(1)}
	pc := event{PartnerCenter, "300", at(2)}
	for name, order := range map[string][]event{"salesforce first": {sf, pc}, "partner center first": {pc, sf}} {
		t.Run(name, func(t *testing.T) {
			s := start()
			if got := run(t, s, order); got != "300" {
				t.Fatalf("agreed %s, want 300", got)
			}
			// Each side ends up holding (or being sent) 300.
			for _, side := range []Side{Salesforce, PartnerCenter} {
				if v, _ := s.Expected(side, "Amount"); v != "300" {
					t.Errorf("%s will hold %s, want 300", side, v)
				}
			}
		})
	}
}

func TestLaterSalesforceEditWinsEvenWhenOurWriteLandsAfterIt(t *testing.T) {
	// Partner Center changes to 300 at t1; we write 300 to Salesforce, but
	// the seller had set 200 at t2 > t1 and our write lands after it (t3):
	// Salesforce's observations are 200@t2, then our echo 300@t3.
	s := start()
	run(t, s, []event{{PartnerCenter, "300", at(1)}})
	run(t, s, []event{{Salesforce, "200", at(2)}})
	if got := s.Fields["Amount"].Value; got != "200" {
		t.Fatalf("after the seller's edit agreed %s, want 200", got)
	}
	// The echo of our older write is recognised, not taken for a change.
	out := s.Observe(Salesforce, map[string]string{"Amount": "300"}, at(3), latest)
	if len(out.Changes) != 0 || len(out.Echoes) != 1 {
		t.Fatalf("echo observed as %+v", out)
	}
	// Salesforce still has our second write (200) pending, so it is not
	// sent again; Partner Center is sent 200.
	if need := s.Needs(Salesforce, nil); len(need) != 0 {
		t.Errorf("Salesforce needs %v", need)
	}
	if v, _ := s.Expected(PartnerCenter, "Amount"); v != "200" {
		t.Errorf("Partner Center will hold %s, want 200", v)
	}
}

func TestOwnEchoIsNoChange(t *testing.T) {
	s := start()
	s.Observe(Salesforce, map[string]string{"Amount": "150"}, at(1), latest)
	s.Sent(PartnerCenter, "patch-1", s.Needs(PartnerCenter, nil))
	out := s.Observe(PartnerCenter, map[string]string{"Amount": "150"}, at(2), latest)
	if len(out.Changes) != 0 || len(out.Echoes) != 1 || s.HasPending(PartnerCenter) {
		t.Errorf("echo = %+v, pending %v", out, s.Pending)
	}
	if need := s.Needs(Salesforce, nil); len(need) != 0 {
		t.Errorf("the echo makes Salesforce need %v", need)
	}
}

func TestOwnership(t *testing.T) {
	tests := []struct {
		owner Owner
		side  Side
		want  string
	}{
		{OwnerSalesforce, Salesforce, "7"},
		{OwnerSalesforce, PartnerCenter, "100"},
		{OwnerPartnerCenter, Salesforce, "100"},
		{OwnerPartnerCenter, PartnerCenter, "7"},
		{OwnerPartnerCenter, Microsoft, "7"},
	}
	for _, tc := range tests {
		s := start()
		if tc.side == Microsoft {
			s.Observe(Microsoft, map[string]string{"Amount": "100"}, at(1), latest)
		}
		out := s.Observe(tc.side, map[string]string{"Amount": "7"}, at(5), func(string) Owner { return tc.owner })
		if got := s.Fields["Amount"].Value; got != tc.want {
			t.Errorf("%s owns, %s changes: agreed %s, want %s (%+v)", tc.owner, tc.side, got, tc.want, out)
		}
		if tc.want == "100" {
			// The loser is told back the owner's value.
			if need := s.Needs(tc.side, nil); need["Amount"] != "100" {
				t.Errorf("%s owns: %s needs %v", tc.owner, tc.side, need)
			}
			if len(out.Conflicts) != 1 {
				t.Errorf("conflict not reported: %+v", out)
			}
		}
	}
}

func TestMicrosoftsFirstLookIsABaseline(t *testing.T) {
	s := start()
	out := s.Observe(Microsoft, map[string]string{"Amount": "100", "Microsoft_CRM_Identifier__c": `"7-ABC"`}, at(1), latest)
	if s.Fields["Amount"].Value != "100" {
		t.Errorf("Microsoft's starting value replaced the agreed one")
	}
	if len(out.Changes) != 1 || out.Changes[0].Field != "Microsoft_CRM_Identifier__c" {
		t.Errorf("changes = %+v, want only the new CRM id", out.Changes)
	}
	// A later edit by a Microsoft seller is a change.
	s.Observe(Microsoft, map[string]string{"Amount": "500"}, at(2), latest)
	if s.Fields["Amount"].Value != "500" {
		t.Errorf("Microsoft seller's edit not applied")
	}
	if need := s.Needs(PartnerCenter, nil); need["Amount"] != "500" {
		t.Errorf("partner's referral needs %v", need)
	}
}

func TestForgetAndBaseline(t *testing.T) {
	s := start()
	s.Observe(Salesforce, map[string]string{"Amount": "150"}, at(1), latest)
	s.Sent(PartnerCenter, "p1", map[string]string{"Amount": "150"})
	s.Forget(PartnerCenter, "p1")
	if s.HasPending(PartnerCenter) {
		t.Error("forgotten write still pending")
	}
	if need := s.Needs(PartnerCenter, nil); need["Amount"] != "150" {
		t.Errorf("after a failed write Partner Center needs %v", need)
	}
	// A create's result: the referral's own status is a baseline, not a
	// change that would move the seller's stage.
	s.Sent(PartnerCenter, "create", map[string]string{"Amount": "150"})
	s.Baseline(PartnerCenter, map[string]string{"Amount": "150", "StageName": `"Qualification"`}, at(2), "create")
	if s.HasPending(PartnerCenter) || s.Fields["StageName"].Value != `"Qualification"` {
		t.Errorf("baseline: %+v / %+v", s.Pending, s.Fields["StageName"])
	}
}

func TestFirstSightIsNotSentToASideThatNeverSpoke(t *testing.T) {
	s := &State{}
	s.Observe(PartnerCenter, map[string]string{"Amount": "1"}, at(1), latest)
	s.Observe(Salesforce, map[string]string{"Amount": "1", "Name": `"Truncated"`}, at(2), latest)
	if s.Known(PartnerCenter, "Name") {
		t.Error("a name only ever seen in Salesforce is sent to Partner Center")
	}
	s.Observe(Salesforce, map[string]string{"Name": `"Renamed"`}, at(3), latest)
	if !s.Known(PartnerCenter, "Name") {
		t.Error("the seller's rename is not sent to Partner Center")
	}
}

func TestMicrosoftsFirstLookComparesWithThePartnersFirstReferral(t *testing.T) {
	// The partner's referral arrived with 100; Microsoft's referral (a
	// copy) was edited to 500 before the mapper first saw it.
	s := start()
	s.Observe(Microsoft, map[string]string{"Amount": "500", "Notes": `"same"`}, at(3), latest)
	if s.Fields["Amount"].Value != "500" {
		t.Errorf("the Microsoft seller's edit seen at the first look was lost: %s", s.Fields["Amount"].Value)
	}
	// Unchanged since the copy: no change, even if the partner side moved on.
	s2 := start()
	s2.Observe(Salesforce, map[string]string{"Amount": "250"}, at(2), latest)
	s2.Observe(Microsoft, map[string]string{"Amount": "100"}, at(5), latest)
	if s2.Fields["Amount"].Value != "250" {
		t.Errorf("Microsoft's untouched copy overwrote a later change: %s", s2.Fields["Amount"].Value)
	}
}

// A conditional write is settled by the first observation of a version
// later than its base: what came back is our echo, what did not was
// overwritten since (or the write is refused) and is no longer pending, so
// a later edit back to our value is a change. Older versions, the base
// itself and unconditional writes leave it pending.
func TestConditionalWriteIsSettledByALaterVersion(t *testing.T) {
	s := start()
	s.Observe(PartnerCenter, map[string]string{"Amount": "300"}, at(1), latest)
	s.SentConditional(Salesforce, "w1", map[string]string{"Amount": "300"}, t0)
	s.Sent(Salesforce, "w0", map[string]string{"Stage": "Won"}) // unconditional

	if out := s.Observe(Salesforce, map[string]string{"Amount": "100"}, t0, latest); len(out.Changes) != 0 || !s.HasPending(Salesforce) {
		t.Fatalf("the base version again: %+v, pending %v", out, s.Pending)
	}
	// The seller saved 310 before the poll read the record: our 300 never
	// shows on its own.
	out := s.Observe(Salesforce, map[string]string{"Amount": "310"}, at(3), latest)
	if len(out.Changes) != 1 || out.Changes[0].New != "310" {
		t.Fatalf("seller's 310: %+v", out)
	}
	if got := s.Pending[Salesforce]; len(got) != 1 || got[0].Command != "w0" {
		t.Fatalf("pending after a later version: %+v, want only the unconditional w0", got)
	}
	out = s.Observe(Salesforce, map[string]string{"Amount": "300"}, at(4), latest)
	if len(out.Echoes) != 0 || len(out.Changes) != 1 || out.Changes[0].New != "300" || s.Agreed()["Amount"] != "300" {
		t.Errorf("seller back to 300: %+v, agreed %v; want a change", out, s.Agreed())
	}

	// A write whose echo is the later version is consumed as before.
	s.Observe(PartnerCenter, map[string]string{"Amount": "500"}, at(5), latest)
	s.SentConditional(Salesforce, "w2", map[string]string{"Amount": "500"}, at(4))
	if out := s.Observe(Salesforce, map[string]string{"Amount": "500"}, at(6), latest); len(out.Echoes) != 1 || len(out.Changes) != 0 {
		t.Errorf("echo of w2: %+v", out)
	}
	if got := s.Pending[Salesforce]; len(got) != 1 || got[0].Command != "w0" {
		// w0 wrote another field: its echo may still come.
		t.Errorf("pending after w2's echo: %+v, want only w0", got)
	}
	s.Forget(Salesforce, "w0")

	// A write whose values the record already shows is settled too, and
	// with it an older unconditional write whose echo never showed (the
	// create's "On Hold", say): left pending, it would make the state
	// expect the old value and send the agreed one again after every poll.
	s.Sent(Salesforce, "create", map[string]string{"Stage": "On Hold"})
	s.Observe(Salesforce, map[string]string{"Stage": "Qualification"}, at(7), latest)
	s.SentConditional(Salesforce, "w3", map[string]string{"Stage": "Qualification"}, at(7))
	s.Observe(Salesforce, map[string]string{"Stage": "Qualification"}, at(8), latest)
	if s.HasPending(Salesforce) || len(s.Needs(Salesforce, nil)) != 0 {
		t.Errorf("after the echo of w3: pending %+v, needs %v; want neither", s.Pending, s.Needs(Salesforce, nil))
	}

	// An older write of a field a settled write did not show is left to
	// its own echo: it may still be on its way (the settled write was
	// refused because the record moved on).
	s.Sent(Salesforce, "w4", map[string]string{"Amount": "600"})
	s.SentConditional(Salesforce, "w5", map[string]string{"Amount": "700"}, at(8))
	s.Observe(Salesforce, map[string]string{"Amount": "650"}, at(9), latest) // a seller's save: w5 is refused
	if got := s.Pending[Salesforce]; len(got) != 1 || got[0].Command != "w4" {
		t.Fatalf("pending after the seller's save: %+v, want only w4", got)
	}
	if out := s.Observe(Salesforce, map[string]string{"Amount": "600"}, at(10), latest); len(out.Echoes) != 1 {
		t.Errorf("w4 landing after the save: %+v, want our echo", out)
	}
}

// The base survives the state's JSON (it is stored on the link); states
// written before it existed read as unconditional writes.
func TestWriteBaseRoundTrips(t *testing.T) {
	s := start()
	s.SentConditional(Salesforce, "w1", map[string]string{"Amount": "300"}, at(2))
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Pending[Salesforce]; len(got) != 1 || !got[0].Base.Equal(at(2)) {
		t.Errorf("round trip: %+v from %s", got, b)
	}
	var old State
	if err := json.Unmarshal([]byte(`{"pending":{"sf":[{"cmd":"w1","values":{"Amount":"300"}}]}}`), &old); err != nil {
		t.Fatal(err)
	}
	old.Observe(Salesforce, map[string]string{"Amount": "310"}, at(9), latest)
	if !old.HasPending(Salesforce) {
		t.Error("an old, unconditional write was settled")
	}
	s2 := start()
	s2.Sent(Salesforce, "w", map[string]string{"Amount": "7"})
	if b, _ := json.Marshal(s2); strings.Contains(string(b), "base") {
		t.Errorf("an unconditional write stores a base: %s", b)
	}
}
