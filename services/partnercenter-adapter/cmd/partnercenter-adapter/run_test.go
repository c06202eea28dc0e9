package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/registration"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

type stack struct {
	emu     *pcemutest.Emulator
	natsURL string
	env     map[string]string
	addr    string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newStack(t *testing.T, mode string, emuArgs ...string) *stack {
	t.Helper()
	fsys, err := migrations.FS(serviceName)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{emu: pcemutest.Start(t, emuArgs...), natsURL: bustest.RunServer(t), addr: freeAddr(t)}
	s.env = map[string]string{
		"HTTP_ADDR":               s.addr,
		"DATABASE_URL":            storetest.NewDSN(t, storetest.Migrations{Service: serviceName, FS: fsys}),
		"NATS_URL":                s.natsURL,
		"LOG_LEVEL":               "warn",
		"SHUTDOWN_TIMEOUT":        "10s",
		"PC_API_BASE_URL":         s.emu.URL,
		"PC_WEBHOOK_API_BASE_URL": s.emu.URL,
		"PC_LOGIN_BASE_URL":       s.emu.URL,
		"PC_TENANT_ID":            pcemutest.TenantID,
		"PC_CLIENT_ID":            pcemutest.ClientID,
		"PC_CLIENT_SECRET":        pcemutest.ClientSecret,
		"PC_AUTH_MODE":            "password",
		"PC_USERNAME":             pcemutest.Username,
		"PC_PASSWORD":             pcemutest.Password,
		"PC_TOKEN_KEY":            base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"PC_MODE":                 mode,
		"PC_WEBHOOK_REGISTER":     "true",
		"PC_WEBHOOK_URL":          "http://127.0.0.1:1/webhooks/partnercenter",
		"PC_SWEEP_INTERVAL":       "1h",
	}
	return s
}

// serve runs the service until the test ends and checks it stops cleanly.
func (s *stack) serve(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler), s.env) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	waitFor(t, "readiness", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		res, err := http.Get("http://" + s.addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

func (s *stack) conn(t *testing.T) *bus.Conn {
	t.Helper()
	c, err := bus.Connect(context.Background(), s.natsURL, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func (s *stack) client(t *testing.T) *pcclient.Client {
	t.Helper()
	ep := &auth.Endpoint{TokenURL: s.emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	c, err := pcclient.New(pcclient.Config{APIBaseURL: s.emu.URL, WebhookAPIBaseURL: s.emu.URL,
		Tokens: auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func streamMsgs(t *testing.T, c *bus.Conn, name string) uint64 {
	t.Helper()
	st, err := c.JetStream().Stream(context.Background(), name)
	if err != nil {
		return 0
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeWebhookMode(t *testing.T) {
	s := newStack(t, "webhook")
	s.serve(t)
	s.checkWebhookFlow(t)
}

// TestLoginThenServeWithSAM is the production path: an operator consents
// once with `login`, then the service runs on the stored refresh token.
func TestLoginThenServeWithSAM(t *testing.T) {
	s := newStack(t, "webhook", "-device-code-interval", "1s")
	s.env["PC_AUTH_MODE"] = "sam"
	delete(s.env, "PC_USERNAME")
	delete(s.env, "PC_PASSWORD")

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- login(context.Background(), slog.New(slog.DiscardHandler), s.env, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	code := regexp.MustCompile(`enter the code (\S+)`)
	for sc.Scan() {
		if m := code.FindStringSubmatch(sc.Text()); m != nil {
			s.emu.ApproveDeviceCode(m[1])
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("login: %v", err)
	}

	s.serve(t)
	s.checkWebhookFlow(t)
}

// TestServeWithoutConsentCountsFailedRefreshes is an install whose consent
// is missing: no Partner Center call is ever made (so no 401 is counted),
// but every failed token grant is, on /metrics.
func TestServeWithoutConsentCountsFailedRefreshes(t *testing.T) {
	s := newStack(t, "webhook")
	s.env["PC_AUTH_MODE"] = "sam"
	delete(s.env, "PC_USERNAME")
	delete(s.env, "PC_PASSWORD")
	s.serve(t)

	// The start-up registration needs a token and keeps trying.
	waitFor(t, "a failed refresh on /metrics", func() bool {
		return s.metricValue(t, "partnercenter_adapter_token_refreshes_total", `outcome="error"`, `reason="no_refresh_token"`) >= 1
	})
	if v := s.metricValue(t, "partnercenter_adapter_token_refreshes_total", `outcome="ok"`); v != 0 {
		t.Errorf("%v successful refreshes without consent", v)
	}
	if n := s.emu.Counters()["token"]; n != 0 {
		t.Errorf("%d token endpoint calls without a refresh token", n)
	}
}

// metricValue scrapes /metrics and returns the value of the series of name
// whose labels include every one of labels (-1 when there is none).
func (s *stack) metricValue(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	res, err := http.Get("http://" + s.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		series, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !strings.HasPrefix(series, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	return -1
}

func (s *stack) checkWebhookFlow(t *testing.T) {
	t.Helper()
	ctx := context.Background()

	waitFor(t, "the webhook registration", func() bool {
		reg, found, err := s.client(t).GetRegistration(ctx)
		return err == nil && found && reg.WebhookURL == s.env["PC_WEBHOOK_URL"] && len(reg.WebhookEvents) == len(registration.Events())
	})

	ref := s.emu.SeedInbound("wired", false)
	c := s.conn(t)
	n := &cosellv1.PartnerCenterNotification{EventName: "referral-created", ResourceUri: s.emu.URL + "/v1.0/engagements/referrals/" + ref.ID,
		ResourceName: "referral", ResourceChangeUtc: timestamppb.Now(), ReceivedAt: timestamppb.Now()}
	subject, err := bus.NotificationSubject(n.EventName)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, subject, "wired-1", n); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the snapshot", func() bool { return streamMsgs(t, c, bus.StreamReferrals) == 1 })
}

func TestServePollOnlyNeverTouchesTheRegistration(t *testing.T) {
	s := newStack(t, "poll-only")
	s.serve(t)
	// The first sweep runs at start; once its row exists the service has
	// been up through registration's turn too.
	pool := storetest.Open(t, s.env["DATABASE_URL"])
	waitFor(t, "the first sweep", func() bool {
		var outcome string
		err := pool.QueryRow(context.Background(), `SELECT last_outcome FROM partnercenter_adapter.cursors WHERE name = 'sweep'`).Scan(&outcome)
		return err == nil && outcome == "initialized"
	})
	if n := s.emu.Counters()["webhooks.registration"]; n != 0 {
		t.Errorf("poll-only mode made %d webhook registration calls", n)
	}
	c := s.conn(t)
	if _, err := c.JetStream().Consumer(context.Background(), bus.StreamNotifications, "partnercenter-adapter-notifications"); err == nil {
		t.Error("poll-only mode created the notification consumer")
	}
}

func TestBackfillCommand(t *testing.T) {
	s := newStack(t, "webhook")
	for range 3 {
		s.emu.SeedInbound("history", false)
	}
	if err := backfill(context.Background(), slog.New(slog.DiscardHandler), s.env, []string{"--since", "2020-01-01"}); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, s.conn(t), bus.StreamReferrals); n != 3 {
		t.Errorf("backfill published %d snapshots, want 3", n)
	}
	if err := backfill(context.Background(), slog.New(slog.DiscardHandler), s.env, nil); err == nil {
		t.Error("backfill without --since succeeded")
	}
}

func TestParseSince(t *testing.T) {
	for in, want := range map[string]string{
		"2026-01-01":                "2026-01-01T00:00:00Z",
		"2026-01-01T10:00:00+02:00": "2026-01-01T08:00:00Z",
	} {
		got, err := parseSince(in)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("parseSince(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "01/02/2026"} {
		if _, err := parseSince(bad); err == nil {
			t.Errorf("parseSince(%q) succeeded", bad)
		}
	}
}

func TestMigrateNeedsOnlyTheDatabase(t *testing.T) {
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: "ingress", FS: mustFS(t, "ingress")})
	if err := migrateUp(context.Background(), slog.New(slog.DiscardHandler), map[string]string{"DATABASE_URL": dsn}); err != nil {
		t.Fatal(err)
	}
	pool := storetest.Open(t, dsn)
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM partnercenter_adapter.cursors`).Scan(&n); err != nil {
		t.Fatalf("tables missing after migrate: %v", err)
	}
	// Running it again is a no-op.
	if err := migrateUp(context.Background(), slog.New(slog.DiscardHandler), map[string]string{"DATABASE_URL": dsn}); err != nil {
		t.Fatal(err)
	}
}

func mustFS(t *testing.T, service string) fs.FS {
	t.Helper()
	f, err := migrations.FS(service)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestServeCommandsAndAdmin: the serving process consumes create commands
// (in poll-only mode too: commands are not webhooks) and answers the
// operator's admin read.
func TestServeCommandsAndAdmin(t *testing.T) {
	s := newStack(t, "poll-only")
	s.serve(t)
	ctx := context.Background()
	c := s.conn(t)
	body := []byte(`{"name":"Contoso","type":"Independent","customerProfile":{"name":"Contoso","address":{"country":"US"}},"consent":{},"details":{"dealValue":10}}`)
	cmd := &cosellv1.PartnerCenterCommand{CommandId: "wired-create", OpportunityId: "006W",
		Action: &cosellv1.PartnerCenterCommand_Create{Create: &cosellv1.CreateReferral{BodyJson: body, ExternalReferenceId: "006W"}}}
	if err := c.Publish(ctx, bus.SubjectPartnerCenterCommand, cmd.CommandId, cmd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the result", func() bool { return streamMsgs(t, c, bus.StreamResults) == 1 })
	st, err := c.JetStream().Stream(ctx, bus.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var res cosellv1.PartnerCenterResult
	if err := proto.Unmarshal(raw.Data, &res); err != nil {
		t.Fatal(err)
	}
	if res.GetOutcome() != cosellv1.Outcome_OUTCOME_OK || !res.GetCreated() || res.GetCommandId() != "wired-create" {
		t.Fatalf("result %+v", &res)
	}

	r, err := http.Get("http://" + s.addr + "/admin/referrals/" + res.GetReferralId())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || !strings.Contains(string(got), `"externalReferenceId":"006W"`) {
		t.Errorf("admin read: %d %s", r.StatusCode, got)
	}
	r, err = http.Get("http://" + s.addr + "/admin/referrals/9d4e3c1a-0000-4000-8000-000000000404")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("admin read of an unknown referral: %d", r.StatusCode)
	}
}
