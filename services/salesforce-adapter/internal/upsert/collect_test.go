package upsert

import (
	"testing"
	"time"
)

func pendingItem(seq uint64, field, ref string, arrived time.Time) *item {
	c := Command{ID: ref, ReferralID: ref, ExternalIDField: field}
	return &item{cmd: c, key: itemKey(c), seq: seq, arrived: arrived, done: make(chan Outcome, 1)}
}

func TestPlanWaitsThenFlushes(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := &collector{busy: map[string]bool{}}
	c.pending = []*item{pendingItem(1, "F", "a", t0), pendingItem(2, "F", "b", t0)}
	bt, wake := c.plan(t0.Add(time.Millisecond), 200, 5*time.Millisecond)
	if bt != nil || !wake.Equal(t0.Add(5*time.Millisecond)) {
		t.Fatalf("plan = %v, wake %v; want to wait until the oldest's deadline", bt, wake)
	}
	bt, _ = c.plan(t0.Add(5*time.Millisecond), 200, 5*time.Millisecond)
	if bt == nil || len(bt.groups) != 2 {
		t.Fatalf("plan at deadline = %+v, want both", bt)
	}
}

func TestPlanFlushesFullBatchAtOnce(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := &collector{busy: map[string]bool{}}
	for i := range 5 {
		c.pending = append(c.pending, pendingItem(uint64(i), "F", string(rune('a'+i)), t0))
	}
	bt, _ := c.plan(t0, 3, time.Hour)
	if bt == nil || len(bt.groups) != 3 {
		t.Fatalf("plan = %+v, want a full batch of 3", bt)
	}
	c.take(bt)
	if len(c.pending) != 2 || !c.busy[bt.groups[0].key] {
		t.Fatalf("after take: %d pending, busy %v", len(c.pending), c.busy)
	}
}

func TestPlanSkipsBusyReferralsAndOtherFields(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := &collector{busy: map[string]bool{}}
	busy := pendingItem(1, "F", "Busy", t0)
	c.busy[busy.key] = true
	c.pending = []*item{busy, pendingItem(2, "G", "x", t0), pendingItem(3, "F", "y", t0), pendingItem(4, "G", "z", t0)}
	bt, _ := c.plan(t0.Add(time.Second), 200, time.Millisecond)
	if bt == nil || bt.field != "G" || len(bt.groups) != 2 {
		t.Fatalf("plan = %+v, want the two G records (oldest free field)", bt)
	}
	for _, g := range bt.groups {
		if g.key == busy.key {
			t.Fatal("a busy referral was batched")
		}
	}
}

func TestPlanMergesSameReferralKeepingNewest(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := &collector{busy: map[string]bool{}}
	a := pendingItem(1, "F", "ref", t0)
	a.cmd.SourceUpdatedAt = t0.Add(time.Hour)
	b := pendingItem(2, "F", "REF", t0)
	b.cmd.SourceUpdatedAt = t0
	d := pendingItem(3, "F", "ref", t0)
	d.cmd.SourceUpdatedAt = t0.Add(time.Hour)
	c.pending = []*item{a, b, d}
	bt, _ := c.plan(t0.Add(time.Second), 200, time.Millisecond)
	if bt == nil || len(bt.groups) != 1 || len(bt.groups[0].items) != 3 || bt.groups[0].winner != d {
		t.Fatalf("plan = %+v, want one group won by the latest of the newest", bt)
	}
}

func TestPromoteDueRequeuesAheadAndFreesKey(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := &collector{busy: map[string]bool{}}
	old := pendingItem(1, "F", "r", t0)
	c.busy[old.key] = true
	c.delayed = []delayed{{at: t0.Add(time.Second), key: old.key, items: []*item{old}}}
	c.pending = []*item{pendingItem(2, "F", "s", t0)}
	c.promoteDue(t0)
	if len(c.delayed) != 1 || !c.busy[old.key] {
		t.Fatal("retry promoted before its time")
	}
	c.promoteDue(t0.Add(time.Second))
	if len(c.delayed) != 0 || c.busy[old.key] || c.pending[0] != old {
		t.Fatalf("after promotion: delayed %d, busy %v, first %v", len(c.delayed), c.busy, c.pending[0].cmd.ID)
	}
}

func TestPlanKeepsUpdatesApartFromUpsertsAndOnePerOpportunity(t *testing.T) {
	t0 := time.Unix(100, 0)
	c := &collector{busy: map[string]bool{}}
	upd := func(seq uint64, opp string) *item {
		cmd := Command{ID: opp, OpportunityID: opp, ExternalIDField: "F"}
		return &item{cmd: cmd, key: itemKey(cmd), seq: seq, arrived: t0, done: make(chan Outcome, 1)}
	}
	c.pending = []*item{upd(1, "006a"), pendingItem(2, "F", "x", t0), upd(3, "006a"), upd(4, "006b")}
	bt, _ := c.plan(t0.Add(time.Second), 200, time.Millisecond)
	if bt == nil || bt.field != byID || len(bt.groups) != 2 || len(bt.groups[0].items) != 1 || bt.groups[0].items[0].seq != 1 {
		t.Fatalf("plan = %+v, want the first update of 006a and the one of 006b", bt)
	}
	c.take(bt)
	bt, _ = c.plan(t0.Add(time.Second), 200, time.Millisecond)
	if bt == nil || bt.field != "F" || len(bt.groups) != 1 {
		t.Fatalf("next plan = %+v, want the upsert (006a's second update waits for the first)", bt)
	}
}
