package upsert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accountstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// emulatorBin is built once by TestMain; tests only read it.
var emulatorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "upsert-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emulatorBin, err = sfemutest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is a running batcher against a fresh emulator and database.
type fixture struct {
	emu     *sfemutest.Emulator
	client  *sfclient.Client
	batcher *upsert.Batcher
	spans   *tracetest.SpanRecorder
	tp      *sdktrace.TracerProvider
}

func start(t testing.TB, emuOpts sfemutest.Options, cfg upsert.Config, budgetPercent int, opts ...upsert.Option) *fixture {
	t.Helper()
	emu := sfemutest.Start(t, emulatorBin, emuOpts)
	client, err := sfclient.New(sfclient.Config{
		Credentials: sfclient.Credentials{
			Mode: sfclient.AuthJWT, LoginURL: emu.URL, Audience: sfemutest.Audience,
			ClientID: sfemutest.ClientID, Username: sfemutest.Username, Key: emu.Key,
		},
		HTTPClient:    &http.Client{Timeout: 10 * time.Second},
		BudgetPercent: budgetPercent,
		Retry:         sfclient.Retry{Attempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := migrations.FS("salesforce-adapter")
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.NewDB(t, "salesforce-adapter", fsys)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	if cfg.LockRetry.Attempts == 0 {
		cfg.LockRetry = sfclient.Retry{Attempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond}
	}
	b := upsert.New(cfg, client, accounts.NewResolver(accountstore.New(db), client), append([]upsert.Option{upsert.WithTracer(tp.Tracer("test"))}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("batcher run: %v", err)
		}
	})
	return &fixture{emu: emu, client: client, batcher: b, spans: rec, tp: tp}
}

func fields(name string) map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"Name":      json.RawMessage(fmt.Sprintf("%q", name)),
		"StageName": json.RawMessage(`"Prospecting"`),
		"CloseDate": json.RawMessage(`"2030-06-30"`),
		"Amount":    json.RawMessage(`125000`),
	}
}

func command(id, referral, name string) upsert.Command {
	return upsert.Command{
		ID:              id,
		ReferralID:      referral,
		ExternalIDField: "Referral_Identifier__c",
		Fields:          fields(name),
		SourceUpdatedAt: time.Unix(1_700_000_000, 0),
	}
}

// submitAll submits commands concurrently and returns their outcomes in
// order.
func submitAll(t testing.TB, b *upsert.Batcher, cmds []upsert.Command) []upsert.Outcome {
	t.Helper()
	out := make([]upsert.Outcome, len(cmds))
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Go(func() { out[i], errs[i] = b.Submit(context.Background(), c) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	return out
}

func TestBatchesFillToTwoHundred(t *testing.T) {
	// A long wait makes only full batches go out early, so the call count
	// is exact: 450 commands → 200 + 200 + 50.
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 2 * time.Second}, 0)
	const n = 450
	cmds := make([]upsert.Command, n)
	for i := range cmds {
		cmds[i] = command(fmt.Sprintf("cmd-%d", i), fmt.Sprintf("ref-%d", i), fmt.Sprintf("Deal %d", i))
	}
	outs := submitAll(t, f.batcher, cmds)
	ids := map[string]bool{}
	for i, o := range outs {
		if o.Kind != upsert.OK || !o.Created || o.OpportunityID == "" {
			t.Fatalf("outcome %d = %+v, want created", i, o)
		}
		ids[o.OpportunityID] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct opportunities, want %d", len(ids), n)
	}
	if calls := f.emu.Counters().Calls["composite"]; calls != 3 {
		t.Fatalf("%d collection calls for %d commands, want 3", calls, n)
	}
	if got := len(f.emu.Records("Opportunity")); got != n {
		t.Fatalf("%d opportunities in Salesforce, want %d", got, n)
	}

	// The same commands again update, never duplicate.
	again := submitAll(t, f.batcher, cmds[:10])
	for i, o := range again {
		if o.Kind != upsert.OK || o.Created || o.OpportunityID != outs[i].OpportunityID {
			t.Fatalf("repeat %d = %+v, want update of %s", i, o, outs[i].OpportunityID)
		}
	}
	if got := len(f.emu.Records("Opportunity")); got != n {
		t.Fatalf("%d opportunities after repeats, want %d", got, n)
	}
}

func TestSameReferralInOneBatchKeepsNewest(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 300 * time.Millisecond}, 0)
	older := command("cmd-old", "ref-dup", "Old name")
	newer := command("cmd-new", "REF-DUP", "New name")
	newer.SourceUpdatedAt = older.SourceUpdatedAt.Add(time.Minute)
	other := command("cmd-other", "ref-other", "Other")
	// Submit the newer first, so arrival order cannot be what decides.
	outs := submitAll(t, f.batcher, []upsert.Command{newer, older, other})
	if outs[0].Kind != upsert.OK || outs[1].Kind != upsert.OK || outs[0].OpportunityID != outs[1].OpportunityID {
		t.Fatalf("outcomes = %+v / %+v, want both ok with one opportunity", outs[0], outs[1])
	}
	opps := f.emu.Records("Opportunity")
	if len(opps) != 2 {
		t.Fatalf("%d opportunities, want 2", len(opps))
	}
	for _, o := range opps {
		if o["Id"] == outs[0].OpportunityID && o["Name"] != "New name" {
			t.Fatalf("opportunity name %v, want the newest command's", o["Name"])
		}
	}
	if calls := f.emu.Counters().Calls["composite"]; calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
}

func TestValidationErrorIsRejectedWithoutRetry(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 200 * time.Millisecond}, 0)
	bad := command("cmd-bad", "ref-bad", "Bad")
	delete(bad.Fields, "CloseDate")
	badStage := command("cmd-stage", "ref-stage", "Bad stage")
	badStage.Fields["StageName"] = json.RawMessage(`"No Such Stage"`)
	outs := submitAll(t, f.batcher, []upsert.Command{bad, badStage, command("cmd-ok", "ref-ok", "Fine")})
	if o := outs[0]; o.Kind != upsert.Rejected || len(o.Errors) == 0 || o.Errors[0].Code != "REQUIRED_FIELD_MISSING" || o.Errors[0].Message == "" {
		t.Fatalf("missing close date = %+v, want rejected REQUIRED_FIELD_MISSING", o)
	}
	if o := outs[1]; o.Kind != upsert.Rejected || len(o.Errors) == 0 || len(o.Errors[0].Fields) == 0 || o.Errors[0].Fields[0] != "StageName" {
		t.Fatalf("bad stage = %+v, want rejected on StageName", o)
	}
	if outs[2].Kind != upsert.OK {
		t.Fatalf("good record = %+v", outs[2])
	}
	if calls := f.emu.Counters().Calls["composite"]; calls != 1 {
		t.Fatalf("%d calls, want 1 (rejections are final)", calls)
	}
}

func TestRowLockIsRetriedPerRecord(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 100 * time.Millisecond}, 0)
	f.emu.AddFault(sfemutest.Fault{Endpoint: "composite.sobjects", Kind: "UNABLE_TO_LOCK_ROW", Count: 2})
	outs := submitAll(t, f.batcher, []upsert.Command{command("c1", "ref-l1", "L1"), command("c2", "ref-l2", "L2")})
	for i, o := range outs {
		if o.Kind != upsert.OK {
			t.Fatalf("outcome %d = %+v, want ok after lock retries", i, o)
		}
	}
	// The first call locks both; each record is retried after its own
	// jittered delay, so the retries share a call (locked, then both
	// through: 3) or not (one locked, then each through alone: 4).
	if calls := f.emu.Counters().Calls["composite"]; calls != 3 && calls != 4 {
		t.Fatalf("%d calls, want 3 or 4 (two locked, then through)", calls)
	}
}

func TestRowLockGivesUp(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: time.Millisecond}, 0)
	f.emu.AddFault(sfemutest.Fault{Endpoint: "composite.sobjects", Kind: "UNABLE_TO_LOCK_ROW", Rate: 1})
	o, err := f.batcher.Submit(context.Background(), command("c1", "ref-locked", "Locked"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != upsert.Failed || len(o.Errors) == 0 || o.Errors[0].Code != "UNABLE_TO_LOCK_ROW" {
		t.Fatalf("outcome = %+v, want failed with UNABLE_TO_LOCK_ROW", o)
	}
	if calls := f.emu.Counters().Calls["composite"]; calls != 4 {
		t.Fatalf("%d calls, want 4 attempts", calls)
	}
}

func TestCustomerAccountIsFoundOnceAndCached(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: time.Millisecond}, 0)
	ctx := context.Background()
	first := command("c1", "ref-a1", "First deal")
	first.Customer = &accounts.Customer{Name: "Contoso", Country: "US", PostalCode: "98052"}
	o1, err := f.batcher.Submit(ctx, first)
	if err != nil || o1.Kind != upsert.OK || o1.AccountID == "" {
		t.Fatalf("first = %+v, %v", o1, err)
	}
	f.emu.ResetCounters()

	second := command("c2", "ref-a2", "Second deal")
	second.Customer = &accounts.Customer{Name: "contoso", Country: "US", PostalCode: "98052"}
	o2, err := f.batcher.Submit(ctx, second)
	if err != nil || o2.Kind != upsert.OK || o2.AccountID != o1.AccountID {
		t.Fatalf("second = %+v, %v; want account %s", o2, err, o1.AccountID)
	}
	calls := f.emu.Counters().Calls
	if calls["query"] != 0 || calls["composite"] != 1 || len(calls) != 1 {
		t.Fatalf("calls = %v, want exactly one upsert and no account query", calls)
	}
	for _, opp := range f.emu.Records("Opportunity") {
		if opp["AccountId"] != o1.AccountID {
			t.Fatalf("opportunity %v has AccountId %v, want %s", opp["Id"], opp["AccountId"], o1.AccountID)
		}
	}
}

func TestDeletedCachedAccountIsResolvedAgain(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: time.Millisecond}, 0)
	ctx := context.Background()
	first := command("c1", "ref-d1", "First")
	first.Customer = &accounts.Customer{Name: "Gone Ltd", Country: "GB"}
	o1, err := f.batcher.Submit(ctx, first)
	if err != nil || o1.Kind != upsert.OK {
		t.Fatalf("first = %+v, %v", o1, err)
	}
	f.emu.DeleteRecord("Account", o1.AccountID)
	second := command("c2", "ref-d2", "Second")
	second.Customer = first.Customer
	o2, err := f.batcher.Submit(ctx, second)
	if err != nil || o2.Kind != upsert.OK || o2.AccountID == "" || o2.AccountID == o1.AccountID {
		t.Fatalf("second = %+v, %v; want ok with a new account", o2, err)
	}
}

func TestRejectedAccountRejectsTheCommand(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: time.Millisecond}, 0)
	c := command("c1", "ref-acct", "Deal")
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'n'
	}
	c.Customer = &accounts.Customer{Name: string(long), Country: "US"}
	o, err := f.batcher.Submit(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != upsert.Rejected || len(o.Errors) == 0 || o.Errors[0].Code != "STRING_TOO_LONG" || o.Errors[0].Fields[0] != "Account.Name" {
		t.Fatalf("outcome = %+v, want rejected on Account.Name", o)
	}
	if n := len(f.emu.Records("Opportunity")); n != 0 {
		t.Fatalf("%d opportunities, want none", n)
	}
}

func TestBudgetExhaustedIsRetryLater(t *testing.T) {
	f := start(t, sfemutest.Options{APILimit: 10}, upsert.Config{BatchWait: time.Millisecond}, 50)
	ctx := context.Background()
	var later int
	for i := range 12 {
		o, err := f.batcher.Submit(ctx, command(fmt.Sprintf("c%d", i), fmt.Sprintf("ref-b%d", i), "Budget"))
		if err != nil {
			t.Fatal(err)
		}
		switch o.Kind {
		case upsert.OK:
		case upsert.RetryLater:
			later++
			if o.RetryAfter <= 0 {
				t.Fatalf("retry later without a delay: %+v", o)
			}
		default:
			t.Fatalf("outcome %d = %+v", i, o)
		}
	}
	cnt := f.emu.Counters()
	if cnt.APIUsage.Used != 5 || later != 7 {
		t.Fatalf("used %d calls with %d commands deferred; want 5 used (50%% of 10) and 7 deferred", cnt.APIUsage.Used, later)
	}
}

func TestBatchSpanLinksEveryCommand(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 300 * time.Millisecond}, 0)
	tracer := f.tp.Tracer("consumer")
	cmds := make([]upsert.Command, 5)
	want := map[trace.SpanID]string{}
	for i := range cmds {
		_, span := tracer.Start(context.Background(), fmt.Sprintf("process %d", i))
		cmds[i] = command(fmt.Sprintf("c%d", i), fmt.Sprintf("ref-t%d", i), "Traced")
		cmds[i].Span = span.SpanContext()
		want[span.SpanContext().SpanID()] = cmds[i].ReferralID
		span.End()
	}
	outs := submitAll(t, f.batcher, cmds)
	var batch sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.Name() == "upsert Opportunity batch" {
			batch = s
		}
	}
	if batch == nil {
		t.Fatal("no batch span")
	}
	if batch.Parent().IsValid() {
		t.Fatalf("batch span has parent %v, want a root", batch.Parent())
	}
	got := map[trace.SpanID]bool{}
	for _, l := range batch.Links() {
		got[l.SpanContext.SpanID()] = true
	}
	for id, ref := range want {
		if !got[id] {
			t.Fatalf("batch span lacks a link to the span of %s", ref)
		}
	}
	for i, o := range outs {
		if o.Batch.SpanID() != batch.SpanContext().SpanID() {
			t.Fatalf("outcome %d names batch span %v, want %v", i, o.Batch.SpanID(), batch.SpanContext().SpanID())
		}
	}
}

func TestStopAnswersQueuedCommands(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	client, err := sfclient.New(sfclient.Config{
		Credentials: sfclient.Credentials{Mode: sfclient.AuthClientCredentials, LoginURL: emu.URL,
			ClientID: sfemutest.ClientID, ClientSecret: sfemutest.ClientSecret},
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := upsert.New(upsert.Config{BatchWait: time.Hour}, client, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	res := make(chan upsert.Outcome, 1)
	go func() {
		o, _ := b.Submit(context.Background(), command("c1", "ref-stop", "Stop"))
		res <- o
	}()
	// The command waits for an hour-long batch window (or has not been
	// queued yet); stopping must answer it at once either way.
	cancel()
	if o := <-res; o.Kind != upsert.RetryLater {
		t.Fatalf("outcome = %+v, want retry later", o)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if o, _ := b.Submit(context.Background(), command("c2", "ref-after", "After")); o.Kind != upsert.RetryLater {
		t.Fatalf("submit after stop = %+v, want retry later", o)
	}
}
