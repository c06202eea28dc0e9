package telemetry

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// DefaultHTTPTimeout bounds a whole external call (connect, request,
// response body) made with HTTPClient when the caller's context does not
// bound it sooner: a backstop against a server that stops responding
// mid-body.
const DefaultHTTPTimeout = 30 * time.Second

// Redacted replaces query-string values in URLs recorded on client spans.
const Redacted = "REDACTED"

// HTTPClient returns a client for calls to external APIs (Partner Center,
// Salesforce, token endpoints) that makes a client span and records the
// standard HTTP client metrics for each request, and carries the trace
// context in traceparent. base does the actual transport; nil means a clone
// of http.DefaultTransport.
//
// Spans record method, status, server address and url.full with user info
// removed and every query value replaced by REDACTED (SOQL queries carry
// customer names; some APIs put keys in the query). Request and response
// headers, including Authorization, and bodies are never recorded.
func HTTPClient(base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	traced := otelhttp.NewTransport(restoreURL{base: base})
	return &http.Client{
		Transport: redactURL{next: traced},
		Timeout:   DefaultHTTPTimeout,
	}
}

type originalURLKey struct{}

// redactURL hands the instrumentation a copy of the request whose URL has no
// secrets, so the span is made from that; the real URL travels in the
// context to restoreURL, which puts it back before the request is sent.
type redactURL struct{ next http.RoundTripper }

func (t redactURL) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || (req.URL.RawQuery == "" && req.URL.User == nil) {
		return t.next.RoundTrip(req)
	}
	shown := *req.URL
	shown.User = nil
	if shown.RawQuery != "" {
		q := shown.Query()
		for k, vs := range q {
			for i := range vs {
				vs[i] = Redacted
			}
			q[k] = vs
		}
		shown.RawQuery = q.Encode()
	}
	r := req.WithContext(context.WithValue(req.Context(), originalURLKey{}, req.URL))
	r.URL = &shown
	return t.next.RoundTrip(r)
}

// restoreURL sits under the instrumentation and sends the request to its
// real URL.
type restoreURL struct{ base http.RoundTripper }

func (t restoreURL) RoundTrip(req *http.Request) (*http.Response, error) {
	orig, ok := req.Context().Value(originalURLKey{}).(*url.URL)
	if !ok {
		return t.base.RoundTrip(req)
	}
	r := new(http.Request)
	*r = *req
	r.URL = orig
	return t.base.RoundTrip(r)
}
