package ctl

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cosell/cosell/cli/internal/opsdb"
	"github.com/cosell/cosell/cli/internal/svc"
)

// Status is what cosellctl status reports.
type Status struct {
	Services    []svc.Readiness  `json:"services"`
	Consumers   []ConsumerLag    `json:"consumers"`
	NATSError   string           `json:"natsError,omitempty"`
	Budget      *Budget          `json:"salesforceBudget,omitempty"`
	BudgetError string           `json:"salesforceBudgetError,omitempty"`
	Sweeps      []opsdb.Cursor   `json:"sweeps"`
	DeadLetters map[string]int64 `json:"pendingDeadLetters,omitempty"`
	DBError     string           `json:"databaseError,omitempty"`
}

// ConsumerLag is one durable JetStream consumer's backlog.
type ConsumerLag struct {
	Stream      string     `json:"stream"`
	Consumer    string     `json:"consumer"`
	Pending     uint64     `json:"pending"`
	AckPending  int        `json:"ackPending"`
	Redelivered int        `json:"redelivered"`
	LastActive  *time.Time `json:"lastActive,omitempty"`
}

// Budget is the salesforce-adapter's view of the org's API allocation.
type Budget struct {
	Used      float64 `json:"used"`
	Limit     float64 `json:"limit"`
	Remaining float64 `json:"remaining"`
	Exhausted bool    `json:"exhausted"`
}

// Metric names the salesforce-adapter exports for its API budget.
const (
	metricUsage     = "cosell_salesforce_api_usage"
	metricLimit     = "cosell_salesforce_api_limit"
	metricRemaining = "cosell_salesforce_api_budget_remaining"
	metricExhausted = "cosell_salesforce_api_budget_exhausted"
)

func runStatus(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "",
		`Reports each service's readiness (/readyz), every durable JetStream consumer's lag,
the Salesforce API budget left (salesforce-adapter /metrics), the Partner Center
sweep's last run (partnercenter_adapter.cursors) and the dead letters waiting.
Exits 1 when a service is not ready.`)
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	st := collectStatus(ctx, e)
	if e.opts.json {
		if err := writeJSON(e.out, st); err != nil {
			return err
		}
	} else if err := printStatus(e, st); err != nil {
		return err
	}
	for _, s := range st.Services {
		if !s.Ready {
			return errFailed
		}
	}
	return nil
}

func collectStatus(ctx context.Context, e *env) Status {
	st := Status{Services: make([]svc.Readiness, 4)}
	clients := []*svc.Client{e.ingress(), e.pcAdapter(), e.sfAdapter(), e.mapper()}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { st.Services[i] = c.Ready(ctx) })
	}
	wg.Go(func() {
		lag, err := consumerLag(ctx, e.opts.natsURL, e.opts.timeout)
		st.Consumers = lag
		if err != nil {
			st.NATSError = err.Error()
		}
	})
	wg.Go(func() {
		m, err := e.sfAdapter().Metrics(ctx, metricUsage, metricLimit, metricRemaining, metricExhausted)
		switch {
		case err != nil:
			st.BudgetError = err.Error()
		case len(m) == 0:
			st.BudgetError = "the salesforce-adapter has not called Salesforce yet (no budget figures)"
		default:
			st.Budget = &Budget{Used: m[metricUsage], Limit: m[metricLimit], Remaining: m[metricRemaining], Exhausted: m[metricExhausted] > 0}
		}
	})
	wg.Wait()
	db, err := e.openDB(ctx)
	if err == nil {
		st.Sweeps, err = db.Cursors(ctx)
	}
	if err == nil {
		st.DeadLetters, err = db.PendingDeadLetters(ctx)
	}
	if err != nil {
		st.DBError = err.Error()
	}
	if st.Sweeps == nil {
		st.Sweeps = []opsdb.Cursor{}
	}
	if st.Consumers == nil {
		st.Consumers = []ConsumerLag{}
	}
	return st
}

// consumerLag lists every durable consumer of every stream with its backlog.
func consumerLag(ctx context.Context, url string, timeout time.Duration) ([]ConsumerLag, error) {
	nc, err := nats.Connect(url, nats.Name("cosellctl"), nats.Timeout(timeout), nats.MaxReconnects(0))
	if err != nil {
		return nil, fmt.Errorf("NATS at %s is not reachable: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("NATS at %s: jetstream: %w", url, err)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out []ConsumerLag
	streams := js.ListStreams(cctx)
	for si := range streams.Info() {
		s, err := js.Stream(cctx, si.Config.Name)
		if err != nil {
			return out, fmt.Errorf("NATS stream %s: %w", si.Config.Name, err)
		}
		lister := s.ListConsumers(cctx)
		for ci := range lister.Info() {
			c := ConsumerLag{Stream: si.Config.Name, Consumer: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered}
			if ci.Delivered.Last != nil {
				t := *ci.Delivered.Last
				c.LastActive = &t
			}
			out = append(out, c)
		}
		if err := lister.Err(); err != nil {
			return out, fmt.Errorf("NATS consumers of %s: %w", si.Config.Name, err)
		}
	}
	if err := streams.Err(); err != nil {
		return out, fmt.Errorf("NATS streams: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stream != out[j].Stream {
			return out[i].Stream < out[j].Stream
		}
		return out[i].Consumer < out[j].Consumer
	})
	return out, nil
}

func printStatus(e *env, st Status) error {
	now := time.Now()
	t := newTable("SERVICE", "URL", "READY", "DETAIL")
	for _, s := range st.Services {
		ready := "yes"
		detail := ""
		if !s.Ready {
			ready = "NO"
			detail = s.Status
			if len(s.Failing) > 0 {
				detail += ": failing " + fmt.Sprint(s.Failing)
			}
			if s.Error != "" {
				detail = s.Error
			}
		}
		t.add(s.Service, s.URL, ready, detail)
	}
	if err := t.print(e.out); err != nil {
		return err
	}

	fmt.Fprintln(e.out, "\nJetStream consumers:")
	if st.NATSError != "" {
		fmt.Fprintf(e.out, "  %s\n", st.NATSError)
	} else if len(st.Consumers) == 0 {
		fmt.Fprintln(e.out, "  none")
	} else {
		t := newTable("STREAM", "CONSUMER", "PENDING", "UNACKED", "REDELIVERED", "LAST DELIVERY")
		for _, c := range st.Consumers {
			last := ""
			if c.LastActive != nil {
				last = ago(now, *c.LastActive)
			}
			t.add(c.Stream, c.Consumer, fmt.Sprint(c.Pending), fmt.Sprint(c.AckPending), fmt.Sprint(c.Redelivered), last)
		}
		if err := t.print(e.out); err != nil {
			return err
		}
	}

	fmt.Fprintln(e.out, "\nSalesforce API budget:")
	if st.Budget != nil {
		b := st.Budget
		state := "ok"
		if b.Exhausted {
			state = "EXHAUSTED: writes wait until usage falls"
		}
		fmt.Fprintf(e.out, "  %.0f calls left of our share (org usage %.0f / %.0f), %s\n", b.Remaining, b.Used, b.Limit, state)
	} else {
		fmt.Fprintf(e.out, "  unknown: %s\n", st.BudgetError)
	}

	fmt.Fprintln(e.out, "\nPartner Center sweep:")
	switch {
	case st.DBError != "":
		fmt.Fprintf(e.out, "  %s\n", st.DBError)
	case len(st.Sweeps) == 0:
		fmt.Fprintln(e.out, "  has not run yet")
	default:
		t := newTable("LOOP", "WATERMARK", "LAST FINISHED", "OUTCOME", "SEEN", "PUBLISHED", "ERROR")
		for _, c := range st.Sweeps {
			fin := ""
			if c.LastFinishedAt != nil {
				fin = ts(*c.LastFinishedAt) + " (" + ago(now, *c.LastFinishedAt) + ")"
			}
			t.add(c.Name, tsp(c.Watermark), fin, c.LastOutcome, fmt.Sprint(c.LastSeen), fmt.Sprint(c.LastPublished), truncate(c.LastError, 60))
		}
		if err := t.print(e.out); err != nil {
			return err
		}
	}

	if st.DBError == "" {
		fmt.Fprintln(e.out, "\nDead letters waiting:")
		for _, s := range opsdb.ServiceNames() {
			fmt.Fprintf(e.out, "  %-22s %d\n", s, st.DeadLetters[s])
		}
	}
	return nil
}
