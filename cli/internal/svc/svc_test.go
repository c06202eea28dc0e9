package svc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP cosell_salesforce_api_usage Used calls.
# TYPE cosell_salesforce_api_usage gauge
cosell_salesforce_api_usage{otel_scope_name="x"} 12
cosell_salesforce_api_limit 15000
cosell_salesforce_api_budget_remaining{a="b",c="d e"} 11988 1700000000000
cosell_salesforce_api_budget_remaining_total 1
other_metric 5
`
	got := ParseMetrics([]byte(text), "cosell_salesforce_api_usage", "cosell_salesforce_api_limit", "cosell_salesforce_api_budget_remaining", "missing")
	want := map[string]float64{"cosell_salesforce_api_usage": 12, "cosell_salesforce_api_limit": 15000, "cosell_salesforce_api_budget_remaining": 11988}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not ready","failing":["nats"]}`))
		case "/admin/links/R-1/replay":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":"nothing to replay"}`))
		case "/admin/referrals/R-2":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"itemNotFound","message":"Partner Center has no referral R-2"}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New("mapper", srv.URL+"/", time.Second)

	r := c.Ready(ctx)
	if r.Ready || r.Status != "not ready" || len(r.Failing) != 1 || r.Failing[0] != "nats" {
		t.Errorf("Ready = %+v", r)
	}
	_, err := c.PostJSON(ctx, "/admin/links/R-1/replay", nil)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "mapper answered 409 for "+srv.URL+"/admin/links/R-1/replay: nothing to replay") {
		t.Errorf("409: %v", err)
	}
	_, err = c.GetJSON(ctx, "/admin/nothing")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("404: %v", err)
	}

	_, err = c.GetJSON(ctx, "/admin/referrals/R-2")
	if !errors.Is(err, ErrNotFound) || !strings.HasSuffix(err.Error(), ": itemNotFound: Partner Center has no referral R-2") {
		t.Errorf("Partner Center error shape: %v", err)
	}

	down := New("salesforce-adapter", "http://127.0.0.1:1", time.Second)
	_, err = down.GetJSON(ctx, "/metrics")
	if err == nil || !strings.HasPrefix(err.Error(), "salesforce-adapter at http://127.0.0.1:1 is not reachable: ") {
		t.Errorf("unreachable: %v", err)
	}
	if r := down.Ready(ctx); r.Ready || r.Status != "unreachable" || r.Error == "" {
		t.Errorf("Ready of a stopped service = %+v", r)
	}
}
