package sweep_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/sweep"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

const service = "partnercenter-adapter"

// published records what the sweep asked to publish. (The publishing path
// itself, onto JetStream, is tested in package consumer.)
type published struct {
	mu   sync.Mutex
	refs []pcclient.Referral
	srcs []cosellv1.ObservationSource
}

func (p *published) Publish(_ context.Context, ref pcclient.Referral, src cosellv1.ObservationSource, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refs = append(p.refs, ref)
	p.srcs = append(p.srcs, src)
	return nil
}

func (p *published) take() ([]string, []cosellv1.ObservationSource) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, len(p.refs))
	for i, r := range p.refs {
		ids[i] = r.ID
	}
	srcs := p.srcs
	p.refs, p.srcs = nil, nil
	return ids, srcs
}

// countingLister counts listings, to tell which sweeper ran.
type countingLister struct {
	*pcclient.Client
	n atomic.Int64
}

func (c *countingLister) ListReferrals(ctx context.Context, q pcclient.ListQuery, fn func([]pcclient.Referral) (bool, error)) error {
	c.n.Add(1)
	return c.Client.ListReferrals(ctx, q, fn)
}

type harness struct {
	emu   *pcemutest.Emulator
	pool  *pgxpool.Pool
	store *pgstore.Store
}

func start(t *testing.T) *harness {
	t.Helper()
	pool := storetest.NewDB(t, service, storetest.RepoMigrations(t, service))
	return &harness{emu: pcemutest.Start(t, "-page-size", "2"), pool: pool, store: pgstore.New(pool)}
}

func (h *harness) client(t *testing.T, maxAttempts int) *pcclient.Client {
	t.Helper()
	ep := &auth.Endpoint{TokenURL: h.emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	c, err := pcclient.New(pcclient.Config{
		APIBaseURL: h.emu.URL, WebhookAPIBaseURL: h.emu.URL,
		Tokens:      auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password)),
		MaxAttempts: maxAttempts, BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *harness) sweeper(t *testing.T, list sweep.Lister, pub sweep.Publisher, overlap time.Duration) *sweep.Sweeper {
	t.Helper()
	s, err := sweep.New(list, pub, h.store, sweep.Config{Overlap: overlap})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) seed(t *testing.T, n int) []pcemutest.Referral {
	t.Helper()
	out := make([]pcemutest.Referral, n)
	for i := range out {
		out[i] = h.emu.SeedInbound("r", false)
	}
	return out
}

func updated(t *testing.T, r pcemutest.Referral) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, r.UpdatedDateTime)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func ids(rs []pcemutest.Referral) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

func TestFirstSweepStartsFromNow(t *testing.T) {
	h := start(t)
	h.seed(t, 3)
	pub := &published{}
	s := h.sweeper(t, h.client(t, 0), pub, 2*time.Minute)
	run, err := s.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if run.Outcome != "initialized" || run.Published != 0 {
		t.Fatalf("first sweep: %+v, want initialized with nothing published", run)
	}
	if got, _ := pub.take(); len(got) != 0 {
		t.Errorf("published %v on the first sweep", got)
	}
	wm, ok, err := h.store.Watermark(context.Background(), sweep.CursorSweep)
	if err != nil || !ok {
		t.Fatalf("no watermark after the first sweep: %v", err)
	}
	if !wm.Before(run.StartedAt) {
		t.Errorf("watermark %s not below the start %s by the overlap", wm, run.StartedAt)
	}
}

func TestSweepPagesDownToTheWatermark(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	old := h.seed(t, 3)
	if err := h.store.Advance(ctx, sweep.CursorSweep, updated(t, old[2]).Add(time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	fresh := h.seed(t, 5)
	pub := &published{}
	s := h.sweeper(t, h.client(t, 0), pub, 0)
	h.emu.ResetCounters()

	run, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, srcs := pub.take()
	if want := reversed(ids(fresh)); !slices.Equal(got, want) {
		t.Fatalf("published %v, want the five new referrals newest first %v", got, want)
	}
	for _, src := range srcs {
		if src != cosellv1.ObservationSource_OBSERVATION_SOURCE_SWEEP {
			t.Errorf("source %s", src)
		}
	}
	// Pages of two: [n5 n4] [n3 n2] [n1 o3] and the walk stops at o3.
	if n := h.emu.Counters()["referrals.list"]; n != 3 || run.Pages != 3 {
		t.Errorf("%d list calls (run says %d pages), want 3", n, run.Pages)
	}
	wm, _, err := h.store.Watermark(ctx, sweep.CursorSweep)
	if err != nil {
		t.Fatal(err)
	}
	if !wm.Equal(updated(t, fresh[4]).Truncate(time.Microsecond)) {
		t.Errorf("watermark %s, want the newest referral's %s", wm, updated(t, fresh[4]))
	}
	last, ok, err := h.store.LastRun(ctx, sweep.CursorSweep)
	if err != nil || !ok || last.Outcome != "ok" || last.Published != 5 || last.Pages != 3 {
		t.Errorf("last run row %+v (ok=%v, err=%v)", last, ok, err)
	}

	// Nothing changed: only the boundary record comes again.
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := pub.take(); !slices.Equal(got, []string{fresh[4].ID}) {
		t.Errorf("unchanged sweep published %v, want only the boundary record", got)
	}

	// A Microsoft seller edits an old referral: the next sweep finds it.
	h.emu.Edit(old[0].ID, "changed")
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := pub.take(); !slices.Equal(got, []string{old[0].ID, fresh[4].ID}) {
		t.Errorf("after an edit published %v, want the edited referral (and the boundary)", got)
	}
}

func TestSweepOverlapReachesBelowTheWatermark(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	all := h.seed(t, 4)
	if err := h.store.Advance(ctx, sweep.CursorSweep, updated(t, all[3]).Add(time.Microsecond)); err != nil {
		t.Fatal(err)
	}
	pub := &published{}
	if _, err := h.sweeper(t, h.client(t, 0), pub, time.Hour).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := pub.take(); len(got) != 4 {
		t.Errorf("an hour of overlap published %d of 4 recent referrals", len(got))
	}
}

func TestFailedSweepKeepsTheWatermark(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	old := h.seed(t, 1)
	wm0 := updated(t, old[0]).Truncate(time.Microsecond)
	if err := h.store.Advance(ctx, sweep.CursorSweep, wm0); err != nil {
		t.Fatal(err)
	}
	h.seed(t, 3)
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.list", Kind: "500", Count: 10})
	pub := &published{}
	if _, err := h.sweeper(t, h.client(t, 2), pub, 0).Sweep(ctx); err == nil {
		t.Fatal("sweep succeeded through a Partner Center outage")
	}
	wm, _, err := h.store.Watermark(ctx, sweep.CursorSweep)
	if err != nil || !wm.Equal(wm0) {
		t.Errorf("watermark %s after a failure, want it unchanged at %s (%v)", wm, wm0, err)
	}
	last, _, err := h.store.LastRun(ctx, sweep.CursorSweep)
	if err != nil || last.Outcome != "failed" || last.Error == "" {
		t.Errorf("last run %+v, want failed with the reason (%v)", last, err)
	}
}

func TestBackfillFromADate(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	rs := h.seed(t, 5)
	pub := &published{}
	s := h.sweeper(t, h.client(t, 0), pub, 0)
	run, err := s.Backfill(ctx, updated(t, rs[2]))
	if err != nil {
		t.Fatal(err)
	}
	got, srcs := pub.take()
	if want := reversed(ids(rs[2:])); !slices.Equal(got, want) {
		t.Fatalf("backfill published %v, want %v", got, want)
	}
	for _, src := range srcs {
		if src != cosellv1.ObservationSource_OBSERVATION_SOURCE_BACKFILL {
			t.Errorf("source %s", src)
		}
	}
	if run.Outcome != "ok" || run.Published != 3 {
		t.Errorf("run %+v", run)
	}
	if _, ok, _ := h.store.Watermark(ctx, sweep.CursorSweep); ok {
		t.Error("backfill moved the sweep's watermark")
	}
	if last, ok, err := h.store.LastRun(ctx, sweep.CursorBackfill); err != nil || !ok || last.Published != 3 {
		t.Errorf("backfill row %+v ok=%v err=%v", last, ok, err)
	}
}

func TestOneSweeperAtATime(t *testing.T) {
	h := start(t)
	ctx := context.Background()
	lease := func() *store.Lease {
		return store.NewLease(h.pool, "partnercenter-adapter/sweep", store.WithLeaseCheckInterval(50*time.Millisecond))
	}
	runLoop := func(s *sweep.Sweeper) (stop func()) {
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- lease().Run(lctx, func(ctx context.Context) error { return s.Loop(ctx, 20*time.Millisecond) })
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("lease run: %v", err)
			}
		}
	}
	client := h.client(t, 0)
	a, b := &countingLister{Client: client}, &countingLister{Client: client}
	stopA := runLoop(h.sweeper(t, a, &published{}, 0))
	waitFor(t, "A to sweep", func() bool { return a.n.Load() >= 1 })

	stopB := runLoop(h.sweeper(t, b, &published{}, 0))
	defer stopB()
	waitFor(t, "B to wait for the lease", func() bool {
		var waiting int
		err := h.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'lease:partnercenter-adapter/sweep' AND wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting == 1
	})
	seen := a.n.Load()
	waitFor(t, "A to keep sweeping", func() bool { return a.n.Load() >= seen+3 })
	if n := b.n.Load(); n != 0 {
		t.Fatalf("B swept %d times while A held the lease", n)
	}

	stopA()
	waitFor(t, "B to take over", func() bool { return b.n.Load() >= 1 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
