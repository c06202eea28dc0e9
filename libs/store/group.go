package store

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/metric"
)

// Group commits the transactions of concurrent callers together: what
// callers hand to InTx while a worker is busy queues up, and the worker's
// next transaction runs all of it, one function after the other, with one
// BEGIN and one COMMIT. On the benchmark machine a statement costs about
// 150 µs of CPU between client and server whatever it does, and a message
// handler runs four or five of them besides BEGIN and COMMIT, so sharing
// those two among a handful of messages saves a good part of the work.
//
// A function runs in the group's transaction exactly as it would in its
// own: it sees what the functions before it wrote, as if they had
// committed first. When any function or the commit fails, the transaction
// is rolled back and every function of the batch runs again in a
// transaction of its own (store.InTx, with its retries), so one bad
// message costs its batch a retry and nothing else. Functions must
// therefore be safe to run again, as InTx already requires.
//
// Nothing waits to fill a batch: under light load each transaction holds
// one function, as with InTx.
type Group struct {
	db       Beginner
	maxBatch int
	reqs     chan *groupReq
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   atomic.Bool
	stats    groupStats
	log      *slog.Logger
}

// GroupOption adjusts a Group.
type GroupOption func(*Group)

// WithGroupLogger logs each shared transaction that failed and was run
// again one function at a time (at info: a failing message or a deadlock
// between two shared transactions is handled, not lost).
func WithGroupLogger(l *slog.Logger) GroupOption {
	return func(g *Group) { g.log = l }
}

type groupReq struct {
	ctx  context.Context
	fn   func(tx pgx.Tx) error
	done chan error
}

type groupStats struct {
	transactions, functions, fallbacks atomic.Int64
}

// GroupStats counts what a Group did.
type GroupStats struct {
	// Transactions is the number of shared transactions run, Functions the
	// functions they held; Fallbacks counts batches rolled back and run
	// again one function at a time.
	Transactions, Functions, Fallbacks int64
}

// groupTxTimeout bounds one shared transaction; each function's own
// context bounds its statements too.
const groupTxTimeout = 2 * time.Minute

// NewGroup starts workers that run queued functions on db, at most
// maxBatch per transaction. workers is how many transactions run at once.
// Close stops them.
func NewGroup(db Beginner, workers, maxBatch int, opts ...GroupOption) *Group {
	g := &Group{db: db, maxBatch: max(maxBatch, 1), reqs: make(chan *groupReq), stop: make(chan struct{}),
		log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(g)
	}
	for range max(workers, 1) {
		g.wg.Go(g.work)
	}
	return g
}

// InTx runs fn in a transaction shared with other callers, and returns
// once that transaction committed (nil) or fn failed on its own. After
// Close it runs fn alone, as store.InTx.
func (g *Group) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if g.closed.Load() {
		return InTx(ctx, g.db, fn)
	}
	r := &groupReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-g.stop:
		return InTx(ctx, g.db, fn)
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, the request runs to its end (its statements use ctx),
	// so the caller learns whether it committed.
	return <-r.done
}

// Stats returns the counts so far.
func (g *Group) Stats() GroupStats {
	return GroupStats{Transactions: g.stats.transactions.Load(), Functions: g.stats.functions.Load(), Fallbacks: g.stats.fallbacks.Load()}
}

// RegisterMetrics exports the counts as cosell.store.group_commit.*
// counters (transactions, functions, fallbacks); functions per transaction
// is the batching achieved.
func (g *Group) RegisterMetrics(m metric.Meter) error {
	tx, err := m.Int64ObservableCounter("cosell.store.group_commit.transactions",
		metric.WithDescription("Transactions run by group commit, shared or alone"), metric.WithUnit("{transaction}"))
	if err != nil {
		return err
	}
	fns, err := m.Int64ObservableCounter("cosell.store.group_commit.functions",
		metric.WithDescription("Callers' transaction functions run by group commit"), metric.WithUnit("{function}"))
	if err != nil {
		return err
	}
	fallbacks, err := m.Int64ObservableCounter("cosell.store.group_commit.fallbacks",
		metric.WithDescription("Shared transactions rolled back and run again one function at a time"), metric.WithUnit("{transaction}"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := g.Stats()
		o.ObserveInt64(tx, st.Transactions)
		o.ObserveInt64(fns, st.Functions)
		o.ObserveInt64(fallbacks, st.Fallbacks)
		return nil
	}, tx, fns, fallbacks)
	return err
}

// Close stops the workers after the transactions in flight; later InTx
// calls run alone.
func (g *Group) Close() {
	if g.closed.Swap(true) {
		return
	}
	close(g.stop)
	g.wg.Wait()
}

func (g *Group) work() {
	batch := make([]*groupReq, 0, g.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-g.reqs:
			batch = append(batch, r)
		case <-g.stop:
			return
		}
	fill:
		for len(batch) < g.maxBatch {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		g.run(batch)
	}
}

// run commits batch in one transaction, or each function alone when that
// fails.
func (g *Group) run(batch []*groupReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		g.stats.transactions.Add(1)
		g.stats.functions.Add(1)
		live[0].done <- InTx(live[0].ctx, g.db, live[0].fn)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupTxTimeout)
	err := runTx(ctx, g.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for _, r := range live {
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	cancel()
	if err == nil {
		g.stats.transactions.Add(1)
		g.stats.functions.Add(int64(len(live)))
		for _, r := range live {
			r.done <- nil
		}
		return
	}
	g.stats.fallbacks.Add(1)
	g.log.Info("group commit: shared transaction failed; running its functions one by one", "functions", len(live), "err", err)
	for _, r := range live {
		g.stats.transactions.Add(1)
		g.stats.functions.Add(1)
		r.done <- InTx(r.ctx, g.db, r.fn)
	}
}
