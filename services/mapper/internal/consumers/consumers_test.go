package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/mapper/internal/consumers"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// waitGuard bounds waiting for the consumers; reaching it is a failure.
const waitGuard = 30 * time.Second

// replica is one mapper process: its own bus connection and pool.
func replica(t *testing.T, url, dsn string, m *mapping.Config) (*bus.Conn, *syncer.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	conn, err := bus.Connect(ctx, url, "mapper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pool := storetest.Open(t, dsn)
	svc, err := syncer.New(pool, conn, m, slog.New(slog.NewJSONHandler(io.Discard, nil)),
		tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider(), "mapper")
	if err != nil {
		t.Fatal(err)
	}
	return conn, svc
}

// TestTwoReplicasShareTheDurableConsumer runs two replicas on the shared
// durable consumer and sends every snapshot of one referral three times
// (distinct message ids, as webhook + sweep + related event would), out of
// order: one link, and no snapshot produces two different commands.
func TestTwoReplicasShareTheDurableConsumer(t *testing.T) {
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: "mapper", FS: storetest.RepoMigrations(t, "mapper")})
	url := bustest.RunServer(t)
	m, err := mapping.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var conns []*bus.Conn
	for range 2 {
		conn, svc := replica(t, url, dsn, m)
		conns = append(conns, conn)
		wg.Go(func() {
			if err := conn.Consume(ctx, consumers.Referrals(8), consumers.ObservedHandler(svc)); err != nil {
				t.Errorf("Consume: %v", err)
			}
		})
	}

	const id = "7b0d2c1e-1111-4a2b-8c3d-000000000001"
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sent := 0
	for copy := range 3 {
		for _, v := range []int{4, 1, 3, 2} {
			at := t0.Add(time.Duration(v) * time.Minute)
			doc, _ := json.Marshal(map[string]any{"id": id, "name": "Deal", "status": "New", "substatus": "Pending",
				"organizationId": "partner", "customerProfile": map[string]any{"name": "Acme"},
				"details": map[string]any{"dealValue": v * 100, "currency": "USD", "closingDateTime": "2026-09-30T00:00:00Z"}})
			ev := &cosellv1.ReferralObserved{ReferralId: id, UpdatedAt: timestamppb.New(at), ReferralJson: doc}
			if err := conns[0].Publish(ctx, bus.SubjectReferralObserved, fmt.Sprintf("obs-%d-%d", v, copy), ev); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}

	pool := storetest.Open(t, dsn)
	deadline := time.Now().Add(waitGuard)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM mapper.inbox WHERE consumer = $1`, syncer.ConsumerReferrals).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d snapshots handled", n, sent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	if n := countRows(t, pool, `SELECT count(*) FROM mapper.links`); n != 1 {
		t.Fatalf("%d links, want 1", n)
	}
	// Every command on the stream is distinct per snapshot.
	cctx, ccancel := context.WithTimeout(context.Background(), waitGuard)
	defer ccancel()
	cons, err := conns[1].JetStream().OrderedConsumer(cctx, bus.StreamSalesforceCommands, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	bySnapshot := map[time.Time]string{}
	for msg := range batch.Messages() {
		var c cosellv1.UpsertOpportunityCommand
		if err := proto.Unmarshal(msg.Data(), &c); err != nil {
			t.Fatal(err)
		}
		at := c.GetSourceUpdatedAt().AsTime()
		if prev, ok := bySnapshot[at]; ok && prev != c.GetCommandId() {
			t.Errorf("snapshot %v produced %s and %s", at, prev, c.GetCommandId())
		}
		bySnapshot[at] = c.GetCommandId()
	}
	newest := t0.Add(4 * time.Minute)
	if _, ok := bySnapshot[newest]; !ok {
		t.Errorf("no command for the newest snapshot; commands for %v", bySnapshot)
	}
	var last string
	if err := pool.QueryRow(context.Background(), `SELECT command_id FROM mapper.links WHERE referral_id = $1`, id).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if last != syncer.CommandID(id, newest) {
		t.Errorf("link's last command %s, want the newest snapshot's", last)
	}
}

func countRows(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
