package store_test

import (
	"context"
	"testing"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkTracedQuery measures one traced round trip through a NewPool
// pool (inside a recording span, as a consumer runs them): allocations
// per query are the tracer's share.
func BenchmarkTracedQuery(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	pool, err := store.NewPool(context.Background(), storetest.AdminURL(), store.WithTracerProvider(tp), store.WithMaxConns(1))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	ctx, span := tp.Tracer("b").Start(context.Background(), "root")
	defer span.End()
	for b.Loop() {
		var n int
		if err := pool.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
}
