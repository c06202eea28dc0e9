package ctl

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestWebhookUsageAndUnreachableAdapter(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"webhook", "show", "extra"}, `unexpected argument "extra"`},
		{[]string{"webhook", "test", "--wait", "-1s"}, "--wait -1s: want a positive duration"},
		{[]string{"webhook", "test", "--wait", "soon"}, `invalid value "soon" for flag -wait`},
		{[]string{"webhook", "register", "--overwrite=maybe"}, "invalid boolean value"},
	} {
		code, _, errOut := offline(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("cosellctl %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	for _, args := range [][]string{{"webhook", "show"}, {"webhook", "register"}, {"webhook", "test"}} {
		code, out, errOut := offline(t, args...)
		if code != 1 || out != "" || !strings.Contains(errOut, "partnercenter-adapter at http://127.0.0.1:1 is not reachable") ||
			!strings.Contains(errOut, "COSELL_PARTNERCENTER_ADAPTER_URL") {
			t.Errorf("cosellctl %s with the adapter down: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
	// --wait needs Postgres, checked before a test event is spent.
	code, _, errOut := offline(t, "webhook", "test", "--wait", "5s")
	if code != 1 || !strings.Contains(errOut, "--wait reads ingress.test_events: postgres at") {
		t.Errorf("webhook test --wait with Postgres down: exit %d, stderr %q", code, errOut)
	}
}

// TestWebhookAdapterErrors: the adapter's refusals and Partner Center's
// failures come out as one clear line and exit 1.
func TestWebhookAdapterErrors(t *testing.T) {
	var lastBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/admin/webhook/register":
			var b bytes.Buffer
			_, _ = b.ReadFrom(r.Body)
			lastBody = b.String()
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":{"code":"registrationElsewhere","message":"the registration points at https://prod.example/hook, not at this install's http://x/hook; left alone. Pass overwrite to take it over"}}`))
		case "/admin/webhook/test":
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"code":"partnerCenterThrottled","message":"requesting a validation event: partner center SendValidationEvent: HTTP 429","upstreamStatus":429,"retryAfterSeconds":42}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		app := &App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
			if k == "COSELL_PARTNERCENTER_ADAPTER_URL" {
				return srv.URL
			}
			return ""
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return app.Run(ctx, args), out.String(), errOut.String()
	}

	code, _, errOut := run("webhook", "register", "--overwrite=false", "--json")
	if code != 1 || !strings.Contains(errOut, "registrationElsewhere: the registration points at https://prod.example/hook") ||
		!strings.Contains(errOut, "To take it over: cosellctl webhook register --overwrite") || lastBody != `{"force":false,"overwrite":false}` {
		t.Errorf("refused register: exit %d, stderr %q, sent %s", code, errOut, lastBody)
	}
	run("webhook", "register", "--overwrite", "--force")
	if lastBody != `{"force":true,"overwrite":true}` {
		t.Errorf("register --overwrite --force sent %s", lastBody)
	}
	code, _, errOut = run("webhook", "test")
	if code != 1 || !strings.Contains(errOut, "answered 429") || !strings.Contains(errOut, "partnerCenterThrottled") {
		t.Errorf("throttled test: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run("webhook", "show")
	if code != 1 || !strings.Contains(errOut, "has no /admin/webhook route: is it older than this cosellctl?") {
		t.Errorf("an adapter without the route: exit %d, stderr %q", code, errOut)
	}
}

func TestWebhookStatusText(t *testing.T) {
	for _, tc := range []struct {
		res  WebhookTestResult
		want string
	}{
		{WebhookTestResult{StatusError: "HTTP 503"}, "unknown: HTTP 503"},
		{WebhookTestResult{Status: "pending"}, "pending (no delivery attempt yet)"},
		{WebhookTestResult{Status: "completed", Results: []ValidationResult{{ResponseCode: "Accepted"}}}, "completed (1 attempt, last: Accepted)"},
		{WebhookTestResult{Status: "pending", Results: []ValidationResult{{ResponseCode: "Unauthorized"}, {SystemError: true, ResponseCode: "", ResponseMessage: "connection refused"}}},
			"pending (2 attempts, last: connection refused)"},
	} {
		if got := statusText(tc.res); got != tc.want {
			t.Errorf("statusText(%+v) = %q, want %q", tc.res, got, tc.want)
		}
	}
}
