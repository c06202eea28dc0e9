package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/cursorstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/poller"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// getJSON GETs url and decodes a JSON answer into out (when non-nil).
func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return resp.StatusCode
}

func TestPollerPublishesOptedInOpportunitiesEachInItsOwnTrace(t *testing.T) {
	s := startStack(t, sfemutest.Options{}, map[string]string{"SF_POLL_ENABLED": "true", "SF_POLL_INTERVAL": "100ms"})
	ctx := context.Background()
	obs, err := s.conn.JetStream().OrderedConsumer(ctx, bus.StreamOpportunities, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	acct := s.emu.CreateRecord("Account", map[string]any{"Name": "Fabrikam", "BillingCountry": "FR"})
	opp := s.emu.CreateRecord("Opportunity", map[string]any{"Name": "Fabrikam rollout", "StageName": "Prospecting",
		"CloseDate": "2030-03-31", "Amount": 20000, "AccountId": acct["Id"], "Sync_with_Partner_Center__c": true})
	s.emu.CreateRecord("Opportunity", map[string]any{"Name": "Private", "StageName": "Prospecting", "CloseDate": "2030-03-31"})
	id := opp["Id"].(string)

	m, err := obs.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var o cosellv1.OpportunityObserved
	if err := proto.Unmarshal(m.Data(), &o); err != nil {
		t.Fatal(err)
	}
	if o.GetOpportunityId() != id || m.Headers().Get(jetstream.MsgIDHeader) != "opp:"+id+":"+opp["SystemModstamp"].(string) {
		t.Fatalf("observed %v (Msg-Id %s), want %s", &o, m.Headers().Get(jetstream.MsgIDHeader), id)
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(ctx, bus.HeaderCarrier(m.Headers())))
	if !sc.IsValid() {
		t.Fatalf("observation carries no trace context: %v", m.Headers())
	}
	if _, err := obs.Next(jetstream.FetchMaxWait(500 * time.Millisecond)); err == nil {
		t.Fatal("a second observation was published (the other opportunity is not opted in, nothing changed)")
	}

	// The operator's dry run reads exactly what the mapper was sent.
	var got, sent map[string]any
	if code := getJSON(t, s.base+"/admin/opportunities/"+id, &got); code != http.StatusOK {
		t.Fatalf("GET opportunity = %d", code)
	}
	if err := json.Unmarshal(o.GetRecordJson(), &sent); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Fatalf("admin record\n%v\ndiffers from the published one\n%v", got, sent)
	}

	// The cursor row and the metrics show the last poll.
	waitFor(t, "the cursor row", func() bool {
		pool := storetest.Open(t, s.dsn)
		defer pool.Close()
		cur, err := cursorstore.New(pool).Get(ctx, poller.Cursor)
		return err == nil && cur.Last.Outcome == poller.OutcomeOK && cur.Watermark != nil &&
			cur.Watermark.UTC().Format("2006-01-02T15:04:05.000+0000") == opp["SystemModstamp"]
	})
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cosell_salesforce_poll_last_time_seconds{`, `outcome="ok"`, "cosell_salesforce_poll_watermark_seconds", "cosell_salesforce_poll_runs"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// writeback publishes a write-back command in a trace of its own and
// returns that trace.
func (s *stack) writeback(t *testing.T, cmd *cosellv1.SalesforceWriteback) trace.TraceID {
	t.Helper()
	ctx, span := s.tracer.Start(context.Background(), "mapper")
	defer span.End()
	if err := s.conn.Publish(ctx, bus.SubjectSalesforceWriteback, cmd.GetCommandId(), cmd); err != nil {
		t.Fatal(err)
	}
	return span.SpanContext().TraceID()
}

func TestWritebackUpdatesTheOpportunityAndAnswers(t *testing.T) {
	s := startStack(t, sfemutest.Options{}, map[string]string{"SF_BATCH_WAIT": "300ms"})
	opp := s.emu.CreateRecord("Opportunity", map[string]any{"Name": "Contoso", "StageName": "Prospecting", "CloseDate": "2030-03-31",
		"Sync_with_Partner_Center__c": true})
	other := s.emu.CreateRecord("Opportunity", map[string]any{"Name": "Northwind", "StageName": "Prospecting", "CloseDate": "2030-03-31"})
	id, otherID := opp["Id"].(string), other["Id"].(string)
	s.emu.ResetCounters()

	okTrace := s.writeback(t, &cosellv1.SalesforceWriteback{
		CommandId: "sf-writeback:ok", OpportunityId: id, ReferralId: "ref-1",
		FieldsJson: []byte(`{"Referral_Identifier__c":"ref-1","Referral_Link__c":"https://partner.microsoft.com/referrals/ref-1","Audit__c":"2030-01-01 Referral ref-1 created in Partner Center.","Name":"Contoso ✓"}`),
	})
	s.writeback(t, &cosellv1.SalesforceWriteback{
		CommandId: "sf-writeback:bad", OpportunityId: otherID, ReferralId: "ref-2", FieldsJson: []byte(`{"StageName":"Bogus"}`),
	})
	s.writeback(t, &cosellv1.SalesforceWriteback{
		CommandId: "sf-writeback:invalid", OpportunityId: "not-an-id", FieldsJson: []byte(`{"Audit__c":"x"}`),
	})
	results := s.collect(t, 3)

	ok := results["sf-writeback:ok"]
	if r := ok.res; r.GetOutcome() != cosellv1.Outcome_OUTCOME_OK || r.GetOpportunityId() != id || r.GetReferralId() != "ref-1" {
		t.Fatalf("ok result = %v", r)
	}
	if ok.trace.TraceID() != okTrace {
		t.Fatalf("result in trace %s, want the command's %s", ok.trace.TraceID(), okTrace)
	}
	rec := s.emu.Record("Opportunity", id)
	if rec["Referral_Identifier__c"] != "ref-1" || rec["Referral_Link__c"] != "https://partner.microsoft.com/referrals/ref-1" ||
		rec["Audit__c"] != "2030-01-01 Referral ref-1 created in Partner Center." || rec["Name"] != "Contoso ✓" {
		t.Fatalf("opportunity after write-back = %v", rec)
	}
	if integration, _ := s.emu.Users(); rec["LastModifiedById"] != integration {
		t.Fatalf("written by %v, want the integration user %s", rec["LastModifiedById"], integration)
	}

	bad := results["sf-writeback:bad"].res
	if bad.GetOutcome() != cosellv1.Outcome_OUTCOME_REJECTED || bad.GetErrorCode() != "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" ||
		bad.GetErrorMessage() != "Stage: bad value for restricted picklist field: Bogus" ||
		len(bad.GetErrorFields()) != 1 || bad.GetErrorFields()[0] != "StageName" || bad.GetOpportunityId() != otherID || bad.GetReferralId() != "ref-2" {
		t.Fatalf("rejected result = %v", bad)
	}
	if inv := results["sf-writeback:invalid"].res; inv.GetOutcome() != cosellv1.Outcome_OUTCOME_REJECTED || inv.GetErrorCode() != "COSELL_INVALID_COMMAND" {
		t.Fatalf("invalid result = %v", inv)
	}
	if calls := s.emu.Counters().Calls["composite"]; calls != 1 {
		t.Fatalf("%d collection calls, want both write-backs in one", calls)
	}
}

func TestAdminEndpoints(t *testing.T) {
	s := startStack(t, sfemutest.Options{}, nil)
	opp := s.emu.CreateRecord("Opportunity", map[string]any{"Name": "Dry run", "StageName": "Prospecting", "CloseDate": "2030-03-31"})
	id := opp["Id"].(string)

	var rec map[string]any
	if code := getJSON(t, s.base+"/admin/opportunities/"+id, &rec); code != http.StatusOK || rec["Id"] != id || rec["Name"] != "Dry run" {
		t.Fatalf("GET opportunity = %d %v", code, rec)
	}
	if _, ok := rec["attributes"]; ok {
		t.Fatal("attributes left in the record")
	}
	if code := getJSON(t, s.base+"/admin/opportunities/0068d0000000999AAA", nil); code != http.StatusNotFound {
		t.Fatalf("unknown opportunity = %d, want 404", code)
	}
	if code := getJSON(t, s.base+"/admin/opportunities/x'OR'1", nil); code != http.StatusBadRequest {
		t.Fatalf("malformed id = %d, want 400", code)
	}
	s.emu.DeleteRecord("Opportunity", id)
	if code := getJSON(t, s.base+"/admin/opportunities/"+id, nil); code != http.StatusNotFound {
		t.Fatalf("deleted opportunity = %d, want 404", code)
	}

	s.emu.ResetCounters()
	for range 3 {
		var d struct {
			Name   string `json:"name"`
			Fields []struct {
				Name string `json:"name"`
			} `json:"fields"`
		}
		if code := getJSON(t, s.base+"/admin/describe/Opportunity", &d); code != http.StatusOK || d.Name != "Opportunity" || len(d.Fields) < 20 {
			t.Fatalf("describe = %d %+v", code, d)
		}
	}
	if calls := s.emu.Counters().Calls["describe"]; calls != 1 {
		t.Fatalf("%d describe calls for 3 requests, want 1 (cached)", calls)
	}
	if code := getJSON(t, s.base+"/admin/describe/No_Such_Object__c", nil); code != http.StatusNotFound {
		t.Fatalf("unknown object = %d, want 404", code)
	}
	if code := getJSON(t, s.base+"/admin/describe/bad-name", nil); code != http.StatusBadRequest {
		t.Fatalf("bad object name = %d, want 400", code)
	}
}
