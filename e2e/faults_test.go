package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/e2e/stack"
)

// TestFaults runs on one stack whose sweep is too slow to heal anything
// during the test, with traces exported to an in-memory sink and a
// Salesforce org that enables a few currencies only: one trace per
// referral, tampered webhooks, a Salesforce rejection parked and replayed,
// and kill -9 of every service while referrals flow.
func TestFaults(t *testing.T) {
	sys := startSystem(t, "faults", options{
		sweep: 10 * time.Minute, traces: true,
		sfArgs: []string{"-currencies", "USD,EUR,GBP,JPY,CAD,AUD,CHF"},
	})
	t.Run("OneTracePerReferral", sys.testOneTracePerReferral)
	t.Run("TamperedWebhooksRejected", sys.testTamperedWebhooksRejected)
	t.Run("SalesforceRejectionParkedThenReplayed", sys.testSalesforceRejection)
	t.Run("KillNineMidFlight", sys.testKillNineMidFlight)
}

// testOneTracePerReferral: the referral's spans, from ingress's webhook
// span to the salesforce-adapter, share one trace id.
func (s *system) testOneTracePerReferral(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	id := s.createReferral(t, ctx, newReferral("E2E trace: Proseware portal", "Proseware Trace Inc"))
	s.waitOpportunity(t, ctx, id, 20*time.Second, nil)

	var root stack.Span
	services := []string{"ingress", "partnercenter-adapter", "mapper", "salesforce-adapter"}
	s.eventually(t, 20*time.Second, "the referral's trace to hold spans of all four services", func() (bool, string) {
		root = stack.Span{}
		for _, sp := range s.sink.Spans() {
			if sp.Service == "ingress" && sp.Kind == "SPAN_KIND_SERVER" && sp.Attributes["partnercenter.referral_id"] == id &&
				sp.Attributes["partnercenter.event_name"] == "referral-created" {
				root = sp
			}
		}
		if root.TraceID == "" {
			return false, fmt.Sprintf("no ingress server span with partnercenter.referral_id=%s among %d spans", id, len(s.sink.Spans()))
		}
		have := map[string][]string{}
		for _, sp := range s.sink.Trace(root.TraceID) {
			have[sp.Service] = append(have[sp.Service], sp.Name)
		}
		for _, svc := range services {
			if len(have[svc]) == 0 {
				return false, fmt.Sprintf("trace %s has no span from %s; spans by service: %v", root.TraceID, svc, have)
			}
		}
		// Spans are exported in batches as they end, so the mapper's
		// message span (which ends after its database spans) may come later.
		if !slices.ContainsFunc(s.sink.Trace(root.TraceID), func(sp stack.Span) bool {
			return sp.Service == "mapper" && sp.Attributes["cosell.referral_id"] == id
		}) {
			return false, fmt.Sprintf("trace %s has no mapper span with cosell.referral_id=%s yet; spans by service: %v", root.TraceID, id, have)
		}
		// The Salesforce upsert itself (a PATCH by External ID, or the
		// Composite call that writes a collection and reads it back): the
		// adapter's HTTP call, in the trace or in the trace of a batch span
		// linked to it.
		if !slices.ContainsFunc(s.sfCallSpans(root.TraceID), func(sp stack.Span) bool {
			return sp.Name == "HTTP PATCH" || sp.Name == "HTTP POST" && strings.Contains(fmt.Sprint(sp.Attributes["url.full"]), "/composite")
		}) {
			var linked []string
			for _, sp := range s.sink.Spans() {
				if sp.Service == "salesforce-adapter" && sp.Kind != "SPAN_KIND_CLIENT" {
					linked = append(linked, fmt.Sprintf("%s (trace %s, links %v)", sp.Name, sp.TraceID, sp.LinkedTraces))
				}
			}
			return false, fmt.Sprintf("no salesforce-adapter HTTP call in trace %s or in a batch trace linked to it; salesforce-adapter spans: %v", root.TraceID, linked)
		}
		return true, ""
	})
	if root.ParentID != "" {
		t.Errorf("ingress's webhook span %s has parent %s, want a root span", root.SpanID, root.ParentID)
	}
	trace := s.sink.Trace(root.TraceID)
	// The adapter's GET of the referral and the mapper's work on this
	// referral are in the trace, not in traces of their own.
	var pcClient, mapperRef bool
	for _, sp := range trace {
		pcClient = pcClient || (sp.Service == "partnercenter-adapter" && sp.Kind == "SPAN_KIND_CLIENT")
		mapperRef = mapperRef || (sp.Service == "mapper" && sp.Attributes["cosell.referral_id"] == id)
	}
	if !pcClient {
		t.Errorf("trace %s has no partnercenter-adapter client span (the GET of the referral)", root.TraceID)
	}
	if !mapperRef {
		t.Errorf("trace %s has no mapper span with cosell.referral_id=%s", root.TraceID, id)
	}
	// The salesforce-adapter's work for this referral is in the trace, and
	// the mapper's audit rows point at the same trace.
	audit, err := s.db.AuditEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range audit {
		if a.Kind == "upsert_sent" && a.TraceID != root.TraceID {
			t.Errorf("audit %s of %s has trace id %s, want the webhook's %s", a.Kind, id, a.TraceID, root.TraceID)
		}
	}
	var names []string
	for _, sp := range trace {
		names = append(names, sp.Service+": "+sp.Name)
	}
	for _, sp := range s.sfCallSpans(root.TraceID) {
		names = append(names, "salesforce-adapter (batch trace "+sp.TraceID+"): "+sp.Name)
	}
	slices.Sort(names)
	t.Logf("trace %s: %s", root.TraceID, strings.Join(names, " | "))
}

// sfCallSpans returns the salesforce-adapter's outbound HTTP spans of a
// referral's trace id: in the trace itself, or in the trace of a batch span
// that links to it (a batch serves many referrals, so it is a trace of its
// own linked to every command's span).
func (s *system) sfCallSpans(id string) []stack.Span {
	traces := map[string]bool{id: true}
	spans := s.sink.Spans()
	for _, sp := range spans {
		if sp.Service == "salesforce-adapter" && slices.Contains(sp.LinkedTraces, id) {
			traces[sp.TraceID] = true
		}
	}
	var out []stack.Span
	for _, sp := range spans {
		if sp.Service == "salesforce-adapter" && sp.Kind == "SPAN_KIND_CLIENT" && strings.HasPrefix(sp.Name, "HTTP ") && traces[sp.TraceID] {
			out = append(out, sp)
		}
	}
	return out
}

// testTamperedWebhooksRejected: a delivery with a bad signature, a
// certificate from an untrusted host, one that does not chain to the
// trusted root, one of the wrong organisation, or none at all is answered
// 401 on every attempt, and nothing reaches the bus.
func (s *system) testTamperedWebhooksRejected(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	t.Cleanup(func() { _ = s.pc.ClearWebhookFaults(context.Background()) })
	s.waitIdle(t, ctx, 20*time.Second)
	before, err := s.StreamMessages(ctx, "PC_NOTIFICATIONS")
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome := map[string]string{
		"badSignature":     "bad_signature",
		"untrustedCert":    "bad_signature",
		"wrongOrg":         "bad_signature",
		"missingSignature": "bad_signature",
		"foreignCertHost":  "untrusted_cert_host",
	}
	ids := map[string]string{} // fault kind -> referral id
	for _, kind := range sortedKeys(wantOutcome) {
		// The fault applies to every event raised while it is installed:
		// the referral's and those of Microsoft's referral beside it.
		fault, err := s.pc.AddWebhookFault(ctx, stack.WebhookFault{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		ids[kind] = s.createReferral(t, ctx, newReferral("E2E tampered "+kind, "Tampered "+kind+" Corp"))
		if err := s.pc.DeleteWebhookFault(ctx, fault); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range sortedKeys(wantOutcome) {
		id := ids[kind]
		s.eventually(t, 20*time.Second, "two refused attempts of the "+kind+" delivery", func() (bool, string) {
			ds, err := s.pc.DeliveriesFor(ctx, id)
			if err != nil {
				return false, err.Error()
			}
			for _, d := range ds {
				if d.EventName != "referral-created" {
					continue
				}
				if !slices.Contains(d.Faults, kind) {
					t.Fatalf("delivery %s of %s lacks the %s fault: %+v", d.ID, id, kind, d)
				}
				if d.Status == "delivered" {
					t.Fatalf("the %s delivery for %s was accepted: %+v %s", kind, id, d, s.logs())
				}
				for _, a := range d.Attempts {
					if a.StatusCode != http.StatusUnauthorized || !strings.Contains(a.ResponseMessage, wantOutcome[kind]) {
						t.Fatalf("attempt %d of the %s delivery for %s: %d %q %s, want 401 %s %s",
							a.Number, kind, id, a.StatusCode, a.ResponseMessage, a.Error, wantOutcome[kind], s.logs())
					}
				}
				return len(d.Attempts) >= 2, fmt.Sprintf("%d attempts so far", len(d.Attempts))
			}
			return false, fmt.Sprintf("no referral-created delivery in %+v", ds)
		})
	}

	after, err := s.StreamMessages(ctx, "PC_NOTIFICATIONS")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("PC_NOTIFICATIONS went from %d to %d messages while only tampered deliveries arrived: something unverified was published %s", before, after, s.logs())
	}
	for _, kind := range sortedKeys(ids) {
		id := ids[kind]
		if l, err := s.db.Link(ctx, id); err != nil || l != nil {
			t.Errorf("%s: the mapper has a link for %s (%v, %v)", kind, id, l, err)
		}
		if recs, err := s.opportunities(ctx, id); err != nil || len(recs) != 0 {
			t.Errorf("%s: referral %s has opportunities %v (%v)", kind, id, recs, err)
		}
	}
}

// testSalesforceRejection: a referral in a currency the org does not
// enable is rejected by Salesforce → audited with Salesforce's reason, the
// link parked with a dead letter, no retries; the seller's correction is
// held; an operator's replay then creates the opportunity.
func (s *system) testSalesforceRejection(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	fields := newReferral("E2E rejected: Contoso Prague office", "Contoso Rejection s.r.o.")
	fields["details"].(map[string]any)["currency"] = "CZK" // not enabled in this org
	id := s.createReferral(t, ctx, fields)

	var rejected stack.AuditEvent
	s.eventually(t, 20*time.Second, "the rejection in the audit log", func() (bool, string) {
		audit, err := s.db.AuditEvents(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		for _, a := range audit {
			if a.Kind == "salesforce_rejected" {
				rejected = a
				return true, ""
			}
		}
		return false, fmt.Sprintf("audit kinds %v; %s", auditKinds(audit), s.linkState(ctx, id))
	})
	if code := str(rejected.Details["errorCode"]); code != "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" {
		t.Errorf("rejection errorCode = %q, want Salesforce's INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST (details %v)", code, rejected.Details)
	}
	if !strings.Contains(rejected.Message, "bad value for restricted picklist field: CZK") {
		t.Errorf("rejection audit message %q does not carry Salesforce's reason", rejected.Message)
	}
	l, err := s.db.Link(ctx, id)
	if err != nil || l == nil || l.State != "parked" {
		t.Fatalf("link of %s = %+v (%v), want parked %s", id, l, err, s.logs())
	}
	dls, err := s.db.MapperDeadLetters(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].ReplayedAt != nil || !strings.Contains(dls[0].Reason, "CZK") {
		t.Fatalf("dead letters of %s = %+v, want one unreplayed with Salesforce's reason %s", id, dls, s.logs())
	}

	// Nothing retries the rejected write.
	s.waitIdle(t, ctx, 20*time.Second)
	writes, calls, err := s.sfWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.assertFlat(t, ctx, writes, calls, 3*time.Second)
	if recs, err := s.opportunities(ctx, id); err != nil || len(recs) != 0 {
		t.Fatalf("rejected referral %s has opportunities %v (%v)", id, recs, err)
	}

	// The Microsoft seller corrects the currency: the snapshot is held, not sent.
	if _, err := s.pc.UpdateAsMicrosoft(ctx, id, map[string]any{"details": map[string]any{"currency": "EUR"}}); err != nil {
		t.Fatal(err)
	}
	s.eventually(t, 20*time.Second, "the corrected snapshot to be held", func() (bool, string) {
		audit, err := s.db.AuditEvents(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		return slices.Contains(auditKinds(audit), "snapshot_held"), fmt.Sprint(auditKinds(audit))
	})
	s.waitIdle(t, ctx, 20*time.Second)
	s.assertFlat(t, ctx, writes, calls, time.Second)
	if recs, err := s.opportunities(ctx, id); err != nil || len(recs) != 0 {
		t.Fatalf("parked referral %s got opportunities before any replay: %v (%v)", id, recs, err)
	}

	// The operator replays the link.
	var out struct {
		State     string `json:"state"`
		CommandID string `json:"commandId"`
		Message   string `json:"message"`
	}
	mapperURL := "http://" + s.Process("mapper-1").Env["HTTP_ADDR"]
	if err := postJSON(ctx, mapperURL+"/admin/links/"+id+"/replay", &out); err != nil {
		t.Fatalf("replay: %v %s", err, s.logs())
	}
	if out.State != "active" {
		t.Fatalf("replay answered %+v, want state active", out)
	}
	opp := s.waitOpportunity(t, ctx, id, 20*time.Second, nil)
	if opp["CurrencyIsoCode"] != "EUR" || opp["Amount"] != 42000.0 || opp["StageName"] != "On Hold" {
		t.Errorf("replayed opportunity = %v, want EUR 42000 On Hold", opp)
	}
	s.eventually(t, 10*time.Second, "the link to be active with the opportunity and the dead letter replayed", func() (bool, string) {
		l, err := s.db.Link(ctx, id)
		if err != nil || l == nil {
			return false, fmt.Sprint(l, err)
		}
		dls, err := s.db.MapperDeadLetters(ctx, id)
		if err != nil || len(dls) != 1 {
			return false, fmt.Sprint(dls, err)
		}
		return l.State == "active" && l.OpportunityID == str(opp["Id"]) && dls[0].ReplayedAt != nil, fmt.Sprintf("link %+v, dead letter %+v", *l, dls[0])
	})

	// The poller sees the replayed write come back; that echo must leave
	// the sync at rest on EUR, not send the refused CZK again.
	stamp := str(opp["SystemModstamp"])
	s.eventually(t, 40*time.Second, "the poller to pass the replayed write", func() (bool, string) {
		n, err := s.db.Int(ctx, `SELECT count(*) FROM salesforce_adapter.cursors WHERE name = 'opportunities' AND watermark >= $1::timestamptz`, stamp)
		return err == nil && n == 1, fmt.Sprint(n, err)
	})
	s.waitIdle(t, ctx, 20*time.Second)
	if l, err := s.db.Link(ctx, id); err != nil || l == nil || l.State != "active" {
		t.Fatalf("after the echo of the replayed write, link = %+v (%v), want active %s", l, err, s.logs())
	}
	if recs, err := s.opportunities(ctx, id); err != nil || len(recs) != 1 || recs[0]["CurrencyIsoCode"] != "EUR" {
		t.Fatalf("after the echo of the replayed write, opportunities = %v (%v), want one in EUR", recs, err)
	}
}

// assertFlat checks, for a while, that the Salesforce emulator sees no
// new write calls.
func (s *system) assertFlat(t *testing.T, ctx context.Context, writes int64, calls map[string]int64, window time.Duration) {
	t.Helper()
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		now, nowCalls, err := s.sfWrites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if now != writes {
			t.Fatalf("Salesforce write calls went from %d to %d with the sync parked: a retry (calls before %v, now %v) %s", writes, now, calls, nowCalls, s.logs())
		}
	}
}

func postJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return fmt.Errorf("POST %s: %s %v", url, resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// testKillNineMidFlight: while a batch of referrals flows, every service in
// turn is killed with SIGKILL and restarted; every referral still ends with
// exactly one opportunity.
func (s *system) testKillNineMidFlight(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	const n = 50
	run := fmt.Sprintf("KillNine%d", time.Now().UnixNano()%100000)
	type seedResult struct {
		seeded []*stack.Seeded
		err    error
	}
	// Slow Partner Center's GET and Salesforce's writes down so that every
	// kill finds messages in flight (received, not yet acknowledged).
	if err := s.pc.Control(ctx, http.MethodPost, "/faults", map[string]any{"endpoint": "referrals.get", "kind": "latency", "latency": "250ms"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"upsert", "composite", "composite.sobjects"} {
		if err := s.sf.Control(ctx, http.MethodPost, "/faults", map[string]any{"endpoint": ep, "kind": "latency", "latency": "250ms"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = s.pc.Control(context.Background(), http.MethodDelete, "/faults", nil, nil)
		_ = s.sf.Control(context.Background(), http.MethodDelete, "/faults", nil, nil)
	})
	seeding := make(chan seedResult, 1)
	go func() {
		seeded, err := stack.SeedInbound(ctx, s.pc, run, n, 4, 80*time.Millisecond)
		seeding <- seedResult{seeded, err}
	}()
	countRun := func() (int, error) {
		return s.sf.Count(ctx, "SELECT COUNT() FROM Opportunity WHERE Name LIKE "+stack.QuoteSOQL(run+" %"))
	}
	// Kill each service in turn while the batch flows, spreading the kills
	// over the batch's progress.
	for i, name := range []string{"mapper-1", "salesforce-adapter-1", "partnercenter-adapter-1", "ingress-1"} {
		at := 2 + i*n/5
		svc := strings.TrimSuffix(name, "-1")
		s.eventually(t, 60*time.Second, fmt.Sprintf("%d opportunities of the batch and %s busy before killing it", at, svc), func() (bool, string) {
			c, err := countRun()
			if err != nil || c < at {
				return false, fmt.Sprint(c, err)
			}
			if svc == "ingress" { // no consumer: in flight are the webhook deliveries
				return true, ""
			}
			busy, err := s.ConsumersBusy(ctx)
			for _, b := range busy {
				if _, consumer, _ := strings.Cut(b, "/"); strings.HasPrefix(consumer, svc+"-") && !strings.Contains(b, " 0 unacked") {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d opportunities; consumers busy: %v %v", c, busy, err)
		})
		c, _ := countRun()
		busy, _ := s.ConsumersBusy(ctx)
		t.Logf("kill -9 %s with %d of %d opportunities created; in flight: %v", name, c, n, busy)
		s.Process(name).Kill()
		if err := s.Restart(ctx, name); err != nil {
			t.Fatalf("restart %s: %v %s", name, err, s.logs())
		}
	}
	res := <-seeding
	if res.err != nil {
		t.Fatalf("seed referrals: %v", res.err)
	}
	ids := make([]string, len(res.seeded))
	for i, sd := range res.seeded {
		ids[i] = sd.ReferralID
	}
	// JetStream redelivers what the killed consumers had not acknowledged
	// once their ack wait passes (up to a minute for the salesforce-adapter).
	s.eventually(t, 100*time.Second, "an opportunity for every referral of the batch", func() (bool, string) {
		counts, err := s.countByReferral(ctx, ids)
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, id := range ids {
			if counts[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("%d of %d referrals have no opportunity, e.g. %s: %s", len(missing), n, missing[0], s.linkState(ctx, missing[0]))
	})
	// The killed salesforce-adapter's unacknowledged commands come back
	// after its one-minute ack wait; wait for them so nothing is judged
	// before the system has settled.
	s.waitIdle(t, ctx, 90*time.Second)
	counts, err := s.countByReferral(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if counts[id] != 1 {
			t.Errorf("referral %s has %d opportunities, want 1", id, counts[id])
		}
	}
	if c, err := countRun(); err != nil || c != n {
		t.Errorf("the batch has %d opportunities (%v), want %d %s", c, err, n, s.logs())
	}
	for _, id := range ids {
		// Active, and the last command sent has its result recorded.
		if l, err := s.db.Link(ctx, id); err != nil || l == nil || l.State != "active" || l.OpportunityID == "" || l.ResultCommandID != l.CommandID {
			t.Errorf("link of %s = %+v (%v), want active with the opportunity and the last command's result", id, l, err)
		}
	}
}
