package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// emulatorBin is built once by TestMain; tests only read it.
var emulatorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "salesforce-adapter-test-")
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

// stack is the service running against an emulator, JetStream and
// Postgres, with a bus connection for the test and a tracer whose spans
// the test can read.
type stack struct {
	emu     *sfemutest.Emulator
	conn    *bus.Conn
	dsn     string
	base    string
	tracer  trace.Tracer
	results jetstream.Consumer
}

func startStack(t testing.TB, emuOpts sfemutest.Options, env map[string]string) *stack {
	t.Helper()
	emu := sfemutest.Start(t, emulatorBin, emuOpts)
	natsURL := bustest.RunServer(t)
	fsys, err := migrations.FS(service)
	if err != nil {
		t.Fatal(err)
	}
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: service, FS: fsys})
	addr := freeAddr(t)
	for k, v := range map[string]string{
		"DATABASE_URL":    dsn,
		"NATS_URL":        natsURL,
		"HTTP_ADDR":       addr,
		"LOG_LEVEL":       "warn",
		"SF_AUTH_MODE":    "jwt",
		"SF_LOGIN_URL":    emu.URL,
		"SF_AUDIENCE":     sfemutest.Audience,
		"SF_CLIENT_ID":    sfemutest.ClientID,
		"SF_USERNAME":     sfemutest.Username,
		"SF_JWT_KEY_FILE": emu.KeyFile,
		// Tests that count calls would count the polls too; the
		// poller's tests turn it on.
		"SF_POLL_ENABLED": "false",
	} {
		t.Setenv(k, v)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("run did not stop")
		}
	})
	base := "http://" + addr
	waitFor(t, "readiness", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	tp := sdktrace.NewTracerProvider()
	conn, err := bus.Connect(context.Background(), natsURL, "test",
		bus.WithLogger(slog.New(slog.DiscardHandler)),
		bus.WithTracerProvider(tp),
		bus.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(context.Background(), bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	results, err := conn.JetStream().OrderedConsumer(context.Background(), bus.StreamResults,
		jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.SubjectSalesforceResult}})
	if err != nil {
		t.Fatal(err)
	}
	return &stack{emu: emu, conn: conn, dsn: dsn, base: base, tracer: tp.Tracer("test"), results: results}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if t.Context().Err() != nil {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *stack) publish(t testing.TB, ctx context.Context, cmd *cosellv1.UpsertOpportunityCommand) {
	t.Helper()
	if err := s.conn.Publish(ctx, bus.SubjectUpsertOpportunity, cmd.GetCommandId(), cmd); err != nil {
		t.Fatalf("publish %s: %v", cmd.GetCommandId(), err)
	}
}

// result is a received result with its trace context.
type result struct {
	res   *cosellv1.SalesforceResult
	trace trace.SpanContext
}

// collect reads n results.
func (s *stack) collect(t testing.TB, n int) map[string]result {
	t.Helper()
	out := map[string]result{}
	for len(out) < n {
		batch, err := s.results.Fetch(n-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var r cosellv1.SalesforceResult
			if err := proto.Unmarshal(m.Data(), &r); err != nil {
				t.Fatal(err)
			}
			ctx := propagation.TraceContext{}.Extract(context.Background(), bus.HeaderCarrier(m.Headers()))
			out[r.GetCommandId()] = result{res: &r, trace: trace.SpanContextFromContext(ctx)}
		}
		if t.Context().Err() != nil {
			t.Fatalf("got %d of %d results", len(out), n)
		}
	}
	return out
}

func upsertCommand(i int, fields string) *cosellv1.UpsertOpportunityCommand {
	return &cosellv1.UpsertOpportunityCommand{
		CommandId:       fmt.Sprintf("cmd-%d", i),
		ReferralId:      fmt.Sprintf("ref-%d", i),
		ExternalIdField: "Referral_Identifier__c",
		FieldsJson:      []byte(fields),
		SourceUpdatedAt: timestamppb.New(time.Unix(1_700_000_000, 0)),
	}
}

const goodFields = `{"Name":"Co-sell deal","StageName":"On Hold","CloseDate":"2030-01-31","Amount":50000}`

func TestServesUpsertsInBatchesWithResultsInEachTrace(t *testing.T) {
	s := startStack(t, sfemutest.Options{}, map[string]string{"SF_BATCH_WAIT": "1s"})
	const n = 250
	traces := map[string]trace.TraceID{}
	for i := range n {
		cmd := upsertCommand(i, goodFields)
		if i%2 == 0 {
			cmd.Account = &cosellv1.Account{Name: fmt.Sprintf("Customer %d", i%10), Country: "US", PostalCode: "98052"}
		}
		ctx, span := s.tracer.Start(context.Background(), "mapper")
		traces[cmd.GetCommandId()] = span.SpanContext().TraceID()
		s.publish(t, ctx, cmd)
		span.End()
	}
	results := s.collect(t, n)
	for id, r := range results {
		if r.res.GetOutcome() != cosellv1.Outcome_OUTCOME_OK || !r.res.GetCreated() || r.res.GetOpportunityId() == "" {
			t.Fatalf("result %s = %v", id, r.res)
		}
		if r.trace.TraceID() != traces[id] {
			t.Fatalf("result %s published in trace %s, want the command's %s", id, r.trace.TraceID(), traces[id])
		}
	}
	calls := s.emu.Counters().Calls
	// 250 commands: two upsert calls (each reading its records back in
	// the same Composite call); five new customers: one query and one
	// create.
	if calls["composite"] != 2 || calls["composite.sobjects"] != 1 || calls["query"] != 1 {
		t.Fatalf("calls = %v, want 2 upserts + 1 account create and 1 account query", calls)
	}
	if got := len(s.emu.Records("Opportunity")); got != n {
		t.Fatalf("%d opportunities, want %d", got, n)
	}

	// The metrics report the API usage.
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "cosell_salesforce_api_usage") {
		t.Fatalf("/metrics lacks the API usage gauge")
	}
}

// TestFailedLoginIsCountedOnMetrics is a connected app that refuses the
// integration user: no REST call is ever sent (so no 401 is counted), but
// every failed token request is, on /metrics.
func TestFailedLoginIsCountedOnMetrics(t *testing.T) {
	s := startStack(t, sfemutest.Options{}, map[string]string{
		"SF_USERNAME":      "not-pre-authorised@cosell.example",
		"SF_POLL_ENABLED":  "true",
		"SF_POLL_INTERVAL": "200ms",
	})
	series := func(labels ...string) float64 {
		resp, err := http.Get(s.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(body)) {
			name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok || !strings.HasPrefix(name, "cosell_salesforce_token_refreshes_total{") {
				continue
			}
			match := true
			for _, l := range labels {
				match = match && strings.Contains(name, l)
			}
			if match {
				v, err := strconv.ParseFloat(value, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return v
			}
		}
		return -1
	}
	// The poller asks for a token at every poll.
	waitFor(t, "failed token requests on /metrics", func() bool {
		return series(`outcome="error"`, `reason="invalid_grant"`) >= 2
	})
	if v := series(`outcome="ok"`); v != 0 {
		t.Errorf("ok = %v, want 0", v)
	}
	if n := s.emu.Counters().Calls["query"]; n != 0 {
		t.Errorf("%d queries without a session", n)
	}
}

func TestRejectedCommandIsAnsweredAndAcknowledged(t *testing.T) {
	s := startStack(t, sfemutest.Options{}, nil)
	ctx := context.Background()
	s.publish(t, ctx, upsertCommand(1, `{"Name":"No close date","StageName":"On Hold"}`))
	s.publish(t, ctx, upsertCommand(2, `["not an object"]`))
	results := s.collect(t, 2)
	r1 := results["cmd-1"].res
	if r1.GetOutcome() != cosellv1.Outcome_OUTCOME_REJECTED || r1.GetErrorCode() != "REQUIRED_FIELD_MISSING" ||
		!strings.Contains(r1.GetErrorMessage(), "CloseDate") || len(r1.GetErrorFields()) == 0 {
		t.Fatalf("result = %v, want rejected REQUIRED_FIELD_MISSING on CloseDate", r1)
	}
	if r2 := results["cmd-2"].res; r2.GetOutcome() != cosellv1.Outcome_OUTCOME_REJECTED || r2.GetErrorCode() != "COSELL_INVALID_COMMAND" {
		t.Fatalf("result = %v, want rejected invalid command", r2)
	}
	cons, err := s.conn.JetStream().Consumer(ctx, bus.StreamSalesforceCommands, "salesforce-adapter-upsert")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acknowledgements", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.AckFloor.Stream == 2 && info.NumAckPending == 0
	})
	info, _ := cons.Info(ctx)
	if info.NumRedelivered != 0 {
		t.Fatalf("%d redeliveries, want none (rejections are final)", info.NumRedelivered)
	}
	if calls := s.emu.Counters().Calls["composite"]; calls != 1 {
		t.Fatalf("%d upsert calls, want 1", calls)
	}
}

func TestExhaustedBudgetDefersCommandsAndFailsReadiness(t *testing.T) {
	s := startStack(t, sfemutest.Options{APILimit: 10}, map[string]string{"SF_API_BUDGET_PERCENT": "50"})
	s.emu.SetUsage(4, 10)
	ctx := context.Background()
	s.publish(t, ctx, upsertCommand(1, goodFields))
	if r := s.collect(t, 1)["cmd-1"].res; r.GetOutcome() != cosellv1.Outcome_OUTCOME_OK {
		t.Fatalf("first result = %v", r)
	}
	// Usage is now 5 of 10: the 50% budget is spent.
	s.publish(t, ctx, upsertCommand(2, goodFields))
	waitFor(t, "the deferral", func() bool {
		resp, err := http.Get(s.base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `outcome="retry_later"`)
	})
	resp, err := http.Get(s.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Failing []string `json:"failing"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || len(ready.Failing) != 1 || ready.Failing[0] != "salesforce_api_budget" {
		t.Fatalf("readyz = %d %v, want 503 failing salesforce_api_budget", resp.StatusCode, ready.Failing)
	}
	if used := s.emu.Counters().APIUsage.Used; used != 5 {
		t.Fatalf("usage %d, want 5 (no call over the budget)", used)
	}
}

func TestMigrateSubcommand(t *testing.T) {
	fsys, err := migrations.FS(service)
	if err != nil {
		t.Fatal(err)
	}
	// A database migrated by storetest is already at the latest version;
	// migrating again must be a no-op, not an error.
	t.Setenv("DATABASE_URL", storetest.NewDSN(t, storetest.Migrations{Service: service, FS: fsys}))
	if err := migrateUp(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}
