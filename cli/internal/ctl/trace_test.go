package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeJaeger serves the recorded answers the way Jaeger's query API does:
// a search by service and tags returns the webhook's trace only for the
// recorded referral id (and the services that tagged it), a trace by id
// returns it, anything else 404.
type fakeJaeger struct {
	mu       sync.Mutex
	searches []string // "service tags"
	services string
}

func (f *fakeJaeger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/api/services":
		_, _ = w.Write([]byte(f.services))
	case r.URL.Path == "/api/traces":
		q := r.URL.Query()
		f.mu.Lock()
		f.searches = append(f.searches, q.Get("service")+" "+q.Get("tags"))
		f.mu.Unlock()
		var tags map[string]string
		if err := json.Unmarshal([]byte(q.Get("tags")), &tags); err != nil || q.Get("start") == "" || q.Get("end") == "" || q.Get("limit") == "" {
			http.Error(w, `{"errors":[{"code":400,"msg":"bad query"}]}`, http.StatusBadRequest)
			return
		}
		tagged := map[string]string{"ingress": "partnercenter.referral_id", "partnercenter-adapter": "cosell.referral_id",
			"mapper": "cosell.referral_id", "salesforce-adapter": "cosell.referral_id"}
		if key := tagged[q.Get("service")]; key != "" && tags[key] == recordedReferralID {
			_, _ = w.Write([]byte(recordedWebhookTrace))
			return
		}
		_, _ = w.Write([]byte(`{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`))
	case r.URL.Path == "/api/traces/"+recordedWebhookTraceID:
		_, _ = w.Write([]byte(recordedWebhookTrace))
	case r.URL.Path == "/api/traces/"+recordedBatchTraceID:
		_, _ = w.Write([]byte(recordedBatchTrace))
	default:
		http.Error(w, `{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}`, http.StatusNotFound)
	}
}

func runWithJaeger(t *testing.T, jaegerURL string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
		if k == "COSELL_JAEGER_URL" {
			return jaegerURL
		}
		return ""
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return app.Run(ctx, args), out.String(), errOut.String()
}

// The timeline of the recorded journey, database spans hidden (the
// default): offsets from the webhook's arrival, spans indented under their
// parent, the batch trace the Salesforce command links to after it.
const wantTimeline = `Referral 26526257-26d1-4a1a-b64f-96772a958dc6: 2 trace(s), 16 span(s), from 2026-11-24 08:21:40.831Z (Jaeger JAEGER)

Trace 10f117c68830c3fc887ac9172a0b19d3  at +0.00ms (2026-11-24 08:21:40.831Z)  54.0ms, 14 span(s)  (21 database spans hidden; --db shows them)
OFFSET   DURATION  SERVICE                SPAN                                                        ATTRIBUTES
+0.00ms  13.3ms    ingress                POST /webhooks/partnercenter                                referral=26526257-26d1-4a1a-b64f-96772a958dc6 event=referral-created http=POST /webhooks/partnercenter 200
+0.10ms  2.81ms    ingress                  webhook.verify_signature                                  -
+3.52ms  9.44ms    ingress                  send pc.notification.v1.referral-created                  subject=pc.notification.v1.referral-created
+6.64ms  6.91ms    partnercenter-adapter      process pc.notification.v1.referral-created             referral=26526257-26d1-4a1a-b64f-96772a958dc6 subject=pc.notification.v1.referral-created
+6.67ms  3.89ms    partnercenter-adapter        partnercenter GetReferral                             referral=26526257-26d1-4a1a-b64f-96772a958dc6 http.status=200
+9.65ms  0.90ms    partnercenter-adapter          HTTP GET                                            http=GET /v1.0/engagements/referrals/26526257-26d1-4a1a-b64f-96772a958dc6 200
+10.7ms  2.42ms    partnercenter-adapter        send referral.observed.v1                             subject=referral.observed.v1
+12.2ms  21.7ms    mapper                         process referral.observed.v1                        referral=26526257-26d1-4a1a-b64f-96772a958dc6 subject=referral.observed.v1
+12.6ms  21.1ms    mapper                           mapper apply referral                             referral=26526257-26d1-4a1a-b64f-96772a958dc6 outcome=applied
+31.6ms  2.02ms    mapper                             send cmd.salesforce.upsert-opportunity.v1       subject=cmd.salesforce.upsert-opportunity.v1
+32.6ms  16.2ms    salesforce-adapter                   process cmd.salesforce.upsert-opportunity.v1  referral=26526257-26d1-4a1a-b64f-96772a958dc6 opportunity=0068d0000000001AAA subject=cmd.salesforce.upsert-opportunity.v1 links=1
+46.9ms  1.51ms    salesforce-adapter                     send result.salesforce.v1                   subject=result.salesforce.v1
+48.1ms  5.92ms    mapper                                   process result.salesforce.v1              referral=26526257-26d1-4a1a-b64f-96772a958dc6 opportunity=0068d0000000001AAA subject=result.salesforce.v1
+48.7ms  5.08ms    mapper                                     mapper record salesforce result         referral=26526257-26d1-4a1a-b64f-96772a958dc6 opportunity=0068d0000000001AAA outcome=recorded

Trace 7c72774ced43e89658c1abaf9370bc0e  at +33.1ms (2026-11-24 08:21:40.864Z)  13.5ms, 2 span(s)  linked from 10f117c68830c3fc887ac9172a0b19d3/272f958efb400de3  (1 database spans hidden; --db shows them)
OFFSET   DURATION  SERVICE             SPAN                      ATTRIBUTES
+33.1ms  13.5ms    salesforce-adapter  upsert Opportunity batch  links=1
+46.0ms  0.61ms    salesforce-adapter    HTTP PATCH              http=PATCH /services/data/v62.0/composite/sobjects/Opportunity/Referral_Identifier__c 200
`

func TestTraceTimelineFromRecordedJaeger(t *testing.T) {
	f := &fakeJaeger{services: recordedServices}
	srv := httptest.NewServer(f)
	defer srv.Close()

	code, out, errOut := runWithJaeger(t, srv.URL, "trace", recordedReferralID)
	if code != 0 {
		t.Fatalf("trace: exit %d, stderr %q", code, errOut)
	}
	want := strings.ReplaceAll(wantTimeline, "JAEGER", srv.URL)
	if out != want {
		t.Errorf("timeline\n%s\nwant\n%s", out, want)
	}
	for _, line := range [][]string{
		{"+10.7ms", "partnercenter-adapter", "      send referral.observed.v1", "subject=referral.observed.v1"},
		{"+12.2ms", "21.7ms", "mapper", "        process referral.observed.v1", "referral=" + recordedReferralID},
		{"mapper", "          mapper apply referral", "referral=" + recordedReferralID, "outcome="},
		{"+32.6ms", "salesforce-adapter", "process cmd.salesforce.upsert-opportunity.v1", "opportunity=0068d0000000001AAA", "links=1"},
		{"mapper", "mapper record salesforce result", "opportunity=0068d0000000001AAA"},
		{"Trace " + recordedBatchTraceID, "at +33.1ms", "linked from " + recordedWebhookTraceID + "/"},
		{"+33.1ms", "13.5ms", "salesforce-adapter", "upsert Opportunity batch"},
		{"salesforce-adapter", "  HTTP PATCH", "http=PATCH /services/data/", "200"},
	} {
		if !lineWith(out, line...) {
			t.Errorf("no line with %q:\n%s", line, out)
		}
	}
	if strings.Contains(out, "BEGIN") || strings.Contains(out, "pool.acquire") {
		t.Errorf("database spans shown without --db:\n%s", out)
	}
	// Every service was searched by both tag keys.
	f.mu.Lock()
	searches := strings.Join(f.searches, "\n")
	f.mu.Unlock()
	for _, s := range []string{"ingress", "mapper", "partnercenter-adapter", "salesforce-adapter"} {
		for _, k := range referralTagKeys {
			if !strings.Contains(searches, s+` {"`+k+`":"`+recordedReferralID+`"}`) {
				t.Errorf("no search of %s by %s:\n%s", s, k, searches)
			}
		}
	}

	// --db shows them, nested under the mapper's span.
	_, out, _ = runWithJaeger(t, srv.URL, "trace", recordedReferralID, "--db")
	if !lineWith(out, "mapper", "            BEGIN") || !lineWith(out, "mapper", "              INSERT") || strings.Contains(out, "hidden") {
		t.Errorf("trace --db:\n%s", out)
	}
	// --links=false leaves the batch trace out.
	_, out, _ = runWithJaeger(t, srv.URL, "trace", recordedReferralID, "--links=false")
	if strings.Contains(out, recordedBatchTraceID) || !strings.Contains(out, "1 trace(s)") {
		t.Errorf("trace --links=false:\n%s", out)
	}
}

func TestTraceJSONFromRecordedJaeger(t *testing.T) {
	srv := httptest.NewServer(&fakeJaeger{services: recordedServices})
	defer srv.Close()
	code, out, errOut := runWithJaeger(t, srv.URL, "trace", recordedReferralID, "--json", "--db")
	if code != 0 {
		t.Fatalf("trace --json: exit %d, stderr %q", code, errOut)
	}
	var j Journey
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if j.ReferralID != recordedReferralID || j.JaegerURL != srv.URL || len(j.Traces) != 2 {
		t.Fatalf("journey = %+v", j)
	}
	wh, batch := j.Traces[0], j.Traces[1]
	if wh.TraceID != recordedWebhookTraceID || len(wh.Spans) != 35 || wh.OffsetMS != 0 || wh.DurationMS != 54.007 {
		t.Errorf("webhook trace = %s, %d spans, offset %v, duration %v", wh.TraceID, len(wh.Spans), wh.OffsetMS, wh.DurationMS)
	}
	if batch.TraceID != recordedBatchTraceID || !strings.HasPrefix(batch.LinkedFrom, recordedWebhookTraceID+"/") || len(batch.Spans) != 3 {
		t.Errorf("batch trace = %+v", batch)
	}
	// Tree order: every span's parent comes before it, one level up, and
	// siblings are in start order.
	pos := map[string]int{}
	for i, s := range wh.Spans {
		pos[s.SpanID] = i
		if i == 0 {
			if s.Depth != 0 || s.ParentID != "" || s.Service != "ingress" || s.Kind != "server" {
				t.Errorf("root = %+v", s)
			}
			continue
		}
		p, ok := pos[s.ParentID]
		if !ok || wh.Spans[p].Depth != s.Depth-1 {
			t.Errorf("span %d (%s) comes before its parent or at the wrong depth: %+v", i, s.Name, s)
		}
		if s.OffsetMS < wh.Spans[p].OffsetMS {
			t.Errorf("span %s starts before its parent", s.Name)
		}
	}
	root := wh.Spans[0]
	if root.Attributes["referral"] != recordedReferralID || root.Attributes["http.method"] != "POST" || root.Attributes["http.status"] != "200" ||
		root.Attributes["event"] != "referral-created" || root.DurationMS != 13.302 {
		t.Errorf("root attributes = %+v, duration %v", root.Attributes, root.DurationMS)
	}
	dbSpans := 0
	for _, s := range wh.Spans {
		if s.Database {
			dbSpans++
		}
	}
	if dbSpans != 21 || wh.HiddenDBSpans != 0 {
		t.Errorf("%d database spans, %d hidden; want 21 shown with --db", dbSpans, wh.HiddenDBSpans)
	}
}

func TestTraceErrors(t *testing.T) {
	srv := httptest.NewServer(&fakeJaeger{services: recordedServices})
	defer srv.Close()
	empty := httptest.NewServer(&fakeJaeger{services: `{"data":["jaeger"],"total":1}`})
	defer empty.Close()
	notJaeger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>hello</html>")) }))
	defer notJaeger.Close()
	for _, tc := range []struct {
		name string
		url  string
		args []string
		code int
		want string
	}{
		{"unreachable", "http://127.0.0.1:1", []string{"trace", "R-1"}, 1, "Jaeger is not reachable at http://127.0.0.1:1 (set --jaeger-url or COSELL_JAEGER_URL"},
		{"flag wins over env", "http://127.0.0.1:1", []string{"trace", "R-1", "--jaeger-url", srv.URL}, 1, `carries referral "R-1"`},
		{"no trace", srv.URL, []string{"trace", "R-1"}, 1, `no trace in Jaeger at ` + srv.URL + ` carries referral "R-1" (searched ingress, mapper, partnercenter-adapter, salesforce-adapter for cosell.referral_id and partnercenter.referral_id over the last 7d`},
		{"no services", empty.URL, []string{"trace", "R-1"}, 1, "has no traces of any service yet"},
		{"not Jaeger", notJaeger.URL, []string{"trace", "R-1"}, 1, "did not answer Jaeger's query API JSON"},
		{"missing id", srv.URL, []string{"trace"}, 2, "missing referral id"},
		{"two ids", srv.URL, []string{"trace", "a", "b"}, 2, "want one referral id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runWithJaeger(t, tc.url, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tc.code, tc.want)
			}
		})
	}
}

// A span whose parent Jaeger does not have (not yet arrived, or dropped)
// is shown as a root of its trace rather than lost.
func TestBuildJourneyOrphansAndOrder(t *testing.T) {
	tr := &jaegerTrace{TraceID: "t1", Processes: map[string]jaegerProcess{"p1": {ServiceName: "mapper"}}, Spans: []jaegerSpan{
		{TraceID: "t1", SpanID: "c", OperationName: "late child", StartTime: 1_000_300, Duration: 10, ProcessID: "p1",
			References: []jaegerRef{{RefType: "CHILD_OF", TraceID: "t1", SpanID: "a"}}},
		{TraceID: "t1", SpanID: "b", OperationName: "early child", StartTime: 1_000_100, Duration: 10, ProcessID: "p1",
			References: []jaegerRef{{RefType: "CHILD_OF", TraceID: "t1", SpanID: "a"}},
			Tags:       []jaegerTag{{Key: "otel.status_code", Value: "ERROR"}, {Key: "otel.status_description", Value: "boom"}}},
		{TraceID: "t1", SpanID: "o", OperationName: "orphan", StartTime: 1_000_050, Duration: 5, ProcessID: "p2",
			References: []jaegerRef{{RefType: "CHILD_OF", TraceID: "t1", SpanID: "missing"}}},
		{TraceID: "t1", SpanID: "a", OperationName: "root", StartTime: 1_000_000, Duration: 1000, ProcessID: "p1"},
	}}
	j := buildJourney("R", []*jaegerTrace{tr}, nil)
	var got []string
	for _, s := range j.Traces[0].Spans {
		got = append(got, strings.Repeat(">", s.Depth)+s.Name+"@"+fmtMS(s.OffsetMS)+"/"+s.Service+"/"+s.Error)
	}
	want := "root@0.00ms/mapper/ >early child@0.10ms/mapper/boom >late child@0.30ms/mapper/ orphan@0.05ms/p2/"
	if strings.Join(got, " ") != want {
		t.Errorf("spans = %s\nwant     %s", strings.Join(got, " "), want)
	}
	var buf bytes.Buffer
	if err := renderJourney(&buf, j); err != nil {
		t.Fatal(err)
	}
	if !lineWith(buf.String(), "  early child", "ERROR: boom") {
		t.Errorf("render:\n%s", buf.String())
	}
}

func TestFmtMS(t *testing.T) {
	for ms, want := range map[float64]string{0: "0.00ms", 0.42: "0.42ms", 12.34: "12.3ms", 1250: "1.25s", 184_000: "3m4s"} {
		if got := fmtMS(ms); got != want {
			t.Errorf("fmtMS(%v) = %q, want %q", ms, got, want)
		}
	}
}

// lineWith reports whether one line of out contains every part.
func lineWith(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
