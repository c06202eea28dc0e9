package command_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/command"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

const service = "partnercenter-adapter"

// harness is the executor wired as the service wires it, against the real
// emulator binary, an in-process JetStream and a clone of the migrated
// database.
type harness struct {
	emu     *pcemutest.Emulator
	conn    *bus.Conn
	pool    *pgxpool.Pool
	store   *pgstore.Store
	pc      *pcclient.Client
	exec    *command.Executor
	pub     *recordingPublisher
	spans   *tracetest.SpanRecorder
	tp      *sdktrace.TracerProvider
	metrics *sdkmetric.ManualReader

	mu      sync.Mutex
	created []string // ids reported through Config.Created
}

// createdIDs returns the referral ids the executor reported as its own
// creations, in order.
func (h *harness) createdIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.created...)
}

// options adjust a harness before it is built.
type options struct {
	// lossy puts a lossyProxy in this mode ("drop", "500") between the
	// client and the emulator's Referrals API, losing the first answer.
	lossy string
	// client adjusts the Partner Center client's configuration.
	client func(*pcclient.Config)
	// records replaces the store the executor records commands in.
	records func(*pgstore.Store) command.Records
}

func newHarness(t *testing.T, opts options) *harness {
	t.Helper()
	h := &harness{emu: pcemutest.Start(t), spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader()}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	h.pool = storetest.NewDB(t, service, storetest.RepoMigrations(t, service))
	h.store = pgstore.New(h.pool)
	ctx := context.Background()
	conn, err := bus.Connect(ctx, bustest.RunServer(t), service, bus.WithTracerProvider(h.tp),
		bus.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	h.conn = conn
	h.pub = &recordingPublisher{next: conn}

	apiURL := h.emu.URL
	if opts.lossy != "" {
		apiURL = newLossyProxy(t, h.emu.URL, opts.lossy, 1).URL
	}
	cfg := pcclient.Config{
		APIBaseURL: apiURL, WebhookAPIBaseURL: h.emu.URL,
		Tokens:         tokenSource(h.emu),
		BackoffInitial: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		TracerProvider: h.tp,
	}
	if opts.client != nil {
		opts.client(&cfg)
	}
	if h.pc, err = pcclient.New(cfg); err != nil {
		t.Fatal(err)
	}
	var records command.Records = h.store
	if opts.records != nil {
		records = opts.records(h.store)
	}
	h.exec, err = command.New(h.pc, records, h.pub, command.Config{
		Created: func(id string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.created = append(h.created, id)
		},
		BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		TracerProvider: h.tp, Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.metrics)).Meter("test"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// tokenSource gets tokens from emu with the password grant.
func tokenSource(emu *pcemutest.Emulator) pcclient.TokenSource {
	ep := &auth.Endpoint{TokenURL: emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	return auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password))
}

// consume runs the command consumer on JetStream until the test ends.
func (h *harness) consume(t *testing.T) {
	t.Helper()
	spec := command.Spec(4)
	spec.Backoff = bus.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.conn.Consume(ctx, spec, h.exec.Handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
}

// send publishes cmd on the command subject with Msg-Id msgID (the
// command id, unless a test simulates a redelivery beyond the duplicate
// window).
func (h *harness) send(t *testing.T, ctx context.Context, cmd *cosellv1.PartnerCenterCommand, msgID string) {
	t.Helper()
	if err := h.conn.Publish(ctx, bus.SubjectPartnerCenterCommand, msgID, cmd); err != nil {
		t.Fatal(err)
	}
}

// handle runs one delivery of cmd through the handler, as the bus would.
func (h *harness) handle(t *testing.T, cmd *cosellv1.PartnerCenterCommand, delivery uint64) error {
	t.Helper()
	data, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return h.exec.Handle(context.Background(), &bus.Msg{Subject: bus.SubjectPartnerCenterCommand, MsgID: cmd.GetCommandId(),
		Data: data, Deliveries: delivery})
}

// mustHandle runs a first delivery that must succeed and returns the
// result it published.
func (h *harness) mustHandle(t *testing.T, cmd *cosellv1.PartnerCenterCommand) *cosellv1.PartnerCenterResult {
	t.Helper()
	before := len(h.pub.all())
	if err := h.handle(t, cmd, 1); err != nil {
		t.Fatalf("handle %s: %v", cmd.GetCommandId(), err)
	}
	all := h.pub.all()
	if len(all) != before+1 {
		t.Fatalf("handle %s published %d results, want 1", cmd.GetCommandId(), len(all)-before)
	}
	return all[len(all)-1].res
}

// waitResult waits until a result for commandID was published.
func (h *harness) waitResult(t *testing.T, commandID string) *cosellv1.PartnerCenterResult {
	t.Helper()
	var res *cosellv1.PartnerCenterResult
	waitFor(t, "the result of "+commandID, func() bool {
		for _, p := range h.pub.all() {
			if p.res.GetCommandId() == commandID {
				res = p.res
				return true
			}
		}
		return false
	})
	return res
}

// commandsCounted returns partnercenter_adapter.commands by its attributes.
func (h *harness) commandsCounted(t *testing.T) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "partnercenter_adapter.commands" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				kind, _ := dp.Attributes.Value("kind")
				outcome, _ := dp.Attributes.Value("outcome")
				via, _ := dp.Attributes.Value("via")
				out[kind.AsString()+"/"+outcome.AsString()+"/"+via.AsString()] += dp.Value
			}
		}
	}
	return out
}

// published is one result the executor published.
type published struct {
	msgID string
	res   *cosellv1.PartnerCenterResult
}

// recordingPublisher publishes on JetStream and remembers what it
// published, including repeats JetStream drops as duplicates.
type recordingPublisher struct {
	next *bus.Conn
	mu   sync.Mutex
	list []published
}

func (p *recordingPublisher) Publish(ctx context.Context, subject, msgID string, m proto.Message) error {
	if err := p.next.Publish(ctx, subject, msgID, m); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, published{msgID: msgID, res: proto.Clone(m).(*cosellv1.PartnerCenterResult)})
	return nil
}

func (p *recordingPublisher) all() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.list...)
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

// body is a valid create body for opportunity oppID (a private deal).
func body(oppID, name string) []byte {
	doc := map[string]any{
		"name": name, "type": "Independent",
		"customerProfile": map[string]any{"name": "Contoso Retail", "address": map[string]any{"country": "US"}},
		"consent":         map[string]any{"consentToShareReferralWithMicrosoftSellers": false},
		"details":         map[string]any{"dealValue": 50000, "currency": "USD"},
	}
	if oppID != "" {
		doc["externalReferenceId"] = oppID
	}
	b, _ := json.Marshal(doc)
	return b
}

func createCmd(id, oppID string) *cosellv1.PartnerCenterCommand {
	return &cosellv1.PartnerCenterCommand{CommandId: id, OpportunityId: oppID,
		Action: &cosellv1.PartnerCenterCommand_Create{Create: &cosellv1.CreateReferral{BodyJson: body(oppID, "Contoso "+oppID), ExternalReferenceId: oppID}}}
}

func patchCmd(id, oppID, referralID, ifMatch, ops string) *cosellv1.PartnerCenterCommand {
	return &cosellv1.PartnerCenterCommand{CommandId: id, OpportunityId: oppID,
		Action: &cosellv1.PartnerCenterCommand_Patch{Patch: &cosellv1.PatchReferral{ReferralId: referralID, OpsJson: []byte(ops), IfMatch: ifMatch}}}
}

// referralsFor returns the emulator's referrals carrying oppID.
func referralsFor(h *harness, oppID string) []pcemutest.Referral {
	var out []pcemutest.Referral
	for _, r := range h.emu.Referrals() {
		if r.ExternalReferenceID == oppID {
			out = append(out, r)
		}
	}
	return out
}

// field reads a top-level or dotted field of a referral document.
func field(t *testing.T, doc []byte, path string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("referral_json: %v", err)
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func hasAttr(attrs []attribute.KeyValue, key attribute.Key, want string) bool {
	for _, a := range attrs {
		if a.Key == key && a.Value.Emit() == want {
			return true
		}
	}
	return false
}

// lossyProxy stands between the client and the emulator and loses the
// answer to the next `remaining` create POSTs after the emulator has
// handled them: the referral exists, the client never hears so. mode
// "drop" closes the connection; "500" answers a server error instead.
type lossyProxy struct {
	rp        *httputil.ReverseProxy
	mode      string
	mu        sync.Mutex
	remaining int
}

func newLossyProxy(t *testing.T, target, mode string, remaining int) *httptest.Server {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{rp: httputil.NewSingleHostReverseProxy(u), mode: mode, remaining: remaining}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func (p *lossyProxy) take() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remaining <= 0 {
		return false
	}
	p.remaining--
	return true
}

func (p *lossyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/engagements/referrals") || !p.take() {
		p.rp.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r) // the emulator creates the referral
	_, _ = io.Copy(io.Discard, rec.Result().Body)
	if p.mode == "500" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"code":"generalException","message":"An unexpected error occurred. Callers may retry this."}}`)
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}
