package upsert_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// BenchmarkUpsertThroughBatcher pushes b.N upsert commands (one in four
// with a customer among 50) through the batcher against the emulator, with
// 400 submitters as the consumer would run them and the production batch
// settings, and reports Salesforce calls per command and commands per
// second.
func BenchmarkUpsertThroughBatcher(b *testing.B) {
	f := start(b, sfemutest.Options{}, upsert.Config{BatchWait: 5 * time.Millisecond}, 0)
	const submitters = 400
	cmds := make(chan upsert.Command)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range submitters {
		wg.Go(func() {
			for c := range cmds {
				o, err := f.batcher.Submit(b.Context(), c)
				if err != nil || o.Kind != upsert.OK {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	f.emu.ResetCounters()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		c := command(fmt.Sprintf("bench-%d", i), fmt.Sprintf("bench-ref-%d", i), "Benchmark deal")
		if i%4 == 0 {
			c.Customer = &accounts.Customer{Name: fmt.Sprintf("Bench customer %d", i%50), Country: "US"}
		}
		cmds <- c
	}
	close(cmds)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed > 0 {
		b.Fatalf("%d of %d commands failed", failed, b.N)
	}
	var calls int64
	for _, n := range f.emu.Counters().Counted {
		calls += n
	}
	b.ReportMetric(float64(calls)/float64(b.N), "calls/cmd")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
}
