package poller_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// BenchmarkPollBacklog measures one poll that finds 2,000 changed
// opportunities (one full query page), publishes them and commits them,
// then a quiet poll that re-reads them all within the overlap and
// publishes nothing.
func BenchmarkPollBacklog(b *testing.B) {
	const n = 2000
	for range b.N {
		b.StopTimer()
		f := start(b, sfemutest.Options{})
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				f.emu.CreateRecord("Opportunity", opportunity(fmt.Sprintf("Backlog %d", i), map[string]any{"Sync_with_Partner_Center__c": true}))
			})
		}
		wg.Wait()
		p := f.newPoller(b, nil, nil)
		b.StartTimer()
		start := time.Now()
		run, err := p.Poll(context.Background())
		if err != nil || run.Published != n {
			b.Fatalf("poll = %+v, %v", run, err)
		}
		busy := time.Since(start)
		start = time.Now()
		run, err = p.Poll(context.Background())
		if err != nil || run.Published != 0 || run.Seen != n {
			b.Fatalf("quiet poll = %+v, %v", run, err)
		}
		quiet := time.Since(start)
		b.ReportMetric(float64(busy.Milliseconds()), "ms/backlog-poll")
		b.ReportMetric(float64(n)/busy.Seconds(), "records/s")
		b.ReportMetric(float64(quiet.Milliseconds()), "ms/overlap-poll")
	}
}
