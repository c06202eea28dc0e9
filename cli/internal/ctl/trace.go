package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DefaultJaegerURL is Jaeger's query API on this machine.
const DefaultJaegerURL = "http://127.0.0.1:16686"

// referralTagKeys are the span attributes that carry a referral id: the
// mapper's, the adapters' (cosell.referral_id) and ingress's webhook span
// (partnercenter.referral_id).
var referralTagKeys = []string{"cosell.referral_id", "partnercenter.referral_id"}

// Journey is what `cosellctl trace` prints: every trace that carries the
// referral id, oldest first, and (with --links) the traces their spans
// link to, such as the salesforce-adapter's batch.
type Journey struct {
	ReferralID string          `json:"referralId"`
	JaegerURL  string          `json:"jaegerUrl"`
	Start      time.Time       `json:"start"`
	Traces     []TraceTimeline `json:"traces"`
}

// TraceTimeline is one trace, its spans in tree order.
type TraceTimeline struct {
	TraceID string    `json:"traceId"`
	Start   time.Time `json:"start"`
	// OffsetMS is the trace's start from the journey's start.
	OffsetMS   float64 `json:"offsetMs"`
	DurationMS float64 `json:"durationMs"`
	// LinkedFrom is "traceId/spanId" of the span that links to this
	// trace, for a trace found through a link rather than by the tag.
	LinkedFrom string         `json:"linkedFrom,omitempty"`
	Spans      []TimelineSpan `json:"spans"`
	// HiddenDBSpans counts the database spans left out (without --db).
	HiddenDBSpans int `json:"hiddenDbSpans,omitempty"`
}

// TimelineSpan is one span of a timeline.
type TimelineSpan struct {
	SpanID   string `json:"spanId"`
	ParentID string `json:"parentId,omitempty"`
	Depth    int    `json:"depth"`
	// OffsetMS is the span's start from the journey's start.
	OffsetMS   float64 `json:"offsetMs"`
	DurationMS float64 `json:"durationMs"`
	Service    string  `json:"service"`
	Name       string  `json:"name"`
	Kind       string  `json:"kind,omitempty"`
	Database   bool    `json:"database,omitempty"` // a database client span (db.system.name)
	Error      string  `json:"error,omitempty"`
	// Attributes are the key ones: referral and opportunity ids, HTTP
	// method/route/status, messaging subject, outcome.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Links are "traceId/spanId" of the spans this one links to.
	Links []string `json:"links,omitempty"`
}

func runTrace(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "<referral-id> [flags]", `
Print a referral's journey through the services from Jaeger's query API:
every trace whose spans carry the referral id (cosell.referral_id on the
adapters' and the mapper's spans, partnercenter.referral_id on ingress's
webhook span), as a timeline of spans indented by parent, with the offset
from the journey's start, the duration, the service, the span name and the
key attributes (referral and opportunity ids, HTTP method and status,
messaging subject, outcome). Spans reach Jaeger a few seconds after they
end. make run JAEGER=1 starts a Jaeger and prints its URL.`)
	jaegerURL := fs.String("jaeger-url", e.def("COSELL_JAEGER_URL", DefaultJaegerURL), "Jaeger query `URL` (env COSELL_JAEGER_URL)")
	lookback := fs.Duration("lookback", 7*24*time.Hour, "search traces that started within this long")
	limit := fs.Int("limit", 20, "at most this many traces found by the tags")
	links := fs.Bool("links", true, "also show the traces the referral's spans link to (one hop), such as the Salesforce batch")
	db := fs.Bool("db", false, "also show the database spans (pool.acquire, BEGIN, SELECT, ...), hidden by default")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneArg(rest, "referral id")
	if err != nil {
		return err
	}
	if *limit <= 0 {
		return usagef("--limit must be positive")
	}
	jc := &jaegerClient{base: strings.TrimRight(*jaegerURL, "/"), timeout: e.opts.timeout, http: &http.Client{}}
	j, err := findJourney(ctx, jc, id, *lookback, *limit, *links)
	if err != nil {
		return err
	}
	if !*db {
		hideDatabaseSpans(j)
	}
	if e.opts.json {
		return writeJSON(e.out, j)
	}
	return renderJourney(e.out, j)
}

// def is the value of an environment variable or a default.
func (e *env) def(k, d string) string {
	if v := e.app.getenv(k); v != "" {
		return v
	}
	return d
}

// jaegerClient calls Jaeger's query HTTP API (the one its UI uses).
type jaegerClient struct {
	base    string
	timeout time.Duration
	http    *http.Client
}

// jaegerResponse is the envelope of every /api answer.
type jaegerResponse[T any] struct {
	Data   T `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []jaegerRef `json:"references"`
	StartTime     int64       `json:"startTime"` // µs since the epoch
	Duration      int64       `json:"duration"`  // µs
	Tags          []jaegerTag `json:"tags"`
	ProcessID     string      `json:"processID"`
}

type jaegerRef struct {
	RefType string `json:"refType"` // CHILD_OF (the parent) or FOLLOWS_FROM (a link)
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type jaegerProcess struct {
	ServiceName string `json:"serviceName"`
}

var errTraceNotFound = errors.New("trace not found")

func (c *jaegerClient) get(ctx context.Context, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("Jaeger URL %q: %w", c.base, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("Jaeger is not reachable at %s (set --jaeger-url or COSELL_JAEGER_URL; make run JAEGER=1 starts one): %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read Jaeger's answer to %s: %w", path, err)
	}
	if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/api/traces/") {
		return errTraceNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("Jaeger at %s answered %s to GET %s: %s", c.base, resp.Status, path, truncate(strings.TrimSpace(string(body)), 300))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("Jaeger at %s: GET %s did not answer Jaeger's query API JSON (is this Jaeger's query port, usually 16686?): %w", c.base, path, err)
	}
	return nil
}

func (c *jaegerClient) services(ctx context.Context) ([]string, error) {
	var r jaegerResponse[[]string]
	if err := c.get(ctx, "/api/services", nil, &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// search returns the ids of the traces of service with a span tagged key=value.
func (c *jaegerClient) search(ctx context.Context, service, key, value string, start, end time.Time, limit int) ([]string, error) {
	tags, _ := json.Marshal(map[string]string{key: value})
	q := url.Values{
		"service": {service},
		"tags":    {string(tags)},
		"start":   {strconv.FormatInt(start.UnixMicro(), 10)},
		"end":     {strconv.FormatInt(end.UnixMicro(), 10)},
		"limit":   {strconv.Itoa(limit)},
	}
	var r jaegerResponse[[]jaegerTrace]
	if err := c.get(ctx, "/api/traces", q, &r); err != nil {
		return nil, err
	}
	var ids []string
	for _, t := range r.Data {
		ids = append(ids, t.TraceID)
	}
	return ids, nil
}

func (c *jaegerClient) trace(ctx context.Context, id string) (*jaegerTrace, error) {
	var r jaegerResponse[[]jaegerTrace]
	if err := c.get(ctx, "/api/traces/"+url.PathEscape(id), nil, &r); err != nil {
		return nil, err
	}
	if len(r.Data) == 0 {
		return nil, errTraceNotFound
	}
	return &r.Data[0], nil
}

// findJourney searches every service for spans tagged with the referral
// id, fetches each trace found (and, with links, the traces they link to)
// and builds the journey.
func findJourney(ctx context.Context, c *jaegerClient, referralID string, lookback time.Duration, limit int, links bool) (*Journey, error) {
	services, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	var searched []string
	for _, s := range services {
		if s != "jaeger" {
			searched = append(searched, s)
		}
	}
	sort.Strings(searched)
	if len(searched) == 0 {
		return nil, fmt.Errorf("Jaeger at %s has no traces of any service yet: are the services exporting to it (OTEL_EXPORTER_OTLP_ENDPOINT)? Spans arrive a few seconds after they end", c.base)
	}
	end := time.Now().Add(time.Minute)
	start := end.Add(-lookback)
	seen := map[string]bool{}
	var ids []string
	for _, s := range searched {
		for _, key := range referralTagKeys {
			found, err := c.search(ctx, s, key, referralID, start, end, limit)
			if err != nil {
				return nil, err
			}
			for _, id := range found {
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no trace in Jaeger at %s carries referral %q (searched %s for %s over the last %s; spans arrive a few seconds after they end)",
			c.base, referralID, strings.Join(searched, ", "), strings.Join(referralTagKeys, " and "), fmtLookback(lookback))
	}
	var traces []*jaegerTrace
	for _, id := range ids {
		t, err := c.trace(ctx, id)
		if errors.Is(err, errTraceNotFound) {
			continue // evicted between the search and the fetch
		}
		if err != nil {
			return nil, err
		}
		traces = append(traces, t)
	}
	linkedFrom := map[string]string{}
	if links {
		for _, t := range traces { // the tagged traces only: range reads the slice once
			for _, sp := range t.Spans {
				for _, r := range sp.References {
					if r.RefType != "FOLLOWS_FROM" || r.TraceID == "" || seen[r.TraceID] {
						continue
					}
					seen[r.TraceID] = true
					lt, err := c.trace(ctx, r.TraceID)
					if errors.Is(err, errTraceNotFound) {
						continue // a link to a trace Jaeger never got (or dropped)
					}
					if err != nil {
						return nil, err
					}
					linkedFrom[lt.TraceID] = sp.TraceID + "/" + sp.SpanID
					traces = append(traces, lt)
				}
			}
		}
	}
	j := buildJourney(referralID, traces, linkedFrom)
	j.JaegerURL = c.base
	return j, nil
}

// buildJourney orders the traces by start and each trace's spans as a tree
// (children by start time under their parent; a span whose parent is not in
// the trace is a root).
func buildJourney(referralID string, traces []*jaegerTrace, linkedFrom map[string]string) *Journey {
	j := &Journey{ReferralID: referralID, Traces: []TraceTimeline{}}
	var journeyStart int64
	for _, t := range traces {
		for _, sp := range t.Spans {
			if journeyStart == 0 || sp.StartTime < journeyStart {
				journeyStart = sp.StartTime
			}
		}
	}
	j.Start = time.UnixMicro(journeyStart).UTC()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	for _, t := range traces {
		if len(t.Spans) == 0 {
			continue
		}
		byID := map[string]*jaegerSpan{}
		for i := range t.Spans {
			byID[t.Spans[i].SpanID] = &t.Spans[i]
		}
		children := map[string][]*jaegerSpan{}
		var roots []*jaegerSpan
		first, last := int64(0), int64(0)
		for i := range t.Spans {
			sp := &t.Spans[i]
			if first == 0 || sp.StartTime < first {
				first = sp.StartTime
			}
			last = max(last, sp.StartTime+sp.Duration)
			if p := parentOf(sp); p != "" && byID[p] != nil && p != sp.SpanID {
				children[p] = append(children[p], sp)
			} else {
				roots = append(roots, sp)
			}
		}
		tl := TraceTimeline{
			TraceID: t.TraceID, Start: time.UnixMicro(first).UTC(),
			OffsetMS: ms(first - journeyStart), DurationMS: ms(last - first),
			LinkedFrom: linkedFrom[t.TraceID], Spans: []TimelineSpan{},
		}
		byStart := func(s []*jaegerSpan) {
			sort.SliceStable(s, func(a, b int) bool {
				if s[a].StartTime != s[b].StartTime {
					return s[a].StartTime < s[b].StartTime
				}
				return s[a].SpanID < s[b].SpanID
			})
		}
		visited := map[string]bool{}
		var walk func(sp *jaegerSpan, depth int)
		walk = func(sp *jaegerSpan, depth int) {
			if visited[sp.SpanID] {
				return
			}
			visited[sp.SpanID] = true
			tl.Spans = append(tl.Spans, timelineSpan(sp, t.Processes, depth, journeyStart))
			kids := children[sp.SpanID]
			byStart(kids)
			for _, k := range kids {
				walk(k, depth+1)
			}
		}
		byStart(roots)
		for _, r := range roots {
			walk(r, 0)
		}
		for i := range t.Spans { // a parent cycle (never from a real tracer): still show every span
			walk(&t.Spans[i], 0)
		}
		j.Traces = append(j.Traces, tl)
	}
	sort.SliceStable(j.Traces, func(a, b int) bool { return j.Traces[a].Start.Before(j.Traces[b].Start) })
	return j
}

// hideDatabaseSpans drops the database spans and everything below them
// (pgx's nested spans), counting them per trace.
func hideDatabaseSpans(j *Journey) {
	for i := range j.Traces {
		t := &j.Traces[i]
		kept := t.Spans[:0:0]
		hiddenDepth := -1
		for _, s := range t.Spans {
			if hiddenDepth >= 0 && s.Depth > hiddenDepth {
				t.HiddenDBSpans++
				continue
			}
			hiddenDepth = -1
			if s.Database {
				hiddenDepth = s.Depth
				t.HiddenDBSpans++
				continue
			}
			kept = append(kept, s)
		}
		t.Spans = kept
	}
}

// parentOf is the span's parent: its CHILD_OF reference in the same trace.
func parentOf(sp *jaegerSpan) string {
	for _, r := range sp.References {
		if r.RefType == "CHILD_OF" && (r.TraceID == "" || r.TraceID == sp.TraceID) {
			return r.SpanID
		}
	}
	return ""
}

func timelineSpan(sp *jaegerSpan, procs map[string]jaegerProcess, depth int, journeyStart int64) TimelineSpan {
	tags := map[string]string{}
	for _, t := range sp.Tags {
		tags[t.Key] = tagString(t.Value)
	}
	ts := TimelineSpan{
		SpanID: sp.SpanID, ParentID: parentOf(sp), Depth: depth,
		OffsetMS: float64(sp.StartTime-journeyStart) / 1000, DurationMS: float64(sp.Duration) / 1000,
		Service: procs[sp.ProcessID].ServiceName, Name: sp.OperationName, Kind: tags["span.kind"],
	}
	if ts.Service == "" {
		ts.Service = sp.ProcessID
	}
	ts.Database = tags["db.system.name"] != "" || tags["db.system"] != ""
	if tags["otel.status_code"] == "ERROR" || tags["error"] == "true" {
		ts.Error = tags["otel.status_description"]
		if ts.Error == "" {
			ts.Error = "error"
		}
	}
	attrs := map[string]string{}
	pick := func(name string, keys ...string) {
		for _, k := range keys {
			if v := tags[k]; v != "" {
				attrs[name] = v
				return
			}
		}
	}
	pick("referral", "cosell.referral_id", "partnercenter.referral_id")
	pick("opportunity", "cosell.opportunity_id")
	pick("event", "partnercenter.event_name")
	pick("http.method", "http.request.method", "http.method")
	pick("http.route", "http.route", "url.path", "http.target")
	if attrs["http.route"] == "" && tags["url.full"] != "" {
		if u, err := url.Parse(tags["url.full"]); err == nil && u.Path != "" {
			attrs["http.route"] = u.Path
		}
	}
	pick("http.status", "http.response.status_code", "http.status_code")
	pick("subject", "messaging.destination.name", "messaging.destination")
	pick("outcome", "cosell.outcome", "cosell.mapper.outcome")
	if len(attrs) > 0 {
		ts.Attributes = attrs
	}
	for _, r := range sp.References {
		if r.RefType == "FOLLOWS_FROM" {
			ts.Links = append(ts.Links, r.TraceID+"/"+r.SpanID)
		}
	}
	return ts
}

func tagString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// renderJourney prints the journey as one timeline per trace.
func renderJourney(w io.Writer, j *Journey) error {
	spans := 0
	for _, t := range j.Traces {
		spans += len(t.Spans)
	}
	fmt.Fprintf(w, "Referral %s: %d trace(s), %d span(s), from %s (Jaeger %s)\n", j.ReferralID, len(j.Traces), spans, ts(j.Start), j.JaegerURL)
	for _, t := range j.Traces {
		fmt.Fprintf(w, "\nTrace %s  at +%s (%s)  %s, %d span(s)", t.TraceID, fmtMS(t.OffsetMS), ts(t.Start), fmtMS(t.DurationMS), len(t.Spans))
		if t.LinkedFrom != "" {
			fmt.Fprintf(w, "  linked from %s", t.LinkedFrom)
		}
		if t.HiddenDBSpans > 0 {
			fmt.Fprintf(w, "  (%d database spans hidden; --db shows them)", t.HiddenDBSpans)
		}
		fmt.Fprintln(w)
		tb := newTable("OFFSET", "DURATION", "SERVICE", "SPAN", "ATTRIBUTES")
		for _, s := range t.Spans {
			tb.add("+"+fmtMS(s.OffsetMS), fmtMS(s.DurationMS), s.Service, strings.Repeat("  ", s.Depth)+s.Name, spanAttrs(s))
		}
		if err := tb.print(w); err != nil {
			return err
		}
	}
	return nil
}

// spanAttrs is the attributes column: the key attributes in a fixed order.
func spanAttrs(s TimelineSpan) string {
	a := s.Attributes
	var parts []string
	add := func(label, v string) {
		if v != "" {
			parts = append(parts, label+"="+v)
		}
	}
	add("referral", a["referral"])
	add("opportunity", a["opportunity"])
	add("event", a["event"])
	if m := strings.TrimSpace(a["http.method"] + " " + a["http.route"]); m != "" {
		parts = append(parts, strings.TrimSpace("http="+m+" "+a["http.status"]))
	} else {
		add("http.status", a["http.status"])
	}
	add("subject", a["subject"])
	add("outcome", a["outcome"])
	if len(s.Links) > 0 {
		parts = append(parts, fmt.Sprintf("links=%d", len(s.Links)))
	}
	if s.Error != "" {
		parts = append(parts, "ERROR: "+s.Error)
	}
	return strings.Join(parts, " ")
}

// fmtMS formats milliseconds compactly: 0.42ms, 12.3ms, 1.25s, 3m04s.
func fmtMS(ms float64) string {
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	case ms < 60_000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + "s"
	default:
		d := time.Duration(ms * float64(time.Millisecond)).Round(time.Second)
		return d.String()
	}
}

// fmtLookback prints a lookback in days or hours when it is whole ones.
func fmtLookback(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.String()
}
