package syncer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// discard stands in for the broker, so the benchmark measures the mapper's
// own cost per message: decode, map, one Postgres transaction.
type discard struct{ n atomic.Int64 }

func (d *discard) Publish(context.Context, string, string, proto.Message) error {
	d.n.Add(1)
	return nil
}

// BenchmarkObserved handles snapshots of new referrals (the create path:
// inbox, link insert-and-lock, save with audit, commit) from parallel
// handlers, as MAPPER_MAX_CONCURRENCY does.
func BenchmarkObserved(b *testing.B) {
	pool := storetest.NewDB(b, "mapper", storetest.RepoMigrations(b, "mapper"))
	m, err := mapping.Default()
	if err != nil {
		b.Fatal(err)
	}
	pub := &discard{}
	svc, err := syncer.New(pool, pub, m, slog.New(slog.NewJSONHandler(io.Discard, nil)),
		tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider(), "mapper")
	if err != nil {
		b.Fatal(err)
	}
	template := snapshot(b, "x", 1, nil)
	var seq atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			ev := proto.Clone(template).(*cosellv1.ReferralObserved)
			ev.ReferralId = fmt.Sprintf("bench-%d", n)
			d := syncer.Delivery{MsgID: ev.ReferralId, Stream: bus.StreamReferrals, StreamSeq: n}
			if out, err := svc.Observed(context.Background(), d, ev); err != nil || out != syncer.OutcomeApplied {
				b.Errorf("Observed: %s %v", out, err)
				return
			}
		}
	})
	b.StopTimer()
	if pub.n.Load() != int64(b.N) {
		b.Errorf("%d commands for %d snapshots", pub.n.Load(), b.N)
	}
}

// BenchmarkOpportunityObserved handles observations of newly opted-in
// opportunities (the outbound create path: inbox, link insert-and-lock,
// the checks, the create body, save with audit, commit).
func BenchmarkOpportunityObserved(b *testing.B) {
	pool := storetest.NewDB(b, "mapper", storetest.RepoMigrations(b, "mapper"))
	m, err := mapping.Default()
	if err != nil {
		b.Fatal(err)
	}
	pub := &discard{}
	svc, err := syncer.New(pool, pub, m, slog.New(slog.NewJSONHandler(io.Discard, nil)),
		tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider(), "mapper")
	if err != nil {
		b.Fatal(err)
	}
	w := &world{at: time.Date(2026, 3, 7, 9, 0, 0, 0, time.UTC)}
	template := w.seedOpportunity(nil).opp
	var rec map[string]any
	if err := json.Unmarshal(template.GetRecordJson(), &rec); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			ev := proto.Clone(template).(*cosellv1.OpportunityObserved)
			ev.OpportunityId = fmt.Sprintf("006bench%010d", n)
			r := maps.Clone(rec)
			r["Id"] = ev.OpportunityId
			ev.RecordJson, _ = json.Marshal(r)
			d := syncer.Delivery{MsgID: ev.OpportunityId, Stream: bus.StreamOpportunities, StreamSeq: n}
			if out, err := svc.OpportunityObserved(context.Background(), d, ev); err != nil || out != syncer.OutcomeApplied {
				b.Errorf("OpportunityObserved: %s %v", out, err)
				return
			}
		}
	})
	b.StopTimer()
	if pub.n.Load() != int64(b.N) {
		b.Errorf("%d commands for %d observations", pub.n.Load(), b.N)
	}
}
