// Package admin serves the read-only endpoints the operator CLI calls
// (`cosellctl mapping dry-run` and `mapping validate`): an opportunity in
// exactly the record_json shape the poller publishes, and the describe of
// an sObject, cached. They are cluster-internal and unauthenticated, like
// the health and metrics endpoints, and never write to Salesforce.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/opprecord"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// DefaultDescribeTTL is how long a describe is served from the cache.
const DefaultDescribeTTL = 10 * time.Minute

// Salesforce is what the endpoints need of the Salesforce client.
type Salesforce interface {
	Query(ctx context.Context, soql string) (*sfclient.QueryResult, error)
	Describe(ctx context.Context, sobject string) (json.RawMessage, error)
}

// Handler serves the admin endpoints.
type Handler struct {
	sf  Salesforce
	ttl time.Duration
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	describes map[string]*describeEntry
}

// describeEntry is one cached describe; ready closes when the first fetch
// ends, so concurrent requests for the same object make one call.
type describeEntry struct {
	ready   chan struct{}
	body    json.RawMessage
	err     error
	fetched time.Time
}

// New returns the handler; ttl ≤ 0 means DefaultDescribeTTL.
func New(sf Salesforce, ttl time.Duration, log *slog.Logger) *Handler {
	if ttl <= 0 {
		ttl = DefaultDescribeTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{sf: sf, ttl: ttl, log: log, now: time.Now, describes: map[string]*describeEntry{}}
}

// Opportunity serves GET /admin/opportunities/{id}: 200 with the record
// as the poller publishes it, 404 when Salesforce has no live opportunity
// with that id.
func (h *Handler) Opportunity(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !opprecord.ValidID(id) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not a Salesforce record id", id))
		return
	}
	trace.SpanFromContext(r.Context()).SetAttributes(upsert.AttrOpportunityID.String(id))
	res, err := h.sf.Query(r.Context(), opprecord.SOQL("Id = "+sfclient.QuoteSOQL(id), ""))
	if err != nil {
		h.salesforceError(w, r, err)
		return
	}
	if len(res.Records) == 0 {
		writeError(w, http.StatusNotFound, "no opportunity "+id)
		return
	}
	rec, err := opprecord.Decode(res.Records[0])
	if err != nil {
		h.salesforceError(w, r, err)
		return
	}
	if rec.ReferralID != "" {
		trace.SpanFromContext(r.Context()).SetAttributes(upsert.AttrReferralID.String(rec.ReferralID))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(rec.JSON)
}

// Describe serves GET /admin/describe/{object}: Salesforce's describe of
// the object, from a cache refreshed every TTL.
func (h *Handler) Describe(w http.ResponseWriter, r *http.Request) {
	object := r.PathValue("object")
	if !sfclient.ValidAPIName(object) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%q is not an sObject API name", object))
		return
	}
	body, err := h.describe(r.Context(), object)
	if err != nil {
		h.salesforceError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// describe returns the cached describe of object, fetching it when absent
// or older than the TTL. Errors are not cached.
func (h *Handler) describe(ctx context.Context, object string) (json.RawMessage, error) {
	h.mu.Lock()
	e := h.describes[object]
	if e != nil {
		select {
		case <-e.ready:
			if e.err != nil || h.now().Sub(e.fetched) >= h.ttl {
				e = nil
			}
		default: // being fetched: wait for it below
		}
	}
	if e == nil {
		e = &describeEntry{ready: make(chan struct{})}
		h.describes[object] = e
		h.mu.Unlock()
		// The fetch outlives a caller that goes away, so the others
		// waiting for it still get an answer.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		e.body, e.err = h.sf.Describe(fctx, object)
		cancel()
		e.fetched = h.now()
		close(e.ready)
		return e.body, e.err
	}
	h.mu.Unlock()
	select {
	case <-e.ready:
		return e.body, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// salesforceError answers a failed Salesforce call: 404 for Salesforce's
// NOT_FOUND (an unknown object), 503 with Retry-After while the API budget
// is exhausted, 502 otherwise.
func (h *Handler) salesforceError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *sfclient.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, sfclient.ErrBudgetExhausted) || errors.Is(err, sfclient.ErrLimitExceeded):
		w.Header().Set("Retry-After", strconv.Itoa(60))
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		h.log.WarnContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusBadGateway, err.Error())
	}
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
