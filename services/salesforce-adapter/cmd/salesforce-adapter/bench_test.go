package main

import (
	"context"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// BenchmarkServiceUpserts runs the whole service (JetStream consumer,
// batcher, account cache, Salesforce client, result publishing) against
// the emulator with production settings: b.N commands are published, and
// the benchmark ends when all b.N results are in. It reports Salesforce
// calls per command and commands per second end to end.
func BenchmarkServiceUpserts(b *testing.B) {
	s := startStack(b, sfemutest.Options{}, map[string]string{"LOG_LEVEL": "error"})
	ctx := context.Background()
	s.emu.ResetCounters()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		cmd := upsertCommand(i, goodFields)
		if i%4 == 0 {
			cmd.Account = &cosellv1.Account{Name: "Bench customer " + string(rune('A'+i%26)), Country: "US"}
		}
		s.publish(b, ctx, cmd)
	}
	results := s.collect(b, b.N)
	elapsed := time.Since(start)
	b.StopTimer()
	for id, r := range results {
		if r.res.GetOutcome() != cosellv1.Outcome_OUTCOME_OK {
			b.Fatalf("result %s = %v", id, r.res)
		}
	}
	var calls int64
	for _, n := range s.emu.Counters().Counted {
		calls += n
	}
	b.ReportMetric(float64(calls)/float64(b.N), "calls/cmd")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
}
