// Package e2e_test runs cosell end to end: the real binaries of the four
// services, the two emulators, a pinned nats-server and a fresh Postgres
// database per stack (see package stack). TestMain builds the binaries
// once; each top-level test starts one stack and shares it between its
// subtests, which run one after another.
package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/e2e/stack"
)

var (
	binDir    string // built binaries
	runRoot   string // one run directory (logs, keys, NATS data) per stack
	serverDSN string // Postgres server the stacks create their databases on
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	serverDSN = os.Getenv("TEST_DATABASE_URL")
	if serverDSN == "" {
		serverDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	root, err := os.MkdirTemp("", "cosell-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binDir, runRoot = filepath.Join(root, "bin"), filepath.Join(root, "run")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	err = stack.Build(ctx, binDir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the stack's binaries:", err)
		os.RemoveAll(root)
		return 1
	}
	code := m.Run()
	if code == 0 {
		os.RemoveAll(root)
	} else {
		os.RemoveAll(binDir)
		fmt.Fprintf(os.Stderr, "e2e: service logs kept in %s\n", runRoot)
	}
	return code
}

// options is what differs between the stacks of the tests.
type options struct {
	replicas int
	sweep    time.Duration // partnercenter-adapter reconciliation interval
	traces   bool          // export every service's spans to a TraceSink
	recorder bool          // route webhooks through a recording proxy
	sfArgs   []string      // extra salesforce-emulator flags
}

// system is one running stack and the clients a test drives it with.
type system struct {
	*stack.Stack
	name   string
	runDir string
	pc     *stack.PartnerCenter
	sf     *stack.Salesforce
	db     *stack.DB
	sink   *stack.TraceSink
	rec    *stack.WebhookRecorder
}

// startSystem starts a stack and stops it (and drops its database) when t ends.
func startSystem(t *testing.T, name string, o options) *system {
	t.Helper()
	sys := &system{name: name, runDir: filepath.Join(runRoot, name)}
	cfg := stack.Config{
		BinDir: binDir, RunDir: sys.runDir, DatabaseURL: serverDSN,
		Replicas: o.replicas, PCSweepInterval: o.sweep, SFEmulatorArgs: o.sfArgs,
		ExtraEnv: map[string]map[string]string{},
	}
	for _, svc := range stack.Services() {
		cfg.ExtraEnv[svc] = map[string]string{"SHUTDOWN_TIMEOUT": "10s"}
	}
	if o.traces {
		sink, err := stack.StartTraceSink()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sink.Close() })
		sys.sink = sink
		cfg.OTLPEndpoint = sink.URL
		for _, svc := range stack.Services() {
			// Export spans within a fraction of a second instead of 5 s.
			cfg.ExtraEnv[svc]["OTEL_BSP_SCHEDULE_DELAY"] = "100"
			// The sink receives traces only.
			cfg.ExtraEnv[svc]["OTEL_METRICS_EXPORTER"] = "none"
		}
	}
	if o.recorder {
		rec, err := stack.StartWebhookRecorder()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rec.Close() })
		sys.rec = rec
		cfg.ExtraEnv["partnercenter-adapter"]["PC_WEBHOOK_URL"] = rec.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start the %s stack: %v (service logs in %s)", name, err, sys.runDir)
	}
	sys.Stack = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop the %s stack: %v (service logs in %s)", name, err, sys.runDir)
		}
	})
	sys.db, err = stack.OpenDB(ctx, s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.db.Close() })
	sys.pc, sys.sf = stack.NewPartnerCenter(s.PCURL), stack.NewSalesforce(s.SFURL)
	hook := s.WebhookURL
	if sys.rec != nil {
		var targets []string
		for _, p := range s.ServiceProcesses() {
			if strings.HasPrefix(p.Name, "ingress-") {
				targets = append(targets, "http://"+p.Env["HTTP_ADDR"]+"/webhooks/partnercenter")
			}
		}
		sys.rec.SetTarget(targets...)
		hook = sys.rec.URL
	}
	if err := sys.pc.WaitRegistered(ctx, hook); err != nil {
		t.Fatalf("%v %s", err, sys.logs())
	}
	return sys
}

// logs is the hint every failure message ends with.
func (s *system) logs() string { return "(service logs in " + s.runDir + ")" }

// down names the stack's processes that are not running, so a wait that
// times out because a service died says so.
func (s *system) down() string {
	var out []string
	for _, p := range s.Processes() {
		if !p.Running() {
			out = append(out, p.Name)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "; not running: " + strings.Join(out, ", ")
}

// testCtx bounds one subtest.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls check until it reports done, failing t with check's last
// description of the state once timeout passes.
func (s *system) eventually(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s: %s%s %s", timeout, what, state, s.down(), s.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newReferral returns the fields of an inbound referral for a customer
// unique to the test, so accounts and names never collide between tests.
func newReferral(name, customer string) map[string]any {
	return map[string]any{
		"name": name,
		"customerProfile": map[string]any{
			"name": customer,
			"address": map[string]any{
				"addressLine1": "500 Pine St", "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US",
			},
			"team": []any{map[string]any{
				"firstName": "Jo", "lastName": "Buyer", "email": "jo.buyer@customer.example", "phoneNumber": "2065550100",
			}},
		},
		"details": map[string]any{
			"notes":           "Customer wants help with an Azure migration.",
			"dealValue":       42000.0,
			"currency":        "USD",
			"closingDateTime": time.Now().UTC().Add(60 * 24 * time.Hour).Truncate(24 * time.Hour).Add(12 * time.Hour).Format(time.RFC3339),
			"requirements":    map[string]any{"solutions": []any{map[string]any{"id": "SOL-6115380-IPC"}}},
		},
	}
}

// createReferral creates an inbound referral as the Microsoft seller and
// returns its id.
func (s *system) createReferral(t *testing.T, ctx context.Context, fields map[string]any) string {
	t.Helper()
	ref, err := s.pc.CreateInbound(ctx, fields)
	if err != nil {
		t.Fatalf("Microsoft seller creates a referral: %v", err)
	}
	id, _ := ref["id"].(string)
	if id == "" {
		t.Fatalf("created referral has no id: %v", ref)
	}
	return id
}

// oppFields are the Opportunity fields the tests read.
const oppFields = "Id, Name, Amount, CurrencyIsoCode, CloseDate, Description, StageName, Referral_Identifier__c, Referral_Link__c, AccountId, CreatedDate, SystemModstamp"

// opportunities returns the opportunities of a referral (more than one
// would be a duplicate; the org's External ID is unique, so this also
// guards against the field being left out and records being created by Id).
func (s *system) opportunities(ctx context.Context, referralID string) ([]map[string]any, error) {
	return s.sf.Query(ctx, "SELECT "+oppFields+" FROM Opportunity WHERE Referral_Identifier__c = "+stack.QuoteSOQL(referralID))
}

// waitOpportunity waits until the referral has an opportunity for which
// match (nil = any) holds, and returns it.
func (s *system) waitOpportunity(t *testing.T, ctx context.Context, referralID string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	s.eventually(t, timeout, "the opportunity of referral "+referralID, func() (bool, string) {
		recs, err := s.opportunities(ctx, referralID)
		if err != nil {
			return false, err.Error()
		}
		if len(recs) > 1 {
			t.Fatalf("referral %s has %d opportunities, want 1: %v %s", referralID, len(recs), recs, s.logs())
		}
		if len(recs) == 0 {
			return false, "no opportunity yet; " + s.linkState(ctx, referralID)
		}
		got = recs[0]
		if match != nil && !match(got) {
			return false, fmt.Sprintf("opportunity is %v; %s", got, s.linkState(ctx, referralID))
		}
		return true, ""
	})
	return got
}

// linkState describes the mapper's link and last audit entry, for failure messages.
func (s *system) linkState(ctx context.Context, referralID string) string {
	l, err := s.db.Link(ctx, referralID)
	if err != nil {
		return err.Error()
	}
	if l == nil {
		return "the mapper has no link for it"
	}
	out := fmt.Sprintf("mapper link state %s, opportunity %q", l.State, l.OpportunityID)
	if audit, err := s.db.AuditEvents(ctx, referralID); err == nil && len(audit) > 0 {
		last := audit[len(audit)-1]
		out += fmt.Sprintf(", last audit %s: %s", last.Kind, last.Message)
	}
	return out
}

// countByReferral counts opportunities per Referral_Identifier__c among ids.
func (s *system) countByReferral(ctx context.Context, ids []string) (map[string]int, error) {
	out := map[string]int{}
	for start := 0; start < len(ids); start += 100 {
		chunk := ids[start:min(start+100, len(ids))]
		q := make([]string, len(chunk))
		for i, id := range chunk {
			q[i] = stack.QuoteSOQL(id)
		}
		recs, err := s.sf.Query(ctx, "SELECT Id, Referral_Identifier__c FROM Opportunity WHERE Referral_Identifier__c IN ("+strings.Join(q, ",")+")")
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			id, _ := r["Referral_Identifier__c"].(string)
			out[id]++
		}
	}
	return out, nil
}

// waitIdle waits until every JetStream consumer has delivered and had
// acknowledged everything (nothing pending, nothing awaiting an ack), so
// assertions about "no further effect" look at a settled system.
func (s *system) waitIdle(t *testing.T, ctx context.Context, timeout time.Duration) {
	t.Helper()
	s.eventually(t, timeout, "every JetStream consumer to be idle", func() (bool, string) {
		busy, err := s.ConsumersBusy(ctx)
		if err != nil {
			return false, err.Error()
		}
		return len(busy) == 0, strings.Join(busy, "; ")
	})
}

// sfWrites sums the Salesforce emulator's calls that write records.
func (s *system) sfWrites(ctx context.Context) (int64, map[string]int64, error) {
	var c struct {
		Calls map[string]int64 `json:"calls"`
	}
	if err := s.sf.Control(ctx, http.MethodGet, "/counters", nil, &c); err != nil {
		return 0, nil, err
	}
	var n int64
	for _, k := range []string{"upsert", "composite", "composite.sobjects", "sobject.create", "sobject.update"} {
		n += c.Calls[k]
	}
	return n, c.Calls, nil
}

// auditKinds lists the kinds of a referral's audit trail, in order.
func auditKinds(audit []stack.AuditEvent) []string {
	out := make([]string, len(audit))
	for i, a := range audit {
		out[i] = a.Kind
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
