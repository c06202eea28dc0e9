package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
)

// fakeSalesforce answers describes slowly and counts them.
type fakeSalesforce struct {
	describes atomic.Int64
	fail      atomic.Pointer[error]
	records   []json.RawMessage
}

func (f *fakeSalesforce) Query(context.Context, string) (*sfclient.QueryResult, error) {
	return &sfclient.QueryResult{Done: true, TotalSize: len(f.records), Records: f.records}, nil
}

func (f *fakeSalesforce) Describe(_ context.Context, object string) (json.RawMessage, error) {
	f.describes.Add(1)
	time.Sleep(20 * time.Millisecond)
	if err := f.fail.Load(); err != nil {
		return nil, *err
	}
	return json.RawMessage(`{"name":"` + object + `"}`), nil
}

func serve(h *Handler, path string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/opportunities/{id}", h.Opportunity)
	mux.HandleFunc("GET /admin/describe/{object}", h.Describe)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestDescribeIsFetchedOnceForConcurrentRequestsAndAgainAfterTheTTL(t *testing.T) {
	sf := &fakeSalesforce{}
	h := New(sf, time.Minute, nil)
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if rec := serve(h, "/admin/describe/Opportunity"); rec.Code != http.StatusOK || rec.Body.String() != `{"name":"Opportunity"}` {
				t.Errorf("describe = %d %s", rec.Code, rec.Body)
			}
		})
	}
	wg.Wait()
	if n := sf.describes.Load(); n != 1 {
		t.Fatalf("%d describe calls for 10 concurrent requests, want 1", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	serve(h, "/admin/describe/Opportunity")
	if n := sf.describes.Load(); n != 2 {
		t.Fatalf("%d describe calls after the TTL, want 2", n)
	}
}

func TestDescribeErrorsAreNotCached(t *testing.T) {
	sf := &fakeSalesforce{}
	fail := func(err error) { sf.fail.Store(&err) }
	fail(&sfclient.APIError{Status: http.StatusNotFound, Op: "describe"})
	h := New(sf, time.Hour, nil)
	if rec := serve(h, "/admin/describe/Nope__c"); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown object = %d", rec.Code)
	}
	fail(sfclient.ErrBudgetExhausted)
	if rec := serve(h, "/admin/describe/Nope__c"); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("budget exhausted = %d %v", rec.Code, rec.Header())
	}
	fail(errors.New("connection reset"))
	if rec := serve(h, "/admin/describe/Nope__c"); rec.Code != http.StatusBadGateway {
		t.Fatalf("transport error = %d", rec.Code)
	}
	if n := sf.describes.Load(); n != 3 {
		t.Fatalf("%d describe calls, want 3 (errors are not cached)", n)
	}
}

func TestOpportunity(t *testing.T) {
	sf := &fakeSalesforce{records: []json.RawMessage{json.RawMessage(
		`{"attributes":{"type":"Opportunity"},"Id":"0068d0000000001AAA","SystemModstamp":"2030-01-01T00:00:00.000+0000","Amount":1.0E3}`)}}
	h := New(sf, 0, nil)
	rec := serve(h, "/admin/opportunities/0068d0000000001AAA")
	if rec.Code != http.StatusOK || rec.Body.String() != `{"Amount":1.0E3,"Id":"0068d0000000001AAA","SystemModstamp":"2030-01-01T00:00:00.000+0000"}` ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("opportunity = %d %s", rec.Code, rec.Body)
	}
	sf.records = nil
	if rec := serve(h, "/admin/opportunities/0068d0000000001AAA"); rec.Code != http.StatusNotFound {
		t.Fatalf("none = %d", rec.Code)
	}
	if rec := serve(h, "/admin/opportunities/006%27"); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad id = %d", rec.Code)
	}
}
