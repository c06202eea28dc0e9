package ctl_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cosell/cosell/cli/internal/ctl"
	"github.com/cosell/cosell/e2e/stack"
)

// binDir holds the stack's binaries, built once by TestMain; runRoot the
// stacks' run directories (logs are kept when a test fails).
var binDir, runRoot string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	root, err := os.MkdirTemp("", "cosellctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir, runRoot = filepath.Join(root, "bin"), filepath.Join(root, "run")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	err = stack.Build(ctx, binDir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build the stack:", err)
		os.RemoveAll(root)
		return 1
	}
	code := m.Run()
	if code == 0 {
		os.RemoveAll(root)
	} else {
		os.RemoveAll(binDir)
		fmt.Fprintln(os.Stderr, "service logs kept in", runRoot)
	}
	return code
}

// system is a running stack and the environment cosellctl gets for it.
type system struct {
	*stack.Stack
	env    map[string]string
	db     *stack.DB
	pc     *stack.PartnerCenter
	runDir string
}

func startSystem(t *testing.T) *system {
	t.Helper()
	dsn := os.Getenv("TEST_DATABASE_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	sys := &system{runDir: filepath.Join(runRoot, t.Name())}
	cfg := stack.Config{BinDir: binDir, RunDir: sys.runDir, DatabaseURL: dsn, ExtraEnv: map[string]map[string]string{}}
	for _, svc := range stack.Services() {
		cfg.ExtraEnv[svc] = map[string]string{"SHUTDOWN_TIMEOUT": "5s"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start the stack: %v (logs in %s)", err, sys.runDir)
	}
	sys.Stack = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop the stack: %v", err)
		}
	})
	if sys.db, err = stack.OpenDB(ctx, s.DatabaseURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.db.Close() })
	sys.pc = stack.NewPartnerCenter(s.PCURL)
	sys.env = s.CLIEnv()
	if err := sys.pc.WaitRegistered(ctx, s.WebhookURL); err != nil {
		t.Fatal(err)
	}
	return sys
}

// run runs cosellctl in process and returns its exit status and output.
func (s *system) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &ctl.App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return s.env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := app.Run(ctx, args)
	return code, out.String(), errOut.String()
}

// mustRun runs cosellctl and fails t unless it exits 0.
func (s *system) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := s.run(t, args...)
	if code != 0 {
		t.Fatalf("cosellctl %s: exit %d\nstdout:\n%s\nstderr:\n%s\n(logs in %s)", strings.Join(args, " "), code, out, errOut, s.runDir)
	}
	return out
}

// mustJSON runs cosellctl with --json and decodes its output into v.
func (s *system) mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := s.mustRun(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("cosellctl %s --json printed no JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// eventually polls check until it holds or timeout passes.
func (s *system) eventually(t *testing.T, timeout time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s: %s (logs in %s)", timeout, what, state, s.runDir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newReferral(name, customer, currency string) map[string]any {
	return map[string]any{
		"name": name,
		"customerProfile": map[string]any{
			"name":    customer,
			"address": map[string]any{"addressLine1": "500 Pine St", "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US"},
			"team":    []any{map[string]any{"firstName": "Jo", "lastName": "Buyer", "email": "jo.buyer@customer.example", "phoneNumber": "2065550100"}},
		},
		"details": map[string]any{
			"notes":           "Customer wants help with an Azure migration.",
			"dealValue":       42000.0,
			"currency":        currency,
			"closingDateTime": time.Now().UTC().Add(60 * 24 * time.Hour).Truncate(24 * time.Hour).Add(12 * time.Hour).Format(time.RFC3339),
			"requirements":    map[string]any{"solutions": []any{map[string]any{"id": "SOL-6115380-IPC"}}},
		},
	}
}

func (s *system) createReferral(t *testing.T, fields map[string]any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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

// waitLinked waits until the referral's opportunity is written and returns its id.
func (s *system) waitLinked(t *testing.T, id string) string {
	t.Helper()
	var opp string
	s.eventually(t, 20*time.Second, "referral "+id+" linked to an opportunity", func() (bool, string) {
		l, err := s.db.Link(context.Background(), id)
		if err != nil || l == nil {
			return false, fmt.Sprint(l, err)
		}
		opp = l.OpportunityID
		return opp != "" && l.ResultCommandID == l.CommandID, fmt.Sprintf("%+v", *l)
	})
	return opp
}

// TestAgainstStack runs the CLI against one running system: an inbound
// referral synced, then a Salesforce rejection parked and repaired.
func TestAgainstStack(t *testing.T) {
	start := time.Now()
	sys := startSystem(t)
	t.Logf("stack ready in %s", time.Since(start).Round(time.Millisecond))

	id := sys.createReferral(t, newReferral("CLI test: Contoso Seattle", "Contoso CLI Inc", "USD"))
	opp := sys.waitLinked(t, id)

	t.Run("Status", func(t *testing.T) {
		out := sys.mustRun(t, "status")
		for _, svc := range []string{"ingress", "partnercenter-adapter", "salesforce-adapter", "mapper"} {
			if !containsLine(out, svc, "yes") {
				t.Errorf("status does not show %s ready:\n%s", svc, out)
			}
		}
		var st ctl.Status
		sys.mustJSON(t, &st, "status")
		if len(st.Services) != 4 {
			t.Fatalf("status has %d services, want 4: %+v", len(st.Services), st.Services)
		}
		for _, s := range st.Services {
			if !s.Ready {
				t.Errorf("%s not ready: %+v", s.Service, s)
			}
		}
		consumers := map[string]bool{}
		for _, c := range st.Consumers {
			consumers[c.Consumer] = true
		}
		for _, want := range []string{"mapper-referrals", "salesforce-adapter-upsert", "partnercenter-adapter-notifications"} {
			if !consumers[want] {
				t.Errorf("status lists no consumer %s: %+v (%s)", want, st.Consumers, st.NATSError)
			}
		}
		if st.Budget == nil || st.Budget.Limit <= 0 || st.Budget.Remaining <= 0 {
			t.Errorf("status budget = %+v (%s), want the adapter's figures after its writes", st.Budget, st.BudgetError)
		}
		if st.DBError != "" {
			t.Errorf("status database error: %s", st.DBError)
		}
	})

	t.Run("LinksListAndShow", func(t *testing.T) {
		out := sys.mustRun(t, "links", "list")
		if !containsLine(out, id, opp, "active") {
			t.Errorf("links list has no active line for %s → %s:\n%s", id, opp, out)
		}
		for _, key := range []string{id, opp} {
			out := sys.mustRun(t, "links", "show", key)
			for _, want := range []string{"Referral:", id, "Opportunity:", opp, "State:", "active", "salesforce_written"} {
				if !strings.Contains(out, want) {
					t.Errorf("links show %s lacks %q:\n%s", key, want, out)
				}
			}
		}
		var shown struct {
			ReferralID, OpportunityID, State string
			Audit                            []struct{ Kind string }
		}
		sys.mustJSON(t, &shown, "links", "show", opp)
		if shown.ReferralID != id || shown.OpportunityID != opp || shown.State != "active" || len(shown.Audit) == 0 {
			t.Errorf("links show --json = %+v", shown)
		}
		code, _, errOut := sys.run(t, "links", "show", "no-such-referral")
		if code != 1 || !strings.Contains(errOut, `no link for referral or opportunity "no-such-referral"`) {
			t.Errorf("links show of an unknown id: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("Audit", func(t *testing.T) {
		var byRef, byOpp []struct{ Kind, Message string }
		sys.mustJSON(t, &byRef, "audit", id)
		sys.mustJSON(t, &byOpp, "audit", opp)
		kinds := func(evs []struct{ Kind, Message string }) []string {
			var k []string
			for _, e := range evs {
				k = append(k, e.Kind)
			}
			return k
		}
		got := strings.Join(kinds(byRef), ",")
		if !strings.Contains(got, "upsert_sent") || !strings.Contains(got, "salesforce_written") ||
			strings.Index(got, "upsert_sent") > strings.Index(got, "salesforce_written") {
			t.Errorf("audit %s kinds = %s, want upsert_sent then salesforce_written", id, got)
		}
		if strings.Join(kinds(byOpp), ",") != got {
			t.Errorf("audit by opportunity = %v, by referral = %s", kinds(byOpp), got)
		}
		out := sys.mustRun(t, "audit", id)
		if !containsLine(out, "upsert_sent") || !containsLine(out, "salesforce_written", opp) {
			t.Errorf("audit table:\n%s", out)
		}
	})

	t.Run("MappingDryRun", func(t *testing.T) {
		out := sys.mustRun(t, "mapping", "dry-run", "--referral", id)
		for _, want := range []string{"Event:", "update", "nothing would be sent: every value is already what cosell last wrote",
			"Opportunity fields (upsert by Referral_Identifier__c)"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry-run lacks %q:\n%s", want, out)
			}
		}
		if !containsLine(out, "Amount", "42000", "same") || !containsLine(out, "StageName", `"On Hold"`, "same") || strings.Contains(out, "\nName ") {
			t.Errorf("dry-run field lines:\n%s", out)
		}
		var dr struct {
			Event     string
			WouldSend bool
			Fields    []struct {
				Field   string
				Value   any
				Changed bool
			}
			Account struct{ Name string }
		}
		sys.mustJSON(t, &dr, "mapping", "dry-run", "--referral", id, "--event", "create")
		if dr.Event != "create" || !dr.WouldSend || dr.Account.Name != "Contoso CLI Inc" {
			t.Errorf("dry-run --event create = %+v", dr)
		}
		fields := map[string]any{}
		for _, f := range dr.Fields {
			fields[f.Field] = f.Value
		}
		if fields["StageName"] != "On Hold" || fields["CurrencyIsoCode"] != "USD" || fields["Name"] != "CLI test: Contoso Seattle" ||
			!strings.HasSuffix(fmt.Sprint(fields["Referral_Link__c"]), "/opportunities/"+id) {
			t.Errorf("dry-run create fields = %v", fields)
		}
	})

	t.Run("MappingValidateAgainstDescribe", func(t *testing.T) {
		out := sys.mustRun(t, "mapping", "validate")
		if !strings.Contains(out, "default.yaml (embedded): valid") || !strings.Contains(out, "the describe of Opportunity from "+sys.env["COSELL_SALESFORCE_ADAPTER_URL"]) {
			t.Errorf("mapping validate against the describe:\n%s", out)
		}
	})

	t.Run("MappingDryRunOpportunity", func(t *testing.T) {
		// The inbound opportunity is linked but still on hold: the opportunity
		// and its referral are read, every field is compared, and nothing is
		// sent until the seller accepts by moving it to the active stage.
		code, out, errOut := sys.run(t, "mapping", "dry-run", "--opportunity", opp)
		if code != 0 || !strings.Contains(out, "Salesforce → Partner Center") || !strings.Contains(out, "Event:       update") ||
			!strings.Contains(out, "Outcome:     nothing to send") || !strings.Contains(out, "not accepted yet") {
			t.Errorf("dry-run --opportunity: exit %d\n%s%s", code, out, errOut)
		}
		code, _, errOut = sys.run(t, "mapping", "dry-run", "--opportunity", "006000000000000AAA")
		if code != 1 || !strings.Contains(errOut, "read opportunity 006000000000000AAA: salesforce-adapter answered 404") {
			t.Errorf("dry-run of an unknown opportunity: exit %d, %s", code, errOut)
		}
	})

	t.Run("Resync", func(t *testing.T) {
		var ans struct{ ReferralID, OpportunityID, State string }
		sys.mustJSON(t, &ans, "resync", opp)
		if ans.ReferralID != id || ans.State != "active" {
			t.Errorf("resync %s = %+v", opp, ans)
		}
	})

	t.Run("PoisonMessageReplayed", func(t *testing.T) {
		// A message the mapper cannot decode is dead-lettered by the bus;
		// a replay publishes it again, so the mapper dead-letters it again.
		nc, err := nats.Connect(sys.NATSURL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		msg := &nats.Msg{Subject: "referral.observed.v1", Data: []byte("not a protobuf \xff\xfe"), Header: nats.Header{}}
		msg.Header.Set("Cosell-Type", "cosell.v1.ReferralObserved")
		if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID("cli-test-poison")); err != nil {
			t.Fatal(err)
		}
		type dl struct{ Ref, Subject, ReferralID, Reason string }
		poison := func() []dl {
			var dls []dl
			sys.mustJSON(t, &dls, "dead-letters", "list", "--service", "mapper")
			var out []dl
			for _, d := range dls {
				if d.ReferralID == "" && d.Subject == "referral.observed.v1" {
					out = append(out, d)
				}
			}
			return out
		}
		var first dl
		sys.eventually(t, 20*time.Second, "the poison message dead-lettered", func() (bool, string) {
			got := poison()
			if len(got) == 1 {
				first = got[0]
			}
			return len(got) == 1, fmt.Sprint(got)
		})
		out := sys.mustRun(t, "dead-letters", "show", first.Ref)
		for _, want := range []string{"Kind:", "message", "cosell.v1.ReferralObserved (undecodable", "Cosell-Type: cosell.v1.ReferralObserved", "6e6f7420612070726f746f627566"} {
			if !strings.Contains(out, want) {
				t.Errorf("dead-letters show %s lacks %q:\n%s", first.Ref, want, out)
			}
		}
		out = sys.mustRun(t, "dead-letters", "replay", first.Ref)
		if !strings.Contains(out, first.Ref+": published again on referral.observed.v1") {
			t.Errorf("replay: %s", out)
		}
		sys.eventually(t, 20*time.Second, "the replayed message dead-lettered again", func() (bool, string) {
			got := poison()
			return len(got) == 1 && got[0].Ref != first.Ref, fmt.Sprint(got)
		})
	})

	t.Run("Backfill", func(t *testing.T) {
		for k, v := range sys.ServiceEnv("partnercenter-adapter", 0, 0) {
			t.Setenv(k, v)
		}
		out := sys.mustRun(t, "backfill", "--since", "2020-01-01", "--partnercenter-adapter-bin", filepath.Join(binDir, "partnercenter-adapter"))
		var st ctl.Status
		sys.mustJSON(t, &st, "status")
		var found bool
		for _, c := range st.Sweeps {
			if c.Name == "backfill" {
				found = true
				if c.LastOutcome != "ok" || c.LastPublished < 1 {
					t.Errorf("backfill cursor = %+v, want ok and at least the seeded referral published\n%s", c, out)
				}
			}
		}
		if !found {
			t.Errorf("no backfill cursor after cosellctl backfill: %+v\n%s", st.Sweeps, out)
		}
		code, _, errOut := sys.run(t, "backfill", "--since", "2020-01-01", "--partnercenter-adapter-bin", filepath.Join(binDir, "nope"))
		if code != 1 || !strings.Contains(errOut, "--partnercenter-adapter-bin") {
			t.Errorf("backfill with a missing binary: exit %d, %s", code, errOut)
		}
	})

	t.Run("PartnerCenterLogin", func(t *testing.T) {
		// The one-time consent of the Secure Application Model, as an
		// operator gives it: cosellctl runs the adapter's `login` with this
		// shell's PC_* variables; the emulator stands in for the admin who
		// enters the code; the refresh token lands in the adapter's table.
		for k, v := range sys.ServiceEnv("partnercenter-adapter", 0, 0) {
			t.Setenv(k, v)
		}
		t.Setenv("PC_AUTH_MODE", "sam")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		before, err := sys.db.Int(ctx, `SELECT count(*) FROM partnercenter_adapter.refresh_tokens WHERE tenant_id = $1`, stack.PCTenantID)
		if err != nil {
			t.Fatal(err)
		}
		if before != 0 {
			t.Fatalf("%d refresh tokens stored before the consent", before)
		}

		pr, pw := io.Pipe()
		// The adapter prints the code and logs to stdout; its stderr (and
		// cosellctl's errors) are read once Run has returned.
		var errOut bytes.Buffer
		app := &ctl.App{Stdout: pw, Stderr: &errOut, Getenv: func(k string) string { return sys.env[k] }}
		done := make(chan int, 1)
		go func() {
			done <- app.Run(ctx, []string{"partnercenter", "login", "--partnercenter-adapter-bin", filepath.Join(binDir, "partnercenter-adapter")})
			pw.Close()
		}()
		var out strings.Builder
		userCode := regexp.MustCompile(`enter the code (\S+)`)
		approved := false
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if m := userCode.FindStringSubmatch(sc.Text()); m != nil && !approved {
				approved = true
				if err := sys.pc.Control(ctx, http.MethodPost, "/devicecode/approve", map[string]string{"user_code": m[1]}, nil); err != nil {
					t.Errorf("approve the device code %s: %v", m[1], err)
				}
			}
		}
		code := <-done
		if code != 0 || !approved || !strings.Contains(out.String(), "To consent, open") || !strings.Contains(out.String(), "consent stored") {
			t.Fatalf("cosellctl partnercenter login: exit %d, code approved %v\nstdout:\n%s\nstderr:\n%s", code, approved, out.String(), errOut.String())
		}
		after, err := sys.db.Int(ctx, `SELECT count(*) FROM partnercenter_adapter.refresh_tokens WHERE tenant_id = $1`, stack.PCTenantID)
		if err != nil || after != 1 {
			t.Errorf("refresh tokens stored after the consent: %d, %v; want 1", after, err)
		}

		// Without SAM there is nothing to consent to: the adapter says so.
		t.Setenv("PC_AUTH_MODE", "password")
		if code, _, errOut := sys.run(t, "partnercenter", "login", "--partnercenter-adapter-bin", filepath.Join(binDir, "partnercenter-adapter")); code != 1 ||
			!strings.Contains(errOut, "partnercenter-adapter login failed") {
			t.Errorf("login in password mode: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("RejectionParkedThenRepaired", func(t *testing.T) {
		bad := sys.createReferral(t, newReferral("CLI test: Contoso Prague", "Contoso CLI s.r.o.", "CZK"))
		var ref string
		sys.eventually(t, 20*time.Second, "a parked sync of "+bad, func() (bool, string) {
			var dls []struct{ Ref, ReferralID, Reason string }
			sys.mustJSON(t, &dls, "dead-letters", "list")
			for _, d := range dls {
				if d.ReferralID == bad {
					ref = d.Ref
					return true, ""
				}
			}
			return false, fmt.Sprint(dls)
		})
		out := sys.mustRun(t, "dead-letters", "list")
		if !containsLine(out, ref, "parked sync", bad, "Salesforce rejected the opportunity") {
			t.Errorf("dead-letters list:\n%s", out)
		}
		out = sys.mustRun(t, "dead-letters", "show", ref)
		for _, want := range []string{"cosell.v1.ReferralObserved", `"referral_id": "` + bad + `"`, `"currency": "CZK"`, "restricted picklist"} {
			if !strings.Contains(out, want) {
				t.Errorf("dead-letters show %s lacks %q:\n%s", ref, want, out)
			}
		}
		out = sys.mustRun(t, "links", "list", "--state", "parked")
		if !containsLine(out, bad, "parked") || strings.Contains(out, id) {
			t.Errorf("links list --state parked:\n%s", out)
		}

		// The fix: the seller corrects the currency (held), the operator replays.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := sys.pc.UpdateAsMicrosoft(ctx, bad, map[string]any{"details": map[string]any{"currency": "EUR"}}); err != nil {
			t.Fatal(err)
		}
		sys.eventually(t, 20*time.Second, "the corrected snapshot held", func() (bool, string) {
			out := sys.mustRun(t, "audit", bad)
			return strings.Contains(out, "snapshot_held"), out
		})
		out = sys.mustRun(t, "mapping", "dry-run", "--referral", bad)
		if !strings.Contains(out, "the link is parked") || !containsLine(out, "CurrencyIsoCode", `"EUR"`) {
			t.Errorf("dry-run of the parked referral:\n%s", out)
		}
		out = sys.mustRun(t, "dead-letters", "replay", ref)
		if !strings.Contains(out, "replayed by the mapper: referral "+bad+" is active") {
			t.Errorf("dead-letters replay:\n%s", out)
		}
		sys.waitLinked(t, bad)
		if code, _, errOut := sys.run(t, "dead-letters", "replay", ref); code != 1 || !strings.Contains(errOut, "already replayed") {
			t.Errorf("second replay: exit %d, %s", code, errOut)
		}
		var pending []struct{ Ref, ReferralID string }
		sys.mustJSON(t, &pending, "dead-letters", "list")
		for _, d := range pending {
			if d.ReferralID == bad {
				t.Errorf("parked sync %s of %s still pending after the replay", d.Ref, bad)
			}
		}

		// The customer asks to be forgotten: the operator purges what the
		// pipeline stored about this referral, and only that.
		var dry, done struct {
			DryRun   bool  `json:"dryRun"`
			Total    int64 `json:"total"`
			RecordID int64 `json:"recordId"`
			Tables   []struct {
				Schema, Table string
				Rows          int64
			} `json:"tables"`
		}
		sys.mustJSON(t, &dry, "purge", "--referral", bad)
		rows := map[string]int64{}
		for _, tb := range dry.Tables {
			rows[tb.Schema+"."+tb.Table] = tb.Rows
		}
		if !dry.DryRun || rows["mapper.links"] != 1 || rows["mapper.audit_events"] < 3 || rows["mapper.dead_letters"] < 1 {
			t.Errorf("purge dry run of %s = %+v, want its link, its audit trail and its dead letter", bad, dry)
		}
		if out := sys.mustRun(t, "links", "show", bad); !strings.Contains(out, bad) {
			t.Errorf("the dry run removed the link:\n%s", out)
		}
		sys.mustJSON(t, &done, "purge", "--referral", bad, "--yes")
		if done.DryRun || done.Total < dry.Total || done.RecordID == 0 {
			t.Errorf("purge --yes = %+v, dry run %+v", done, dry)
		}
		if code, _, errOut := sys.run(t, "links", "show", bad); code != 1 || !strings.Contains(errOut, "no link") {
			t.Errorf("links show after the purge: exit %d, %s", code, errOut)
		}
		if code, out, errOut := sys.run(t, "audit", bad); code != 1 || !strings.Contains(errOut, "no audit events and no link") {
			t.Errorf("audit of %s after the purge: exit %d\n%s%s", bad, code, out, errOut)
		}
		if out := sys.mustRun(t, "links", "show", id); !strings.Contains(out, "active") {
			t.Errorf("the purge touched another customer's link %s:\n%s", id, out)
		}
	})
}

// containsLine reports whether one line of out contains every part.
func containsLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
