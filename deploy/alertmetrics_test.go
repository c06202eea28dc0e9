package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// promSelector is a metric a PromQL expression selects, with the label
// names its matchers use.
type promSelector struct {
	Metric string
	Labels []string
}

var (
	// selectorRe is a vector selector with braces, the metric name
	// optional ({__name__=~"…"}); quoted values may hold braces.
	selectorRe = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}`)
	// matcherRe is one label matcher inside the braces.
	matcherRe = regexp.MustCompile(`\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?`)
	// rangeRe is a range or subquery, [15m] or [1h:5m].
	rangeRe = regexp.MustCompile(`\[[^\]]*\]`)
	// groupingRe is a clause naming labels, not metrics: by (job), on (job).
	groupingRe = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// plainNameRe is a metric name, for the alternatives of a __name__ regex.
	plainNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
)

// selectorPlaceholder stands for a selector already read, so its name is
// not read again as a bare one.
const selectorPlaceholder = "__cosell_selector__"

// promKeywords are the identifiers of PromQL that name no metric (function
// names are told apart by the parenthesis that follows them).
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	selectorPlaceholder: true,
}

// promSelectors returns the metrics expr selects, in order: selectors with
// braces (a __name__ matcher names the metric, or the alternatives of a
// regex of plain names), then bare metric names. It is not a PromQL parser;
// it reads the subset the alert rules use and fails on what it cannot read.
func promSelectors(expr string) ([]promSelector, error) {
	var out []promSelector
	var failed error
	rest := selectorRe.ReplaceAllStringFunc(expr, func(sel string) string {
		m := selectorRe.FindStringSubmatch(sel)
		name, inner := m[1], m[2]
		var labels, names []string
		if leftover := strings.Trim(matcherRe.ReplaceAllString(inner, ""), " \t\n,"); leftover != "" {
			failed = fmt.Errorf("cannot read the matchers of %s (left: %q)", sel, leftover)
		}
		for _, mm := range matcherRe.FindAllStringSubmatch(inner, -1) {
			label, op, value := mm[1], mm[2], mm[3]
			if label != "__name__" {
				labels = append(labels, label)
				continue
			}
			switch op {
			case "=":
				names = append(names, value)
			case "=~":
				for alt := range strings.SplitSeq(value, "|") {
					if !plainNameRe.MatchString(alt) {
						failed = fmt.Errorf("%s: __name__ regex %q is not an alternation of names", sel, value)
					}
					names = append(names, alt)
				}
			default:
				failed = fmt.Errorf("%s: __name__%s selects no name", sel, op)
			}
		}
		if name != "" {
			names = append(names, name)
		}
		if len(names) == 0 {
			failed = fmt.Errorf("%s selects no metric name", sel)
		}
		for _, n := range names {
			out = append(out, promSelector{Metric: n, Labels: labels})
		}
		return " " + selectorPlaceholder + " "
	})
	if failed != nil {
		return nil, failed
	}
	rest = rangeRe.ReplaceAllString(rest, " ")
	rest = groupingRe.ReplaceAllString(rest, " ")
	for i := 0; i < len(rest); {
		c := rest[i]
		switch {
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(rest) && rest[j] != c {
				if rest[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c >= '0' && c <= '9' || c == '.':
			// A number or a duration.
			for i < len(rest) && (isIdentChar(rest[i]) || rest[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(rest) && isIdentChar(rest[j]) {
				j++
			}
			word := rest[i:j]
			next := strings.TrimLeft(rest[j:], " \t\n")
			if !promKeywords[strings.ToLower(word)] && !strings.HasPrefix(next, "(") {
				out = append(out, promSelector{Metric: word})
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// ownMetric reports whether a metric is one of cosell's services' own, as
// opposed to Prometheus's (up) or a NATS exporter's.
func ownMetric(name string) bool {
	return name != "up" && !strings.HasPrefix(name, "jetstream_") && !strings.HasPrefix(name, "nats_")
}

// targetLabels are added by Prometheus when it scrapes, not by a service.
var targetLabels = map[string]bool{"job": true, "instance": true}

// alertSelector is a selector of cosell's own metrics in one alert.
type alertSelector struct {
	Alert string
	promSelector
}

// ownAlertSelectors returns every selector of cosell's own metrics in the
// rules.
func ownAlertSelectors(rules alertRules) ([]alertSelector, error) {
	var out []alertSelector
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			sels, err := promSelectors(r.Expr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.Alert, err)
			}
			for _, s := range sels {
				if ownMetric(s.Metric) {
					out = append(out, alertSelector{Alert: r.Alert, promSelector: s})
				}
			}
		}
	}
	return out, nil
}

// parseExposition reads a Prometheus text exposition into sample name ->
// the label names its samples carry (a counter's samples are name_total, a
// histogram's name_bucket, name_sum and name_count, as alerts name them).
func parseExposition(body string) (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end <= 0 {
			return nil, fmt.Errorf("sample line %q", line)
		}
		name := line[:end]
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		if line[end] != '{' {
			continue
		}
		rest := line[end+1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				break
			}
			label, after, ok := strings.Cut(rest, `="`)
			if !ok || label == "" {
				return nil, fmt.Errorf("labels of %q", line)
			}
			out[name][label] = true
			i := 0
			for i < len(after) && after[i] != '"' {
				if after[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(after) {
				return nil, fmt.Errorf("unterminated label value in %q", line)
			}
			rest = after[i+1:]
		}
	}
	return out, nil
}

// alertMetricProblems lists what the alerts select that the services do
// not export: a metric no service exports (a misspelled or renamed name),
// or a matcher on a label the metric does not carry. exported is the
// union of every service's parsed /metrics.
func alertMetricProblems(sels []alertSelector, exported map[string]map[string]bool) []string {
	var problems []string
	for _, s := range sels {
		labels, ok := exported[s.Metric]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no service exports %s", s.Alert, s.Metric))
			continue
		}
		for _, l := range s.Labels {
			if !labels[l] && !targetLabels[l] {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %q", s.Alert, s.Metric, l))
			}
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}

// scrapeAll reads every service's /metrics and merges them.
func scrapeAll(ctx context.Context, urls map[string]string) (map[string]map[string]bool, error) {
	merged := map[string]map[string]bool{}
	names := make([]string, 0, len(urls))
	for n := range urls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[name], nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: GET %s: %s %v", name, urls[name], resp.Status, err)
		}
		parsed, err := parseExposition(string(body))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for m, labels := range parsed {
			if merged[m] == nil {
				merged[m] = map[string]bool{}
			}
			for l := range labels {
				merged[m][l] = true
			}
		}
	}
	return merged, nil
}

// checkAlertMetrics requires every metric of cosell's own that an alert
// selects, with the labels its matchers use, on some service's /metrics.
// Failure counters exist at zero from the start; the other series once the
// referral the caller synced has passed through.
func checkAlertMetrics(ctx context.Context, t *testing.T, metricsURLs map[string]string) {
	t.Helper()
	sels, err := ownAlertSelectors(loadAlertRules(t))
	if err != nil {
		t.Fatal(err)
	}
	// waitScraped scrapes until done holds or 30 s have passed, and returns
	// the last scrape.
	waitScraped := func(what string, done func(map[string]map[string]bool) bool) map[string]map[string]bool {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			exported, err := scrapeAll(ctx, metricsURLs)
			if err != nil {
				t.Fatal(err)
			}
			if done(exported) {
				return exported
			}
			if time.Now().After(deadline) {
				t.Logf("gave up waiting for %s on /metrics", what)
				return exported
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	exported := waitScraped("every alert metric", func(e map[string]map[string]bool) bool {
		return len(alertMetricProblems(sels, e)) == 0
	})
	problems := alertMetricProblems(sels, exported)
	for _, p := range problems {
		t.Errorf("alerts.yaml: %s", p)
	}
	if len(problems) == 0 {
		t.Logf("every one of %d selectors of cosell's metrics in alerts.yaml is exported", len(sels))
	}
}

func TestPromSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []promSelector
		err  bool
	}{
		{expr: `up{job=~"cosell.*"} == 0`, want: []promSelector{{"up", []string{"job"}}}},
		{expr: `sum(rate(ingress_webhooks_received_total{outcome=~"bad_signature|untrusted_cert_host"}[10m])) > 0.1`,
			want: []promSelector{{"ingress_webhooks_received_total", []string{"outcome"}}}},
		{expr: `sum by (job) (increase(cosell_bus_messages_dead_lettered_total[1h])) > 0`,
			want: []promSelector{{Metric: "cosell_bus_messages_dead_lettered_total"}}},
		{expr: `max by (consumer_name) ({__name__=~"jetstream_consumer_num_pending|nats_consumer_num_pending", stream_name=~"A|B"}) > 1000`,
			want: []promSelector{{"jetstream_consumer_num_pending", []string{"stream_name"}}, {"nats_consumer_num_pending", []string{"stream_name"}}}},
		{expr: `min(cosell_salesforce_api_budget_remaining / cosell_salesforce_api_limit) < 0.1`,
			want: []promSelector{{Metric: "cosell_salesforce_api_budget_remaining"}, {Metric: "cosell_salesforce_api_limit"}}},
		{expr: `time() - max(partnercenter_adapter_sweep_last_success_seconds) > 1800`,
			want: []promSelector{{Metric: "partnercenter_adapter_sweep_last_success_seconds"}}},
		{expr: "(sum by (job) (increase(a_total{outcome=\"error\"}[15m])) > 0\nunless on (job) sum by (job) (increase(a_total{outcome=\"ok\"}[15m])) > 0)\nor sum(b_total{status=\"401\", op!=\"x,y}\"} offset 5m) or vector(0)",
			want: []promSelector{{"a_total", []string{"outcome"}}, {"a_total", []string{"outcome"}}, {"b_total", []string{"status", "op"}}}},
		{expr: `{__name__=~"a.*"}`, err: true},
		{expr: `foo{bar}`, err: true},
	} {
		got, err := promSelectors(tc.expr)
		if (err != nil) != tc.err || !slices.EqualFunc(got, tc.want, func(a, b promSelector) bool {
			return a.Metric == b.Metric && slices.Equal(a.Labels, b.Labels)
		}) {
			t.Errorf("promSelectors(%q) = %v, %v; want %v (error %v)", tc.expr, got, err, tc.want, tc.err)
		}
	}
}

func TestAlertMetricProblems(t *testing.T) {
	exported, err := parseExposition(`# HELP partnercenter_calls_total Partner Center HTTP attempts
# TYPE partnercenter_calls_total counter
partnercenter_calls_total{op="GetReferral",otel_scope_name="pcclient",status="200"} 3
partnercenter_adapter_sweep_last_success_seconds{otel_scope_name="x"} 1.7e+09
cosell_bus_handler_duration_seconds_bucket{le="0.5",subject="a \"quoted\" {x}"} 1
go_goroutines 12
`)
	if err != nil {
		t.Fatal(err)
	}
	sel := func(metric string, labels ...string) alertSelector {
		return alertSelector{Alert: "A", promSelector: promSelector{Metric: metric, Labels: labels}}
	}
	for _, tc := range []struct {
		name string
		sels []alertSelector
		want []string
	}{
		{"exported", []alertSelector{sel("partnercenter_calls_total", "status"), sel("partnercenter_adapter_sweep_last_success_seconds"),
			sel("cosell_bus_handler_duration_seconds_bucket", "le", "job")}, nil},
		{"misspelled name", []alertSelector{sel("partnercenter_call_total", "status")}, []string{"A: no service exports partnercenter_call_total"}},
		{"counter without _total", []alertSelector{sel("partnercenter_calls")}, []string{"A: no service exports partnercenter_calls"}},
		{"misspelled label", []alertSelector{sel("partnercenter_calls_total", "statsu")}, []string{`A: partnercenter_calls_total has no label "statsu"`}},
	} {
		if got := alertMetricProblems(tc.sels, exported); !slices.Equal(got, tc.want) {
			t.Errorf("%s: problems %q, want %q", tc.name, got, tc.want)
		}
	}
}
