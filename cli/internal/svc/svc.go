// Package svc is the operator CLI's HTTP client for the cosell services'
// health, metrics and admin endpoints. Every error names the service and
// its URL, so an operator sees at once which one to look at.
package svc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned when a service answers 404: the record, or the
// endpoint itself in an older build, does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a service answers 409.
var ErrConflict = errors.New("conflict")

// Client calls one service.
type Client struct {
	// Name is the service's name, for messages ("mapper").
	Name string
	// BaseURL is the service's HTTP base URL ("http://127.0.0.1:8092").
	BaseURL string
	// HTTP is the client used; nil means one with a 10 s timeout.
	HTTP *http.Client
}

// New returns a client for the service name at base.
func New(name, base string, timeout time.Duration) *Client {
	return &Client{Name: name, BaseURL: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: timeout}}
}

// StatusError is an answer other than the expected one.
type StatusError struct {
	Service, URL string
	Status       int
	// Message is the service's "error" field, or the start of its body.
	Message string
}

// Error says which service answered what.
func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s answered %d for %s: %s", e.Service, e.Status, e.URL, msg)
}

// Unwrap maps 404 and 409 to ErrNotFound and ErrConflict.
func (e *StatusError) Unwrap() error {
	switch e.Status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	}
	return nil
}

// Do sends method path and returns the status and body. Transport failures
// become "<service> at <url> is not reachable: …".
func (c *Client) Do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	u := c.BaseURL + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s request %s: %w", c.Name, u, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, nil, fmt.Errorf("%s at %s is not reachable: %w", c.Name, c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s at %s: read the answer to %s %s: %w", c.Name, c.BaseURL, method, path, err)
	}
	return resp.StatusCode, data, nil
}

// GetJSON GETs path and returns its body when the answer is 200.
func (c *Client) GetJSON(ctx context.Context, path string) (json.RawMessage, error) {
	return c.call(ctx, http.MethodGet, path, nil)
}

// PostJSON POSTs body to path and returns the answer's body when it is 2xx.
func (c *Client) PostJSON(ctx context.Context, path string, body []byte) (json.RawMessage, error) {
	return c.call(ctx, http.MethodPost, path, body)
}

func (c *Client) call(ctx context.Context, method, path string, body []byte) (json.RawMessage, error) {
	status, data, err := c.Do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if status < 200 || status > 299 {
		return nil, &StatusError{Service: c.Name, URL: c.BaseURL + path, Status: status, Message: errorMessage(data)}
	}
	return data, nil
}

// errorMessage pulls {"error": "..."} out of an answer, or its first line.
func errorMessage(body []byte) string {
	// {"error": "..."} (cosell's services) or {"error": {"code", "message"}}
	// (Partner Center's shape, which the partnercenter-adapter keeps).
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Error) > 0 {
		var text string
		if json.Unmarshal(e.Error, &text) == nil && text != "" {
			return text
		}
		var obj struct{ Code, Message string }
		if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
			if obj.Code != "" {
				return obj.Code + ": " + obj.Message
			}
			return obj.Message
		}
	}
	s := strings.TrimSpace(string(body))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Readiness is one service's /readyz answer.
type Readiness struct {
	Service string   `json:"service"`
	URL     string   `json:"url"`
	Ready   bool     `json:"ready"`
	Status  string   `json:"status"`
	Failing []string `json:"failing,omitempty"`
	// Error is set when the service could not be asked at all.
	Error string `json:"error,omitempty"`
}

// Ready asks the service's /readyz. It never fails: an unreachable service
// is a Readiness with Error set.
func (c *Client) Ready(ctx context.Context) Readiness {
	r := Readiness{Service: c.Name, URL: c.BaseURL}
	status, body, err := c.Do(ctx, http.MethodGet, "/readyz", nil)
	if err != nil {
		r.Status, r.Error = "unreachable", err.Error()
		return r
	}
	var ans struct {
		Status  string   `json:"status"`
		Failing []string `json:"failing"`
	}
	if json.Unmarshal(body, &ans) != nil || ans.Status == "" {
		ans.Status = fmt.Sprintf("HTTP %d", status)
	}
	r.Ready = status == http.StatusOK
	r.Status, r.Failing = ans.Status, ans.Failing
	return r
}

// Metrics reads the service's Prometheus /metrics and returns the samples
// whose metric name is one of names (labels ignored; the last sample of a
// name wins).
func (c *Client) Metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	status, body, err := c.Do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &StatusError{Service: c.Name, URL: c.BaseURL + "/metrics", Status: status, Message: errorMessage(body)}
	}
	return ParseMetrics(body, names...), nil
}

// ParseMetrics picks the samples of the named metrics out of a Prometheus
// text exposition. A name matches with or without labels.
func ParseMetrics(text []byte, names ...string) map[string]float64 {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < 0 {
				continue
			}
			rest = strings.TrimSpace(line[j+1:])
			ok = true
		}
		if !ok || !want[name] {
			continue
		}
		val, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		out[name] = v
	}
	return out
}
