// Package sfclient is the salesforce-adapter's only way to Salesforce: it
// obtains and renews OAuth tokens (JWT bearer or client credentials), sends
// REST calls to the instance_url the token endpoint returned, re-authenticates
// once on INVALID_SESSION_ID, retries server errors, row-lock contention and
// transport failures with jittered backoff, bounds concurrent calls, decodes
// Salesforce's error bodies, and reads Sforce-Limit-Info from every response
// so the adapter never spends more than its share of the org's daily API
// allocation.
package sfclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Defaults of Config.
const (
	DefaultAPIVersion     = "v62.0"
	DefaultBudgetPercent  = 80
	DefaultMaxConcurrency = 4
	DefaultProbeInterval  = 5 * time.Minute
	DefaultAttempts       = 4
	DefaultRetryInitial   = 200 * time.Millisecond
	DefaultRetryMax       = 5 * time.Second
)

// maxBody bounds what is read of a response; collection and query answers
// the adapter asks for are far smaller.
const maxBody = 32 << 20

// Retry spaces repeated attempts of one call.
type Retry struct {
	// Attempts is how many times a call is sent at most; 1 disables
	// retries.
	Attempts int
	// Initial and Max bound the jittered exponential backoff between
	// attempts.
	Initial, Max time.Duration
}

// Delay returns the pause before attempt n+1 after n failed attempts:
// Initial·2^(n-1), capped at Max, jittered down by up to a half so callers
// that failed together do not return together.
func (r Retry) Delay(n int) time.Duration {
	d := r.Initial
	for i := 1; i < n && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Config configures a Client.
type Config struct {
	// Credentials authenticate the client.
	Credentials Credentials
	// APIVersion is the REST version, e.g. "v62.0"; sObject Collections
	// upsert needs v46.0 or later.
	APIVersion string
	// HTTPClient sends the requests; it should be instrumented (client
	// spans) and carry a timeout. Required.
	HTTPClient *http.Client
	// MaxConcurrency bounds calls in flight at once.
	MaxConcurrency int
	// BudgetPercent is the share of the org's daily allocation the adapter
	// may use, 1..100.
	BudgetPercent int
	// ProbeInterval is how often one call is let through while the budget
	// is exhausted, to learn whether the rolling window freed some.
	ProbeInterval time.Duration
	// Retry spaces retries of temporary failures.
	Retry Retry
	// Logger receives re-authentication and retry notices.
	Logger *slog.Logger
	// Meter records call counts and the API usage gauges.
	Meter metric.Meter
	// Now returns the current time; tests may replace it.
	Now func() time.Time
}

// Client calls the Salesforce REST API. It is safe for concurrent use.
type Client struct {
	version string
	http    *http.Client
	tokens  *tokenSource
	budget  *budget
	slots   chan struct{}
	retry   Retry
	log     *slog.Logger
	now     func() time.Time
	calls   metric.Int64Counter
	reg     metric.Registration
}

// New validates cfg and returns a client. No call is made until the first
// request.
func New(cfg Config) (*Client, error) {
	if err := cfg.Credentials.validate(); err != nil {
		return nil, fmt.Errorf("salesforce client: %w", err)
	}
	if cfg.HTTPClient == nil {
		return nil, errors.New("salesforce client: an HTTP client is required")
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if !strings.HasPrefix(cfg.APIVersion, "v") {
		cfg.APIVersion = "v" + cfg.APIVersion
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = DefaultMaxConcurrency
	}
	if cfg.BudgetPercent == 0 {
		cfg.BudgetPercent = DefaultBudgetPercent
	}
	if cfg.BudgetPercent < 1 || cfg.BudgetPercent > 100 {
		return nil, fmt.Errorf("salesforce client: budget percent %d not within 1..100", cfg.BudgetPercent)
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.Retry.Attempts <= 0 {
		cfg.Retry.Attempts = DefaultAttempts
	}
	if cfg.Retry.Initial <= 0 {
		cfg.Retry.Initial = DefaultRetryInitial
	}
	if cfg.Retry.Max < cfg.Retry.Initial {
		cfg.Retry.Max = max(DefaultRetryMax, cfg.Retry.Initial)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider().Meter("")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{
		version: cfg.APIVersion,
		http:    cfg.HTTPClient,
		tokens:  &tokenSource{creds: cfg.Credentials, http: cfg.HTTPClient, now: cfg.Now},
		budget:  &budget{percent: int64(cfg.BudgetPercent), probeEvery: cfg.ProbeInterval},
		slots:   make(chan struct{}, cfg.MaxConcurrency),
		retry:   cfg.Retry,
		log:     cfg.Logger,
		now:     cfg.Now,
	}
	if err := c.instrument(cfg.Meter); err != nil {
		return nil, fmt.Errorf("salesforce client: %w", err)
	}
	return c, nil
}

// Close unregisters the client's metric callbacks.
func (c *Client) Close() error {
	if c.reg == nil {
		return nil
	}
	if err := c.reg.Unregister(); err != nil {
		return fmt.Errorf("salesforce client: unregister metrics: %w", err)
	}
	return nil
}

// Usage reports the org's API usage as last seen, and whether the budget is
// exhausted.
func (c *Client) Usage() Usage { return c.budget.usage() }

// instrument creates the call and token counters and the usage gauges.
func (c *Client) instrument(m metric.Meter) error {
	var err error
	if c.tokens.refreshes, err = newTokenRefreshes(m); err != nil {
		return err
	}
	c.calls, err = m.Int64Counter("cosell.salesforce.calls",
		metric.WithDescription("Salesforce REST calls sent, by operation and HTTP status (0: no response)."),
		metric.WithUnit("{call}"))
	if err != nil {
		return err
	}
	used, err := m.Int64ObservableGauge("cosell.salesforce.api.usage",
		metric.WithDescription("Org API requests used in the rolling 24 hours, from Sforce-Limit-Info."),
		metric.WithUnit("{call}"))
	if err != nil {
		return err
	}
	limit, err := m.Int64ObservableGauge("cosell.salesforce.api.limit",
		metric.WithDescription("Org daily API request allocation, from Sforce-Limit-Info."),
		metric.WithUnit("{call}"))
	if err != nil {
		return err
	}
	remaining, err := m.Int64ObservableGauge("cosell.salesforce.api.budget_remaining",
		metric.WithDescription("API requests the adapter may still make within its configured share."),
		metric.WithUnit("{call}"))
	if err != nil {
		return err
	}
	exhausted, err := m.Int64ObservableGauge("cosell.salesforce.api.budget_exhausted",
		metric.WithDescription("1 while the adapter's API budget is used up and calls are refused."))
	if err != nil {
		return err
	}
	c.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		u := c.budget.usage()
		if !u.Known {
			return nil
		}
		o.ObserveInt64(used, u.Used)
		o.ObserveInt64(limit, u.Limit)
		o.ObserveInt64(remaining, max(u.Budget-u.Used, 0))
		var ex int64
		if u.Exhausted {
			ex = 1
		}
		o.ObserveInt64(exhausted, ex)
		return nil
	}, used, limit, remaining, exhausted)
	return err
}

// request is one REST call, described so it can be sent again.
type request struct {
	op     string
	method string
	path   string // relative to the instance URL, starting with /services/data/
	body   []byte
	// check, when set, reads a 2xx body; an error it returns is handled
	// like an error status (a temporary one is retried), for answers that
	// carry their status inside (Composite subrequests).
	check func(body []byte) error
}

// dataPath returns the path of a REST resource under the configured
// version, e.g. dataPath("/query") = /services/data/v62.0/query.
func (c *Client) dataPath(p string) string {
	return "/services/data/" + c.version + p
}

// do sends r, retrying temporary failures and re-authenticating once on
// INVALID_SESSION_ID, and decodes a 2xx body into out (when out is
// non-nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	reauthed := false
	var last error
	for attempt := 1; ; attempt++ {
		_, body, err := c.send(ctx, r)
		if err == nil && r.check != nil {
			err = r.check(body)
		}
		switch {
		case err == nil:
			if out == nil || len(body) == 0 {
				return nil
			}
			if err := json.Unmarshal(body, out); err != nil {
				return fmt.Errorf("salesforce %s: decode response: %w", r.op, err)
			}
			return nil
		case errors.Is(err, ErrBudgetExhausted), ctx.Err() != nil:
			return err
		}
		var ae *APIError
		if errors.As(err, &ae) {
			switch {
			case ae.Status == http.StatusUnauthorized && ae.HasCode(CodeInvalidSession) && !reauthed:
				// One new token and one more try; a second refusal is not
				// a stale session but a real auth problem.
				reauthed = true
				attempt--
				c.log.InfoContext(ctx, "salesforce session invalid; re-authenticating", "op", r.op)
				continue
			case ae.HasCode(CodeRequestLimitExceeded):
				return fmt.Errorf("%w: %w", ErrLimitExceeded, err)
			case !ae.Temporary():
				return err
			}
		}
		var aue *AuthError
		if errors.As(err, &aue) && !aue.Temporary() {
			return err
		}
		last = err
		if attempt >= c.retry.Attempts {
			return fmt.Errorf("after %d attempts: %w", attempt, last)
		}
		delay := c.retry.Delay(attempt)
		c.log.WarnContext(ctx, "salesforce call failed; retrying", "op", r.op, "attempt", attempt, "retry_in", delay.String(), "err", err)
		if err := sleep(ctx, delay); err != nil {
			return fmt.Errorf("salesforce %s: %w (last error: %w)", r.op, err, last)
		}
	}
}

// send makes one attempt: a budget reservation, a concurrency slot, a
// token, the HTTP exchange. It returns the status and body of a 2xx
// response, or an error (an *APIError for error statuses).
func (c *Client) send(ctx context.Context, r request) (int, []byte, error) {
	startedAt, err := c.reserve(ctx)
	if err != nil {
		return 0, nil, err
	}
	limitHeader := ""
	defer func() { c.budget.release(limitHeader, startedAt) }()

	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("salesforce %s: %w", r.op, ctx.Err())
	}
	defer func() { <-c.slots }()

	sess, err := c.tokens.get(ctx)
	if err != nil {
		return 0, nil, err
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, sess.instanceURL+r.path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("salesforce %s: %w", r.op, err)
	}
	req.Header.Set("Authorization", "Bearer "+sess.token)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.calls.Add(ctx, 1, metric.WithAttributes(attribute.String("op", r.op), attribute.Int("status", 0)))
		return 0, nil, fmt.Errorf("salesforce %s: %w", r.op, err)
	}
	defer resp.Body.Close()
	limitHeader = resp.Header.Get(LimitInfoHeader)
	c.calls.Add(ctx, 1, metric.WithAttributes(attribute.String("op", r.op), attribute.Int("status", resp.StatusCode)))
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("salesforce %s: read response: %w", r.op, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, data, nil
	}
	ae := decodeAPIError(r.op, resp.StatusCode, data)
	if resp.StatusCode == http.StatusUnauthorized && ae.HasCode(CodeInvalidSession) {
		c.tokens.invalidate(sess)
	}
	return resp.StatusCode, nil, ae
}

// reserve takes a budget reservation, waiting only while the first call's
// answer is still out (usage unknown). It returns the reservation's
// version for release.
func (c *Client) reserve(ctx context.Context) (uint64, error) {
	for {
		if ok, v := c.budget.acquire(c.now()); ok {
			return v, nil
		}
		if !c.budget.waitable() {
			return 0, ErrBudgetExhausted
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// sleep pauses for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
