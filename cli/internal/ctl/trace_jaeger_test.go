package ctl_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/cli/internal/ctl"
	"github.com/cosell/cosell/e2e/stack"
)

// buildJaeger builds the pinned Jaeger (tools/jaeger, outside go.work) into
// dir, as `make jaeger` does. Only TestTraceAgainstJaeger pays for it; with
// a warm build cache it takes seconds, cold about ten minutes on the 2-core
// machine (a clean clone's first `bash .ci/run` there: 11m43s, this
// package 617 s of it).
func buildJaeger(t *testing.T, dir string) string {
	t.Helper()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "jaeger")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-mod=readonly", "-o", bin, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = filepath.Join(root, "tools", "jaeger")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build Jaeger from tools/jaeger: %v\n%s", err, out)
	}
	t.Logf("built Jaeger in %s", time.Since(start).Round(time.Second))
	return bin
}

// TestTraceAgainstJaeger runs the whole system with the pinned Jaeger, has
// a Microsoft seller share a referral, and checks that `cosellctl trace`
// prints its journey from ingress's webhook to the Salesforce write.
func TestTraceAgainstJaeger(t *testing.T) {
	jaeger := buildJaeger(t, binDir)
	dsn := os.Getenv("TEST_DATABASE_URL")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	sys := &system{runDir: filepath.Join(runRoot, t.Name())}
	cfg := stack.Config{BinDir: binDir, RunDir: sys.runDir, DatabaseURL: dsn, JaegerBinary: jaeger, ExtraEnv: map[string]map[string]string{}}
	for _, svc := range stack.Services() {
		cfg.ExtraEnv[svc] = map[string]string{"SHUTDOWN_TIMEOUT": "5s"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start the stack with Jaeger: %v (logs in %s)", err, sys.runDir)
	}
	sys.Stack = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop the stack: %v", err)
		}
	})
	if s.JaegerURL == "" || s.Process("jaeger") == nil {
		t.Fatalf("stack started no Jaeger: JaegerURL %q", s.JaegerURL)
	}
	if got := s.Process("mapper-1").Env["OTEL_EXPORTER_OTLP_ENDPOINT"]; !strings.HasPrefix(got, "http://127.0.0.1:") {
		t.Fatalf("mapper exports traces to %q, want Jaeger's OTLP/HTTP endpoint", got)
	}
	if sys.db, err = stack.OpenDB(ctx, s.DatabaseURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.db.Close() })
	sys.pc = stack.NewPartnerCenter(s.PCURL)
	sys.env = map[string]string{"COSELL_JAEGER_URL": s.JaegerURL}
	if err := sys.pc.WaitRegistered(ctx, s.WebhookURL); err != nil {
		t.Fatal(err)
	}

	code, _, errOut := sys.run(t, "trace", "no-such-referral")
	if code != 1 || !strings.Contains(errOut, `carries referral "no-such-referral"`) && !strings.Contains(errOut, "has no traces of any service yet") {
		t.Errorf("trace of an unknown referral: exit %d, stderr %q", code, errOut)
	}

	id := sys.createReferral(t, newReferral("Trace test: Contoso Tacoma", "Contoso Trace Inc", "USD"))
	opp := sys.waitLinked(t, id)

	// Spans leave each service every 500 ms (the stack sets
	// OTEL_BSP_SCHEDULE_DELAY with Jaeger): wait for the whole journey.
	services := []string{"ingress", "partnercenter-adapter", "mapper", "salesforce-adapter"}
	var j ctl.Journey
	var out string
	sys.eventually(t, 30*time.Second, "the referral's spans of every service in Jaeger", func() (bool, string) {
		code, o, e := sys.run(t, "trace", id, "--json")
		if code != 0 {
			return false, e
		}
		j = ctl.Journey{}
		if err := json.Unmarshal([]byte(o), &j); err != nil {
			return false, err.Error() + ": " + o
		}
		seen := map[string]bool{}
		oppSeen := false
		for _, tr := range j.Traces {
			for _, sp := range tr.Spans {
				seen[sp.Service] = true
				oppSeen = oppSeen || sp.Attributes["opportunity"] == opp
			}
		}
		for _, svc := range services {
			if !seen[svc] {
				return false, "no span of " + svc + " yet: " + o
			}
		}
		return oppSeen, "no span with opportunity " + opp + " yet: " + o
	})
	out = sys.mustRun(t, "trace", id)
	t.Logf("cosellctl trace %s:\n%s", id, out)

	if j.ReferralID != id || j.JaegerURL != s.JaegerURL || len(j.Traces) == 0 {
		t.Fatalf("journey = %+v", j)
	}
	// The webhook's trace: ingress's server span is its root and the
	// referral's way through the adapter and the mapper to Salesforce
	// hangs below it.
	var webhook *ctl.TraceTimeline
	for i, tr := range j.Traces {
		if len(tr.Spans) > 0 && tr.Spans[0].Service == "ingress" && tr.Spans[0].Depth == 0 && tr.Spans[0].Attributes["referral"] == id {
			webhook = &j.Traces[i]
		}
	}
	if webhook == nil {
		t.Fatalf("no trace rooted at ingress's webhook span tagged with %s:\n%s", id, out)
	}
	root := webhook.Spans[0]
	if root.Attributes["http.method"] != "POST" || root.Attributes["http.status"] == "" || root.OffsetMS < 0 || root.DurationMS <= 0 {
		t.Errorf("webhook root span = %+v", root)
	}
	inWebhook := map[string]bool{}
	for i, sp := range webhook.Spans {
		inWebhook[sp.Service] = true
		if i > 0 && (sp.Depth < 1 || sp.ParentID == "") {
			t.Errorf("span %d of the webhook trace is not below the root: %+v", i, sp)
		}
		if sp.OffsetMS < webhook.OffsetMS {
			t.Errorf("span starts before its trace: %+v (trace at %.3f ms)", sp, webhook.OffsetMS)
		}
	}
	for _, svc := range services {
		if !inWebhook[svc] {
			t.Errorf("the webhook's trace has no span of %s:\n%s", svc, out)
		}
	}
	// The text timeline: a header per trace, the columns, the root line
	// with its attributes, child spans indented, the opportunity id shown.
	for _, want := range []string{"Referral " + id + ":", "Trace " + webhook.TraceID, "OFFSET", "DURATION", "SERVICE", "SPAN", "ATTRIBUTES",
		"referral=" + id, "opportunity=" + opp, "http=POST"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace output lacks %q:\n%s", want, out)
		}
	}
	if !containsLine(out, "+0.", "ingress", "referral="+id, "http=POST") {
		t.Errorf("no timeline line for ingress's webhook span:\n%s", out)
	}
	if !containsLine(out, "mapper", "  ", "referral="+id) {
		t.Errorf("no indented mapper line:\n%s", out)
	}
}
