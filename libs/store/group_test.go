package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/cosell/cosell/libs/store/storetest"
)

func groupDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return storetest.NewDB(t, "storetest", os.DirFS("testdata/migrations"))
}

// insertItem returns a function that inserts item id with qty, counts its
// runs and records the transaction it ran in.
func insertItem(id, qty int, runs *int, txid *int64) func(tx pgx.Tx) error {
	return func(tx pgx.Tx) error {
		*runs++
		if err := tx.QueryRow(context.Background(), "SELECT txid_current()").Scan(txid); err != nil {
			return err
		}
		_, err := tx.Exec(context.Background(), "INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)", id, fmt.Sprint("item-", id), qty)
		return err
	}
}

func items(t *testing.T, pool *pgxpool.Pool) []int {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT id FROM items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestGroupBatchSharesOneTransaction(t *testing.T) {
	pool := groupDB(t)
	g := &Group{db: pool, maxBatch: 8, log: slog.New(slog.DiscardHandler)}
	runs, txids := make([]int, 4), make([]int64, 4)
	var batch []*groupReq
	for i := range 4 {
		batch = append(batch, &groupReq{ctx: t.Context(), fn: insertItem(i+1, 1, &runs[i], &txids[i]), done: make(chan error, 1)})
	}
	g.run(batch)
	for i, r := range batch {
		if err := <-r.done; err != nil {
			t.Fatalf("function %d: %v", i, err)
		}
		if runs[i] != 1 || txids[i] != txids[0] {
			t.Errorf("function %d ran %d times in transaction %d, want once in %d", i, runs[i], txids[i], txids[0])
		}
	}
	if got := items(t, pool); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("items = %v, want all four committed", got)
	}
	if s := g.Stats(); s != (GroupStats{Transactions: 1, Functions: 4}) {
		t.Errorf("stats = %+v", s)
	}
}

// One failing function rolls the shared transaction back; every function
// then runs alone, so the others commit and only the bad one fails.
func TestGroupBatchFallsBackToOneTransactionEach(t *testing.T) {
	pool := groupDB(t)
	g := &Group{db: pool, maxBatch: 8, log: slog.New(slog.DiscardHandler)}
	runs, txids := make([]int, 3), make([]int64, 3)
	batch := []*groupReq{
		{ctx: t.Context(), fn: insertItem(1, 1, &runs[0], &txids[0]), done: make(chan error, 1)},
		{ctx: t.Context(), fn: insertItem(2, -1, &runs[1], &txids[1]), done: make(chan error, 1)}, // violates qty >= 0
		{ctx: t.Context(), fn: insertItem(3, 1, &runs[2], &txids[2]), done: make(chan error, 1)},
	}
	g.run(batch)
	errs := []error{<-batch[0].done, <-batch[1].done, <-batch[2].done}
	if errs[0] != nil || errs[2] != nil || !errors.Is(MapError(errs[1]), ErrInvalid) {
		t.Fatalf("errors = %v, want only the second function's check violation", errs)
	}
	// The first ran in the shared transaction and again alone; the third
	// never ran in the shared one (the second failed first).
	if fmt.Sprint(runs) != "[2 2 1]" || txids[0] == txids[2] {
		t.Errorf("runs = %v, transactions %v: want [2 2 1], the good functions each in a transaction of its own", runs, txids)
	}
	if got := items(t, pool); fmt.Sprint(got) != "[1 3]" {
		t.Errorf("items = %v, want [1 3]", got)
	}
	if s := g.Stats(); s.Fallbacks != 1 || s.Functions != 3 {
		t.Errorf("stats = %+v, want one fallback and three functions run alone", s)
	}
	// The counts are exported as metrics.
	reader := sdkmetric.NewManualReader()
	if err := g.RegisterMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	got := CounterTotals(t, reader)
	want := map[string]int64{"cosell.store.group_commit.transactions": 3, "cosell.store.group_commit.functions": 3, "cosell.store.group_commit.fallbacks": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics = %v, want %v", got, want)
	}
}

func TestGroupSkipsCancelledCallers(t *testing.T) {
	pool := groupDB(t)
	g := &Group{db: pool, maxBatch: 8, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var runs int
	var txid int64
	r := &groupReq{ctx: ctx, fn: insertItem(1, 1, &runs, &txid), done: make(chan error, 1)}
	g.run([]*groupReq{r})
	if err := <-r.done; !errors.Is(err, context.Canceled) || runs != 0 {
		t.Errorf("cancelled caller: err %v after %d runs, want context.Canceled and no run", err, runs)
	}
}

// Many concurrent callers through the workers: every function commits
// exactly once, and after Close callers still get their transaction.
func TestGroupInTxFromConcurrentCallers(t *testing.T) {
	pool := groupDB(t)
	g := NewGroup(pool, 2, 8)
	const n = 60
	runs, txids := make([]int, n), make([]int64, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- g.InTx(t.Context(), insertItem(i+1, 1, &runs[i], &txids[i])) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(items(t, pool)); got != n {
		t.Fatalf("%d items committed, want %d", got, n)
	}
	if s := g.Stats(); s.Functions != n || s.Fallbacks != 0 || s.Transactions > n {
		t.Errorf("stats = %+v", s)
	}
	g.Close()
	var r int
	var x int64
	if err := g.InTx(t.Context(), insertItem(n+1, 1, &r, &x)); err != nil || r != 1 {
		t.Fatalf("InTx after Close: %v after %d runs", err, r)
	}
}

// CounterTotals collects reader and returns each int64 counter's total
// over its series, by name. (Exported to the package's external tests.)
func CounterTotals(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					out[m.Name] += dp.Value
				}
			}
		}
	}
	return out
}
