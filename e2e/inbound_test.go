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

// TestInbound covers the Partner Center → Salesforce direction on one
// stack with a short reconciliation sweep and a recording proxy in front
// of ingress: field mapping, a seller's update, duplicated, reordered and
// dropped webhooks.
func TestInbound(t *testing.T) {
	sys := startSystem(t, "inbound", options{sweep: 2 * time.Second, recorder: true})
	t.Run("EveryMappedField", sys.testEveryMappedField)
	t.Run("SellerUpdate", sys.testSellerUpdate)
	t.Run("DuplicateDeliveries", sys.testDuplicateDeliveries)
	t.Run("ReorderedNotifications", sys.testReorderedNotifications)
	t.Run("DroppedWebhookHealedBySweep", sys.testDroppedWebhookHealedBySweep)
}

// testEveryMappedField: a new inbound referral becomes an opportunity with
// every field of the default mapping and its customer account.
func (s *system) testEveryMappedField(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	closing := time.Now().UTC().Add(75 * 24 * time.Hour).Truncate(24 * time.Hour).Add(12 * time.Hour)
	fields := map[string]any{
		"name": "E2E field mapping: Litware data platform",
		"customerProfile": map[string]any{
			"name": "Litware Field Mapping Inc",
			"address": map[string]any{
				"addressLine1": "1 Pike Place", "city": "Seattle", "state": "WA", "postalCode": "98101", "country": "US",
			},
			"team": []any{map[string]any{"firstName": "Ann", "lastName": "Lee", "email": "ann.lee@litware.example", "phoneNumber": "2065550199"}},
		},
		"details": map[string]any{
			"notes":           "Litware wants a data platform on Azure; needs a partner by Q3.",
			"dealValue":       123456.78,
			"currency":        "EUR",
			"closingDateTime": closing.Format(time.RFC3339),
			"requirements":    map[string]any{"solutions": []any{map[string]any{"id": "SOL-6115380-IPC"}}},
		},
	}
	id := s.createReferral(t, ctx, fields)
	opp := s.waitOpportunity(t, ctx, id, 20*time.Second, nil)

	want := map[string]any{
		"Name":                   "E2E field mapping: Litware data platform",
		"Amount":                 123456.78,
		"CurrencyIsoCode":        "EUR",
		"CloseDate":              closing.Format(time.DateOnly),
		"Description":            "Litware wants a data platform on Azure; needs a partner by Q3.",
		"StageName":              "On Hold",
		"Referral_Identifier__c": id,
		"Referral_Link__c":       "https://partner.microsoft.com/dashboard/referrals/v2/opportunities/" + id,
	}
	for _, k := range sortedKeys(want) {
		if opp[k] != want[k] {
			t.Errorf("Opportunity.%s = %#v, want %#v", k, opp[k], want[k])
		}
	}

	accountID := str(opp["AccountId"])
	if accountID == "" {
		t.Fatalf("opportunity %s has no AccountId %s", opp["Id"], s.logs())
	}
	accts, err := s.sf.Query(ctx, "SELECT Id, Name, BillingCountry, BillingPostalCode, BillingCity, BillingStreet FROM Account WHERE Id = "+stack.QuoteSOQL(accountID))
	if err != nil || len(accts) != 1 {
		t.Fatalf("read account %s: %v (%d rows) %s", accountID, err, len(accts), s.logs())
	}
	wantAcct := map[string]any{"Name": "Litware Field Mapping Inc", "BillingCountry": "US", "BillingPostalCode": "98101", "BillingCity": "Seattle", "BillingStreet": "1 Pike Place"}
	for _, k := range sortedKeys(wantAcct) {
		if accts[0][k] != wantAcct[k] {
			t.Errorf("Account.%s = %#v, want %#v", k, accts[0][k], wantAcct[k])
		}
	}
	if n, err := s.sf.Count(ctx, "SELECT COUNT() FROM Account WHERE Name = 'Litware Field Mapping Inc'"); err != nil || n != 1 {
		t.Errorf("accounts named Litware Field Mapping Inc: %d (%v), want 1", n, err)
	}

	// The mapper's link records both ids, and the audit trail says what happened.
	s.eventually(t, 10*time.Second, "the mapper's link to record the opportunity", func() (bool, string) {
		l, err := s.db.Link(ctx, id)
		if err != nil || l == nil {
			return false, fmt.Sprint(l, err)
		}
		return l.State == "active" && l.OpportunityID == str(opp["Id"]) && l.AccountID == accountID, fmt.Sprintf("%+v", *l)
	})
	audit, err := s.db.AuditEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	kinds := auditKinds(audit)
	if !slices.Contains(kinds, "upsert_sent") || !slices.Contains(kinds, "salesforce_written") {
		t.Errorf("audit trail of %s = %v, want upsert_sent and salesforce_written", id, kinds)
	}
}

// testSellerUpdate: the Microsoft seller changes deal value, closing date
// and notes; the opportunity follows (Name is create-only and stays).
func (s *system) testSellerUpdate(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	fields := newReferral("E2E seller update: Fabrikam analytics", "Fabrikam Seller Update GmbH")
	id := s.createReferral(t, ctx, fields)
	s.waitOpportunity(t, ctx, id, 20*time.Second, func(o map[string]any) bool { return o["Amount"] == 42000.0 })

	closing := time.Now().UTC().Add(120 * 24 * time.Hour).Truncate(24 * time.Hour).Add(12 * time.Hour)
	if _, err := s.pc.UpdateAsMicrosoft(ctx, id, map[string]any{"details": map[string]any{
		"dealValue": 98765.43, "closingDateTime": closing.Format(time.RFC3339), "notes": "Scope doubled after the workshop.",
	}}); err != nil {
		t.Fatalf("Microsoft seller updates the referral: %v", err)
	}
	opp := s.waitOpportunity(t, ctx, id, 20*time.Second, func(o map[string]any) bool {
		return o["Amount"] == 98765.43 && o["CloseDate"] == closing.Format(time.DateOnly) && o["Description"] == "Scope doubled after the workshop."
	})
	if opp["Name"] != "E2E seller update: Fabrikam analytics" || opp["StageName"] != "On Hold" {
		t.Errorf("after the update Name = %v, StageName = %v; want them unchanged", opp["Name"], opp["StageName"])
	}
}

// testDuplicateDeliveries: every notification of a referral arrives three
// times (the emulator's duplicate fault sends it twice; the exact signed
// request is then replayed once more, as Partner Center's at-least-once
// delivery may do long after) → exactly one opportunity.
func (s *system) testDuplicateDeliveries(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	fault, err := s.pc.AddWebhookFault(ctx, stack.WebhookFault{Kind: "duplicate"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.pc.ClearWebhookFaults(context.Background()) })
	id := s.createReferral(t, ctx, newReferral("E2E duplicates: Tailspin kiosks", "Tailspin Duplicates Ltd"))
	if err := s.pc.DeleteWebhookFault(ctx, fault); err != nil {
		t.Fatal(err)
	}
	opp := s.waitOpportunity(t, ctx, id, 20*time.Second, nil)

	// The emulator delivered referral-created twice, both answered 2xx.
	var created []stack.WebhookDelivery
	s.eventually(t, 15*time.Second, "both copies of referral-created to be delivered", func() (bool, string) {
		ds, err := s.pc.DeliveriesFor(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		created = nil
		for _, d := range ds {
			if d.EventName == "referral-created" && d.Status == "delivered" {
				created = append(created, d)
			}
		}
		return len(created) == 2, fmt.Sprintf("delivery log for %s: %+v", id, ds)
	})
	if created[0].DuplicateOf == "" && created[1].DuplicateOf == "" {
		t.Errorf("neither delivery is marked as a duplicate: %+v", created)
	}

	// Replay the captured request a third time, byte for byte.
	var copies []stack.RecordedWebhook
	for _, r := range s.rec.Recorded() {
		if strings.Contains(string(r.Body), id) && strings.Contains(string(r.Body), `"referral-created"`) {
			copies = append(copies, r)
		}
	}
	if len(copies) != 2 {
		t.Fatalf("the proxy saw %d referral-created deliveries for %s, want 2", len(copies), id)
	}
	status, body, err := s.rec.Replay(ctx, copies[0])
	if err != nil || status != http.StatusOK {
		t.Fatalf("third delivery of referral-created: %d %s %v %s", status, body, err, s.logs())
	}
	copies = append(copies, stack.RecordedWebhook{Status: status, Response: body})
	msgIDs := map[string]bool{}
	for i, c := range copies {
		var ans struct {
			Status string `json:"status"`
			MsgID  string `json:"msgId"`
		}
		if err := json.Unmarshal([]byte(c.Response), &ans); err != nil || c.Status != http.StatusOK || ans.Status != "accepted" {
			t.Errorf("delivery %d answered %d %s, want 200 accepted", i+1, c.Status, c.Response)
		}
		msgIDs[ans.MsgID] = true
	}
	if len(msgIDs) != 1 {
		t.Errorf("the three deliveries of one notification got different message ids: %v", sortedKeys(msgIDs))
	}

	s.waitIdle(t, ctx, 20*time.Second)
	counts, err := s.countByReferral(ctx, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	if counts[id] != 1 {
		t.Errorf("referral %s has %d opportunities after three deliveries, want 1 %s", id, counts[id], s.logs())
	}
	audit, err := s.db.AuditEvents(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	created2 := 0
	for _, a := range audit {
		if a.Kind == "salesforce_written" && strings.Contains(a.Message, "created") {
			created2++
		}
	}
	if created2 != 1 {
		t.Errorf("audit of %s records %d creations of opportunity %s, want 1: %v", id, created2, opp["Id"], auditKinds(audit))
	}
}

// testReorderedNotifications: three updates of one referral whose
// notifications arrive newest first → the opportunity ends in the latest state.
func (s *system) testReorderedNotifications(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	id := s.createReferral(t, ctx, newReferral("E2E reorder: Northwind stores", "Northwind Reorder Traders"))
	s.waitOpportunity(t, ctx, id, 20*time.Second, nil)

	if _, err := s.pc.AddWebhookFault(ctx, stack.WebhookFault{Kind: "reorder", Event: "referral-updated", Count: 3, Order: "reverse"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.pc.ClearWebhookFaults(context.Background()) })
	for i := 1; i <= 3; i++ {
		if _, err := s.pc.UpdateAsMicrosoft(ctx, id, map[string]any{"details": map[string]any{
			"dealValue": float64(1000 + i), "notes": fmt.Sprintf("Update %d of 3.", i),
		}}); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}

	// The three notifications were held and sent newest first.
	var updates []stack.WebhookDelivery
	s.eventually(t, 20*time.Second, "the three reordered referral-updated notifications to be delivered", func() (bool, string) {
		ds, err := s.pc.DeliveriesFor(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		updates = nil
		for _, d := range ds {
			if d.EventName == "referral-updated" {
				updates = append(updates, d)
			}
		}
		done := len(updates) == 3
		for _, d := range updates {
			done = done && d.Status == "delivered" && slices.Contains(d.Faults, "reorder")
		}
		return done, fmt.Sprintf("%+v", updates)
	})
	for i := 0; i+1 < len(updates); i++ { // log order = order the changes were made
		if !updates[i].Attempts[0].At.After(updates[i+1].Attempts[0].At) {
			t.Errorf("notification %d was first sent at %s, not after the newer notification %d (%s): not reordered",
				i+1, updates[i].Attempts[0].At, i+2, updates[i+1].Attempts[0].At)
		}
	}

	s.waitOpportunity(t, ctx, id, 20*time.Second, func(o map[string]any) bool {
		return o["Amount"] == 1003.0 && o["Description"] == "Update 3 of 3."
	})
	s.waitIdle(t, ctx, 20*time.Second)
	recs, err := s.opportunities(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0]["Amount"] != 1003.0 || recs[0]["Description"] != "Update 3 of 3." {
		t.Errorf("after every notification was handled the opportunities are %v, want one with the latest state (1003, Update 3 of 3.) %s", recs, s.logs())
	}
}

// testDroppedWebhookHealedBySweep: every notification of a new referral is
// lost; the reconciliation sweep finds it anyway.
func (s *system) testDroppedWebhookHealedBySweep(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	fault, err := s.pc.AddWebhookFault(ctx, stack.WebhookFault{Kind: "drop"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.pc.ClearWebhookFaults(context.Background()) })
	fields := newReferral("E2E dropped webhook: Woodgrove branch", "Woodgrove Dropped Bank")
	fields["details"].(map[string]any)["dealValue"] = 31337.0
	id := s.createReferral(t, ctx, fields)
	if err := s.pc.DeleteWebhookFault(ctx, fault); err != nil {
		t.Fatal(err)
	}
	ds, err := s.pc.DeliveriesFor(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) == 0 {
		t.Fatalf("no delivery log entry for referral %s", id)
	}
	for _, d := range ds {
		if d.Status != "dropped" {
			t.Fatalf("delivery %s of %s is %s, want dropped", d.ID, d.EventName, d.Status)
		}
	}

	s.waitOpportunity(t, ctx, id, 30*time.Second, func(o map[string]any) bool {
		return o["Amount"] == 31337.0 && o["StageName"] == "On Hold"
	})
	for _, r := range s.rec.Recorded() {
		if strings.Contains(string(r.Body), id) {
			t.Errorf("ingress received a notification for the dropped referral %s: %s", id, r.Body)
		}
	}
	rows, err := s.db.Rows(ctx, "SELECT name, last_outcome, last_published FROM partnercenter_adapter.cursors WHERE name = 'sweep'")
	if err != nil || len(rows) != 1 {
		t.Errorf("the adapter recorded no sweep run: %v %v", rows, err)
	}
}
