package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
)

// benchConn connects to a fresh in-process server with the pipeline's
// streams, using the global (no-op unless installed) telemetry.
func benchConn(b *testing.B) *bus.Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := bus.Connect(ctx, bustest.RunServer(b), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	return conn
}

// BenchmarkPublish measures one durable, de-duplicated publish: the cost
// ingress pays before it may answer a webhook.
func BenchmarkPublish(b *testing.B) {
	conn := benchConn(b)
	ctx := context.Background()
	m := referral("r-bench")
	m.ReferralJson = make([]byte, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := conn.Publish(ctx, bus.SubjectReferralObserved, fmt.Sprint("b-", i), m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishConsume measures a publish followed by its processing and
// confirmed acknowledgement through Consume, with handlers in parallel.
func BenchmarkPublishConsume(b *testing.B) {
	conn := benchConn(b)
	ctx, cancel := context.WithCancel(context.Background())
	handled := make(chan struct{}, 1024)
	done := make(chan error, 1)
	go func() {
		done <- conn.Consume(ctx, bus.ConsumerSpec{Stream: bus.StreamReferrals, Durable: "bench", Concurrency: 16},
			func(context.Context, *bus.Msg) error { handled <- struct{}{}; return nil })
	}()
	m := referral("r-bench")
	m.ReferralJson = make([]byte, 1024)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := conn.Publish(context.Background(), bus.SubjectReferralObserved, fmt.Sprint("b-", n), m); err != nil {
			b.Fatal(err)
		}
		n++
	}
	for range n {
		<-handled
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
