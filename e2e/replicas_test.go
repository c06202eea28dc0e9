package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/e2e/stack"
)

// sweepLease is the partnercenter-adapter's lease name (its README).
const sweepLease = "partnercenter-adapter/sweep"

// TestTwoReplicas runs two replicas of every service (webhooks balanced
// over both ingress replicas, a sweep every second) → still exactly one
// opportunity per referral, and one sweep at a time, taken over by the
// other replica when the holder is killed.
func TestTwoReplicas(t *testing.T) {
	sys := startSystem(t, "replicas", options{replicas: 2, sweep: time.Second, recorder: true})
	ctx := testCtx(t, 2*time.Minute)

	// Duplicate a third of the notifications so replicas race on the same referral.
	if _, err := sys.pc.AddWebhookFault(ctx, stack.WebhookFault{Kind: "duplicate", Rate: 0.33}); err != nil {
		t.Fatal(err)
	}
	const n = 30
	run := fmt.Sprintf("Replicas%d", time.Now().UnixNano()%100000)
	seeded, err := stack.SeedInbound(ctx, sys.pc, run, n, 4, 0)
	if err != nil {
		t.Fatalf("seed referrals: %v", err)
	}
	if err := sys.pc.ClearWebhookFaults(ctx); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i, sd := range seeded {
		ids[i] = sd.ReferralID
	}
	sys.eventually(t, 60*time.Second, "an opportunity for every referral", func() (bool, string) {
		counts, err := sys.countByReferral(ctx, ids)
		if err != nil {
			return false, err.Error()
		}
		for _, id := range ids {
			if counts[id] == 0 {
				return false, fmt.Sprintf("%d of %d done; %s: %s", len(counts), n, id, sys.linkState(ctx, id))
			}
		}
		return true, ""
	})
	sys.waitIdle(t, ctx, 30*time.Second)
	counts, err := sys.countByReferral(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if counts[id] != 1 {
			t.Errorf("referral %s has %d opportunities, want 1", id, counts[id])
		}
	}
	if c, err := sys.sf.Count(ctx, "SELECT COUNT() FROM Opportunity WHERE Name LIKE "+stack.QuoteSOQL(run+" %")); err != nil || c != n {
		t.Errorf("the run has %d opportunities (%v), want %d %s", c, err, n, sys.logs())
	}
	// Both ingress replicas took deliveries.
	byTarget := map[string]int{}
	for _, r := range sys.rec.Recorded() {
		byTarget[r.Target]++
	}
	if len(byTarget) != 2 {
		t.Errorf("deliveries per ingress replica: %v, want both replicas used", byTarget)
	}

	// One sweep at a time: exactly one replica holds the sweep lease (the
	// other waits on it), and only that replica's log says it acquired it.
	holder := sys.sweepHolder(t, ctx)
	other := "partnercenter-adapter-1"
	if holder == other {
		other = "partnercenter-adapter-2"
	}
	started := sys.lastSweepStart(t, ctx)
	sys.eventually(t, 10*time.Second, "the holder to keep sweeping", func() (bool, string) {
		now := sys.lastSweepStart(t, ctx)
		return now.After(started), fmt.Sprintf("last sweep started at %s", now)
	})

	// The holder dies: the other replica takes the lease and sweeps on.
	sys.Process(holder).Kill()
	sys.eventually(t, 20*time.Second, other+" to take over the sweep lease", func() (bool, string) {
		granted, waiting := sys.leaseLocks(t, ctx)
		acq := sys.leaseAcquisitions(t, other)
		return granted == 1 && acq == 1, fmt.Sprintf("%d granted, %d waiting, %s acquired it %d times", granted, waiting, other, acq)
	})
	started = sys.lastSweepStart(t, ctx)
	sys.eventually(t, 10*time.Second, other+" to sweep", func() (bool, string) {
		now := sys.lastSweepStart(t, ctx)
		return now.After(started), fmt.Sprintf("last sweep started at %s", now)
	})
	if err := sys.Restart(ctx, holder); err != nil {
		t.Fatalf("restart %s: %v %s", holder, err, sys.logs())
	}
	sys.eventually(t, 10*time.Second, "the restarted replica to wait for the lease", func() (bool, string) {
		granted, waiting := sys.leaseLocks(t, ctx)
		return granted == 1 && waiting == 1, fmt.Sprintf("%d granted, %d waiting", granted, waiting)
	})
	if acq := sys.leaseAcquisitions(t, holder); acq != 1 {
		t.Errorf("%s acquired the sweep lease %d times in its log, want 1 (before the kill only)", holder, acq)
	}
}

// sweepHolder waits until one replica holds the sweep lease and the other
// waits for it, and returns the holder's process name.
func (s *system) sweepHolder(t *testing.T, ctx context.Context) string {
	t.Helper()
	var holder string
	s.eventually(t, 10*time.Second, "one holder of the sweep lease and one waiter", func() (bool, string) {
		granted, waiting := s.leaseLocks(t, ctx)
		a1, a2 := s.leaseAcquisitions(t, "partnercenter-adapter-1"), s.leaseAcquisitions(t, "partnercenter-adapter-2")
		switch {
		case a1 == 1 && a2 == 0:
			holder = "partnercenter-adapter-1"
		case a1 == 0 && a2 == 1:
			holder = "partnercenter-adapter-2"
		default:
			holder = ""
		}
		return granted == 1 && waiting == 1 && holder != "",
			fmt.Sprintf("advisory lock %s: %d granted, %d waiting; acquisitions logged: replica 1 %d, replica 2 %d", sweepLease, granted, waiting, a1, a2)
	})
	return holder
}

// leaseLocks counts the granted and waiting Postgres advisory locks of the
// sweep lease in the stack's database.
func (s *system) leaseLocks(t *testing.T, ctx context.Context) (granted, waiting int) {
	t.Helper()
	h := fnv.New64a()
	h.Write([]byte(sweepLease))
	key := h.Sum64()
	rows, err := s.db.Rows(ctx, `SELECT granted FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1`, int64(key>>32), int64(key&0xffffffff))
	if err != nil {
		t.Fatalf("read pg_locks: %v", err)
	}
	for _, r := range rows {
		if r["granted"] == true {
			granted++
		} else {
			waiting++
		}
	}
	return granted, waiting
}

// leaseAcquisitions counts "lease acquired" lines for the sweep lease in a
// replica's log.
func (s *system) leaseAcquisitions(t *testing.T, name string) int {
	t.Helper()
	f, err := os.Open(s.Process(name).LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "lease acquired") {
			continue
		}
		var line struct {
			Msg   string `json:"msg"`
			Lease string `json:"lease"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "lease acquired" && line.Lease == sweepLease {
			n++
		}
	}
	return n
}

// lastSweepStart reads when the last sweep started (partnercenter_adapter.cursors).
func (s *system) lastSweepStart(t *testing.T, ctx context.Context) time.Time {
	t.Helper()
	rows, err := s.db.Rows(ctx, "SELECT last_started_at FROM partnercenter_adapter.cursors WHERE name = 'sweep'")
	if err != nil {
		t.Fatalf("read cursors: %v", err)
	}
	if len(rows) == 0 {
		return time.Time{}
	}
	ts, _ := rows[0]["last_started_at"].(time.Time)
	return ts
}
