// Package pcclient is the adapter's only door to Partner Center's Referrals
// and webhook registration APIs. Authentication (a bearer token per
// audience, refreshed once on 401), bounded concurrency across every call,
// throttling (429 + Retry-After pauses every caller, not just the one that
// was told), retries of 5xx and transport failures with jittered
// exponential backoff, and the decoding of Partner Center's error bodies all
// live here, so the use cases above see either a result or an *APIError.
package pcclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// Token audiences. Partner Center checks them whatever host a deployment
// points its base URLs at, so they are constants, not configuration.
const (
	// ResourceReferrals is the audience of the Referrals API.
	ResourceReferrals = "https://api.partner.microsoft.com"
	// ResourceWebhooks is the audience of the webhook registration API.
	ResourceWebhooks = "https://api.partnercenter.microsoft.com"
)

// AttrReferralID is the span attribute that names the referral a call is
// about, so one referral's calls can be found in any trace backend.
const AttrReferralID = attribute.Key("cosell.referral_id")

// instrumentationName names this package as the source of spans and metrics.
const instrumentationName = "github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"

// maxBodyBytes bounds a response body read into memory; a page of referrals
// is far smaller.
const maxBodyBytes = 16 << 20

// TokenSource hands out bearer tokens per audience. Invalidate drops a
// cached token that the API refused with 401, so the next Token call gets a
// fresh one.
type TokenSource interface {
	Token(ctx context.Context, resource string) (string, error)
	Invalidate(resource, token string)
}

// Config configures a Client. Zero durations and counts take the defaults
// below.
type Config struct {
	// APIBaseURL is the Referrals API host, e.g.
	// https://api.partner.microsoft.com.
	APIBaseURL string
	// WebhookAPIBaseURL is the webhook registration API host, e.g.
	// https://api.partnercenter.microsoft.com.
	WebhookAPIBaseURL string
	// Tokens authenticates calls.
	Tokens TokenSource
	// HTTPClient makes the calls; use telemetry.HTTPClient so every attempt
	// gets a client span. Nil means http.DefaultClient.
	HTTPClient *http.Client
	// MaxConcurrency bounds calls in flight at once (default 16).
	MaxConcurrency int
	// AttemptTimeout bounds one HTTP attempt (default 15s).
	AttemptTimeout time.Duration
	// MaxAttempts bounds attempts of one call, retries included (default 5).
	MaxAttempts int
	// BackoffInitial is the delay before the first retry of a 5xx or
	// transport failure (default 200ms); it doubles up to BackoffMax
	// (default 5s), jittered.
	BackoffInitial, BackoffMax time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits out
	// itself (default 10s); a longer one is returned to the caller as an
	// *APIError carrying RetryAfter, so a message consumer can hand the
	// message back instead of holding a slot.
	MaxRetryAfter time.Duration
	// Logger receives retry decisions; nil discards them.
	Logger *slog.Logger
	// TracerProvider and MeterProvider default to no-ops.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// Client calls Partner Center. It is safe for concurrent use.
type Client struct {
	cfg       Config
	apiBase   *url.URL
	hookBase  *url.URL
	http      *http.Client
	sem       chan struct{}
	log       *slog.Logger
	tracer    trace.Tracer
	calls     metric.Int64Counter
	throttles metric.Int64Counter
	duration  metric.Float64Histogram
	// throttledUntil is the UnixNano before which no call starts, set by
	// the last 429: Partner Center throttles per tenant, so every caller
	// must back off, not only the one that was told.
	throttledUntil atomic.Int64
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Tokens == nil {
		return nil, errors.New("pcclient: a token source is required")
	}
	apiBase, err := parseBase(cfg.APIBaseURL)
	if err != nil {
		return nil, fmt.Errorf("pcclient: API base URL: %w", err)
	}
	hookBase, err := parseBase(cfg.WebhookAPIBaseURL)
	if err != nil {
		return nil, fmt.Errorf("pcclient: webhook API base URL: %w", err)
	}
	if cfg.MaxConcurrency <= 0 {
		cfg.MaxConcurrency = 16
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 15 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = 200 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffInitial {
		cfg.BackoffMax = max(5*time.Second, cfg.BackoffInitial)
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 10 * time.Second
	}
	c := &Client{cfg: cfg, apiBase: apiBase, hookBase: hookBase, http: cfg.HTTPClient, sem: make(chan struct{}, cfg.MaxConcurrency), log: cfg.Logger}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	tp, mp := cfg.TracerProvider, cfg.MeterProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	c.tracer = tp.Tracer(instrumentationName)
	meter := mp.Meter(instrumentationName)
	if c.calls, err = meter.Int64Counter("partnercenter.calls", metric.WithDescription("Partner Center HTTP attempts by operation and status (0 = no answer)")); err != nil {
		return nil, fmt.Errorf("pcclient: metric: %w", err)
	}
	if c.throttles, err = meter.Int64Counter("partnercenter.throttled", metric.WithDescription("429 answers from Partner Center")); err != nil {
		return nil, fmt.Errorf("pcclient: metric: %w", err)
	}
	if c.duration, err = meter.Float64Histogram("partnercenter.call.duration", metric.WithUnit("s"), metric.WithDescription("duration of Partner Center operations, retries included")); err != nil {
		return nil, fmt.Errorf("pcclient: metric: %w", err)
	}
	return c, nil
}

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return u, nil
}

// APIError is a call that Partner Center answered with a status the
// operation does not accept, after any retries.
type APIError struct {
	// Op names the operation, e.g. "GetReferral".
	Op string
	// Status is the HTTP status.
	Status int
	// Code is Partner Center's error code (e.g. "itemNotFound"), or the
	// numeric code of the webhook API's error shape.
	Code string
	// Message is Partner Center's message, for logs and audit.
	Message string
	// Target names the offending field or header, when given.
	Target string
	// RetryAfter is the delay Partner Center asked for (429, some 503s).
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "partner center %s: HTTP %d", e.Op, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Target != "" {
		fmt.Fprintf(&b, " (target %s)", e.Target)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Temporary reports whether a later attempt may succeed: throttling,
// server errors and timeouts, as opposed to a request Partner Center will
// always refuse.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500
}

// IsNotFound reports whether err is a 404 from Partner Center.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// request is one logical call.
type request struct {
	op       string
	resource string
	method   string
	url      string
	body     []byte
	header   http.Header
	// ok lists the statuses that are a result, not an error.
	ok []int
	// noReplay marks a request that must not be sent again blindly (a
	// POST that creates, a PATCH that appends): after a transport failure
	// or a server error Partner Center may or may not have applied it, so
	// the error goes back to the caller, who finds out before retrying.
	// 401 and 429 are still retried: Partner Center refused the request
	// before doing anything.
	noReplay bool
	// ownLimit marks an operation with a rate limit of its own (validation
	// events: two a minute): its 429 is returned at once and does not
	// pause other callers, since the tenant as a whole is not throttled.
	ownLimit bool
	// attrs go on the operation's span.
	attrs []attribute.KeyValue
}

// response is a call's result.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do runs req with authentication, the concurrency bound, throttling and
// retries, inside one span for the whole operation (each HTTP attempt is a
// child client span made by the HTTP client).
func (c *Client) do(ctx context.Context, req request) (resp response, err error) {
	ctx, span := c.tracer.Start(ctx, "partnercenter "+req.op, trace.WithAttributes(req.attrs...))
	start := time.Now()
	defer func() {
		status := resp.status
		var ae *APIError
		if errors.As(err, &ae) {
			status = ae.Status
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "partner center call failed")
		}
		span.End()
		c.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("op", req.op)))
	}()

	refreshed := false
	for attempt := 1; ; attempt++ {
		if err := c.waitThrottle(ctx); err != nil {
			return response{}, fmt.Errorf("partner center %s: %w", req.op, err)
		}
		token, err := c.cfg.Tokens.Token(ctx, req.resource)
		if err != nil {
			return response{}, fmt.Errorf("partner center %s: %w", req.op, err)
		}
		r, err := c.attempt(ctx, req, token)
		if err != nil {
			if ctx.Err() != nil || attempt >= c.cfg.MaxAttempts || req.noReplay {
				return response{}, fmt.Errorf("partner center %s: %w", req.op, err)
			}
			delay := c.backoff(attempt)
			c.log.WarnContext(ctx, "partner center call failed; retrying", "op", req.op, "attempt", attempt, "retry_in", delay.String(), "err", err)
			if err := sleep(ctx, delay); err != nil {
				return response{}, fmt.Errorf("partner center %s: %w", req.op, err)
			}
			continue
		}
		if accepted(r.status, req.ok) {
			return r, nil
		}
		apiErr := decodeError(req.op, r)
		switch {
		case r.status == http.StatusUnauthorized && !refreshed:
			// The token expired early or was revoked: drop it and retry
			// once with a fresh one; a second 401 is a real refusal.
			refreshed = true
			c.cfg.Tokens.Invalidate(req.resource, token)
			c.log.InfoContext(ctx, "partner center refused the access token; refreshing once", "op", req.op)
			attempt--
			continue
		case r.status == http.StatusTooManyRequests && req.ownLimit:
			c.throttles.Add(ctx, 1, metric.WithAttributes(attribute.String("op", req.op)))
			return response{}, apiErr
		case r.status == http.StatusTooManyRequests:
			c.throttles.Add(ctx, 1, metric.WithAttributes(attribute.String("op", req.op)))
			delay := apiErr.RetryAfter
			if delay <= 0 {
				delay = c.backoff(attempt)
				apiErr.RetryAfter = delay
			}
			c.throttle(delay)
			if delay > c.cfg.MaxRetryAfter || attempt >= c.cfg.MaxAttempts {
				return response{}, apiErr
			}
			c.log.WarnContext(ctx, "partner center throttled the call; waiting", "op", req.op, "attempt", attempt, "retry_after", delay.String())
			continue // waitThrottle waits it out
		case apiErr.Temporary():
			if attempt >= c.cfg.MaxAttempts || req.noReplay {
				return response{}, apiErr
			}
			delay := c.backoff(attempt)
			if apiErr.RetryAfter > 0 {
				if apiErr.RetryAfter > c.cfg.MaxRetryAfter {
					return response{}, apiErr
				}
				delay = apiErr.RetryAfter
			}
			c.log.WarnContext(ctx, "partner center server error; retrying", "op", req.op, "status", r.status, "attempt", attempt, "retry_in", delay.String())
			if err := sleep(ctx, delay); err != nil {
				return response{}, fmt.Errorf("partner center %s: %w", req.op, err)
			}
			continue
		default:
			return response{}, apiErr
		}
	}
}

// attempt makes one HTTP request under the concurrency bound and reads the
// whole answer.
func (c *Client) attempt(ctx context.Context, req request, token string) (response, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return response{}, ctx.Err()
	}
	defer func() { <-c.sem }()

	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(actx, req.method, req.url, body)
	if err != nil {
		return response{}, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Accept", "application/json")
	if req.body != nil || hr.Header.Get("Content-Type") == "" {
		// The Referrals API documents Content-Type on every call, GET too.
		hr.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(hr)
	if err != nil {
		c.calls.Add(ctx, 1, metric.WithAttributes(attribute.String("op", req.op), attribute.Int("status", 0)))
		return response{}, fmt.Errorf("%s %s: %w", req.method, redactedURL(req.url), err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	c.calls.Add(ctx, 1, metric.WithAttributes(attribute.String("op", req.op), attribute.Int("status", res.StatusCode)))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", req.method, redactedURL(req.url), err)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}, nil
}

// redactedURL drops the query (skip tokens, filters) from a URL for errors.
func redactedURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i]
	}
	return s
}

func accepted(status int, ok []int) bool {
	for _, s := range ok {
		if s == status {
			return true
		}
	}
	return false
}

// throttle makes every call wait d from now.
func (c *Client) throttle(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := c.throttledUntil.Load()
		if cur >= until || c.throttledUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// waitThrottle waits until the last Retry-After has passed.
func (c *Client) waitThrottle(ctx context.Context) error {
	until := c.throttledUntil.Load()
	if until == 0 {
		return nil
	}
	d := time.Until(time.Unix(0, until))
	if d <= 0 {
		return nil
	}
	return sleep(ctx, d)
}

// backoff is the jittered exponential delay before retry number attempt:
// between half and all of Initial·2^(attempt-1), capped at Max.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.BackoffInitial
	for i := 1; i < attempt && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
