package bus_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
)

// defaultTestDatabaseURL is the local server the Makefile and CI start.
const defaultTestDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// pgTx returns a transaction on the test server in a private schema that
// holds the dead_letters table; everything is rolled back when the test
// ends, so nothing is left behind and parallel runs do not meet.
func pgTx(t *testing.T) pgx.Tx {
	t.Helper()
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		url = defaultTestDatabaseURL
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to Postgres (set TEST_DATABASE_URL): %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "bus_test_" + hex.EncodeToString(b[:])
	for _, stmt := range []string{
		"CREATE SCHEMA " + schema,
		"SET LOCAL search_path = " + schema,
		bus.DeadLettersTableSQL,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return tx
}

func TestPgDeadLetterSink(t *testing.T) {
	tx := pgTx(t)
	ctx := context.Background()
	sink := bus.NewPgDeadLetterSink(tx)
	failedAt := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	dl := bus.DeadLetter{
		Service: "mapper", Consumer: "mapper-referrals", Stream: bus.StreamReferrals, StreamSeq: 42,
		Subject: bus.SubjectReferralObserved, MsgID: "m-1", Deliveries: 5, Reason: "no stage for status Closed",
		Headers:  map[string][]string{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
		Payload:  []byte{0, 1, 2, 0xff},
		TraceID:  "0af7651916cd43dd8448eb211c80319c",
		FailedAt: failedAt,
	}
	for range 2 { // a repeat of the same message is ignored
		if err := sink.Record(ctx, dl); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	other := dl
	other.StreamSeq, other.FailedAt, other.Headers, other.Payload = 43, failedAt.Add(time.Minute), nil, nil
	if err := sink.Record(ctx, other); err != nil {
		t.Fatalf("Record without headers and payload: %v", err)
	}

	pending, err := sink.Pending(ctx, 10)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	if len(pending) != 2 {
		t.Fatalf("pending = %d rows, want 2", len(pending))
	}
	got := pending[0]
	if got.StreamSeq != 42 || got.Service != "mapper" || got.Consumer != "mapper-referrals" || got.Deliveries != 5 ||
		got.Reason != dl.Reason || got.MsgID != "m-1" || got.TraceID != dl.TraceID || !got.FailedAt.Equal(failedAt) ||
		string(got.Payload) != string(dl.Payload) || got.Headers["traceparent"][0] != dl.Headers["traceparent"][0] || got.ReplayedAt != nil {
		t.Errorf("stored %+v, want %+v", got, dl)
	}
	if pending[1].StreamSeq != 43 {
		t.Errorf("pending not oldest first: %+v", pending[1])
	}

	ok, err := sink.MarkReplayed(ctx, got.ID)
	if err != nil || !ok {
		t.Fatalf("MarkReplayed = %v, %v", ok, err)
	}
	if ok, err := sink.MarkReplayed(ctx, got.ID); err != nil || ok {
		t.Fatalf("second MarkReplayed = %v, %v; want false", ok, err)
	}
	pending, err = sink.Pending(ctx, 10)
	if err != nil || len(pending) != 1 || pending[0].StreamSeq != 43 {
		t.Fatalf("after replay, pending = %+v, %v", pending, err)
	}
}

func TestPgDeadLetterSinkThroughConsume(t *testing.T) {
	tx := pgTx(t)
	sink := bus.NewPgDeadLetterSink(tx)
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	conn, err := bus.Connect(ctx, bustest.RunServer(t), "mapper", bus.WithDeadLetterSink(sink))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(ctx, bus.SubjectReferralObserved, "m-perm", referral("r-9")); err != nil {
		t.Fatal(err)
	}
	parked, err := conn.JetStream().OrderedConsumer(ctx, bus.StreamDeadLetters, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}

	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- conn.Consume(cctx, bus.ConsumerSpec{Stream: bus.StreamReferrals, Durable: "mapper-referrals", Concurrency: 1},
			func(context.Context, *bus.Msg) error { return bus.Permanent(errors.New("no stage for status Closed")) })
	}()
	// The dead letter is published before it is recorded; wait for the
	// publish, then stop the consumer so the (single-connection)
	// transaction is free to read.
	if _, err := parked.Next(jetstream.FetchMaxWait(waitGuard)); err != nil {
		t.Fatalf("no dead letter published: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, err := sink.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("recorded %d dead letters, want 1", len(rows))
	}
	if r := rows[0]; r.MsgID != "m-perm" || !r.Permanent || r.Reason != "no stage for status Closed" || r.Service != "mapper" || r.Stream != bus.StreamReferrals {
		t.Fatalf("recorded %+v", r)
	}
}
