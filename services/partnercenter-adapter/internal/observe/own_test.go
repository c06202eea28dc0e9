package observe

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
)

func TestOwnCreatesExpireAndStayBounded(t *testing.T) {
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	c := NewOwnCreates(time.Minute, 3)
	c.now = func() time.Time { return now }
	var nilSet *OwnCreates
	nilSet.Add("r0")
	if nilSet.Has("r0") {
		t.Error("a nil set holds an id")
	}
	c.Add("")
	c.Add("r1")
	if !c.Has("r1") || c.Has("r2") || c.Has("") {
		t.Fatalf("after adding r1: r1 %v, r2 %v, empty %v", c.Has("r1"), c.Has("r2"), c.Has(""))
	}
	now = now.Add(time.Minute + time.Second)
	if c.Has("r1") {
		t.Error("r1 outlived its TTL")
	}
	c.Add("r2") // drops the expired r1
	if c.Len() != 1 {
		t.Errorf("Len = %d after r1 expired, want 1", c.Len())
	}
	c.Add("r3")
	c.Add("r4")
	c.Add("r5") // the fourth live id evicts the oldest, r2
	if c.Has("r2") || !c.Has("r3") || !c.Has("r5") || c.Len() != 3 {
		t.Errorf("after r5: r2 %v r3 %v r5 %v, Len %d; want r2 evicted and 3 held", c.Has("r2"), c.Has("r3"), c.Has("r5"), c.Len())
	}
}

func TestOwnCreatesConcurrentUse(t *testing.T) {
	c := NewOwnCreates(time.Minute, 100)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				c.Add(fmt.Sprintf("r%d-%d", g, i))
				c.Has(fmt.Sprintf("r%d-%d", (g+1)%8, i))
			}
		})
	}
	wg.Wait()
	if c.Len() != 100 {
		t.Errorf("Len = %d, want the bound 100", c.Len())
	}
	for i := range 100 { // after the storm it still remembers the newest
		c.Add(fmt.Sprintf("s%d", i))
	}
	for i := range 100 {
		if !c.Has(fmt.Sprintf("s%d", i)) {
			t.Fatalf("s%d, among the newest 100, is not held", i)
		}
	}
}

type countingReferrals struct {
	mu   sync.Mutex
	gets []string
}

func (r *countingReferrals) GetReferral(_ context.Context, id string) (pcclient.Referral, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gets = append(r.gets, id)
	return pcclient.Referral{ID: id, EngagementID: "e-" + id, UpdatedAt: time.Now(), ETag: `"1"`, Raw: []byte(`{"id":"` + id + `"}`)}, nil
}

type countingPublisher struct {
	mu   sync.Mutex
	msgs []string
}

func (p *countingPublisher) Publish(_ context.Context, _, msgID string, _ proto.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msgID)
	return nil
}

// The referral-created notification of a referral this adapter created is
// acknowledged without a read; every other notification is read and
// published as before.
func TestNotificationOfOwnCreateIsNotRead(t *testing.T) {
	refs, pub := &countingReferrals{}, &countingPublisher{}
	o, err := New(refs, pub, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	own := NewOwnCreates(0, 0)
	o.SkipOwnCreates(own)
	own.Add("mine")
	for _, n := range []struct{ event, id string }{
		{"referral-created", "mine"},         // skipped
		{"referral-created", "mine"},         // a redelivery: skipped too
		{"referral-updated", "mine"},         // a later change: read
		{"related-referral-created", "mine"}, // not the partner's own event: read
		{"referral-created", "theirs"},       // Microsoft's or by hand: read
	} {
		if err := o.Notification(context.Background(), &cosellv1.PartnerCenterNotification{EventName: n.event, ReferralId: n.id}); err != nil {
			t.Fatalf("%s %s: %v", n.event, n.id, err)
		}
	}
	if want := []string{"mine", "mine", "theirs"}; fmt.Sprint(refs.gets) != fmt.Sprint(want) {
		t.Errorf("GETs %v, want %v", refs.gets, want)
	}
	if len(pub.msgs) != 3 {
		t.Errorf("published %d snapshots, want 3", len(pub.msgs))
	}
}
