package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cosell/cosell/e2e/stack"
)

// pollInterval is the salesforce-adapter's SF_POLL_INTERVAL in the
// outbound stacks: a seller's save reaches the mapper within about one.
const pollInterval = time.Second

// TestOutbound covers issue 4's "Done when" on one stack (Salesforce polled
// every second, no reconciliation sweep during the test so Partner Center's
// counters only move for the services' outbound work): sellers opting
// opportunities in, their changes, validation, the lifecycle both ways,
// Microsoft's seller, concurrent edits, echoes and repeated saves.
func TestOutbound(t *testing.T) {
	t.Parallel()
	sys := startOutboundSystem(t, "outbound")
	t.Run("OptInCreatesReferral", sys.testOptInCreatesReferral)
	t.Run("CoSellOptInWithHelp", sys.testCoSellOptIn)
	t.Run("SellerChangesDealValueAndCloseDate", sys.testSellerChangesDeal)
	t.Run("ValidationFailureSendsNothing", sys.testValidationFailure)
	t.Run("AcceptAndDeclineFromSalesforce", sys.testAcceptAndDecline)
	t.Run("WonAndLostBothWays", sys.testWonAndLost)
	t.Run("Expiry", sys.testExpiry)
	t.Run("MicrosoftSellerUpdateAndAccept", sys.testMicrosoftSeller)
	t.Run("SimultaneousEditsConverge", sys.testConvergence)
	t.Run("OwnWritesNeverEcho", sys.testNoEcho)
	t.Run("RepeatedSavesCreateOneReferral", sys.testRepeatedSaves)
}

// TestOutboundCrash kills the partnercenter-adapter (kill -9) the moment
// Partner Center has created an opted-in opportunity's referral, before the
// adapter can record or publish the result; after the restart and the
// command's redelivery there is still exactly one referral. It has a stack
// of its own (the redelivery waits out the adapter's one-minute ack wait)
// and runs in parallel with TestOutbound.
func TestOutboundCrash(t *testing.T) {
	t.Parallel()
	s := startOutboundSystem(t, "outbound-crash")
	ctx := testCtx(t, 3*time.Minute)
	oppID, _ := s.optIn(t, ctx, "E2E crash: Litware kiosks", "Litware Crash Kiosks Inc", nil, nil)

	// Watch Partner Center closely; kill the adapter once the referral exists.
	adapter := s.Process("partnercenter-adapter-1")
	var created map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for created == nil {
		refs, err := s.pc.ReferralsFor(ctx, oppID)
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) > 0 {
			created = refs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s no referral for opted-in opportunity %s: %s %s", oppID, s.outboundState(ctx, oppID), s.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	adapter.Kill()
	rows, _ := s.db.Rows(ctx, "SELECT command_id, outcome, completed_at FROM partnercenter_adapter.commands WHERE opportunity_id = $1", oppID)
	t.Logf("killed %s once referral %s existed; the adapter's command record then: %v", adapter.Name, created["id"], rows)
	if err := s.Restart(ctx, adapter.Name); err != nil {
		t.Fatalf("restart %s: %v %s", adapter.Name, err, s.logs())
	}

	refID := str(created["id"])
	s.eventually(t, 100*time.Second, "the referral's id written back to the opportunity after the restart", func() (bool, string) {
		opp, err := s.sf.Record(ctx, "Opportunity", oppID)
		if err != nil {
			return false, err.Error()
		}
		return str(opp["Referral_Identifier__c"]) == refID, s.outboundState(ctx, oppID)
	})
	// Whatever the killed adapter had not acknowledged comes back after its
	// ack wait; judge only a settled system.
	s.waitIdle(t, ctx, 90*time.Second)
	refs, err := s.pc.ReferralsFor(ctx, oppID)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 {
		t.Errorf("opportunity %s has %d referrals after the crash and redelivery, want 1: %v %s", oppID, len(refs), ids(refs), s.logs())
	}
}

// startOutboundSystem starts a stack with Salesforce polled every
// pollInterval and a reconciliation sweep that never runs during the test.
func startOutboundSystem(t *testing.T, name string) *system {
	t.Helper()
	sys := &system{name: name, runDir: filepath.Join(runRoot, name)}
	cfg := stack.Config{
		BinDir: binDir, RunDir: sys.runDir, DatabaseURL: serverDSN,
		PCSweepInterval: 10 * time.Minute,
		ExtraEnv:        map[string]map[string]string{},
	}
	for _, svc := range stack.Services() {
		cfg.ExtraEnv[svc] = map[string]string{"SHUTDOWN_TIMEOUT": "10s"}
	}
	cfg.ExtraEnv["salesforce-adapter"]["SF_POLL_ENABLED"] = "true"
	cfg.ExtraEnv["salesforce-adapter"]["SF_POLL_INTERVAL"] = pollInterval.String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start the %s stack: %v (service logs in %s)", name, err, sys.runDir)
	}
	sys.Stack = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop the %s stack: %v (service logs in %s)", name, err, sys.runDir)
		}
	})
	sys.db, err = stack.OpenDB(ctx, s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.db.Close() })
	sys.pc, sys.sf = stack.NewPartnerCenter(s.PCURL), stack.NewSalesforce(s.SFURL)
	if err := sys.pc.WaitRegistered(ctx, s.WebhookURL); err != nil {
		t.Fatalf("%v %s", err, sys.logs())
	}
	return sys
}

// ---------------------------------------------------------------- 1

// testOptInCreatesReferral: a seller ticks "Sync with Partner Center" on a
// partner-led opportunity → one referral with externalReferenceId = the
// opportunity id and the opportunity's fields; Referral ID, link and an
// Audit line are written back.
func (s *system) testOptInCreatesReferral(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	closeDate := time.Now().UTC().Add(70 * 24 * time.Hour).Format(time.DateOnly)
	oppID, _ := s.optIn(t, ctx, "E2E opt-in: Contoso landing zone", "Contoso Opt-In Outbound Inc", map[string]any{
		"Amount": 55000.0, "CurrencyIsoCode": "EUR", "CloseDate": closeDate,
		"Description": "Contoso wants an Azure landing zone before the audit.",
	}, nil)
	ref := s.waitReferralFor(t, ctx, oppID, 20*time.Second, nil)

	want := map[string]any{
		"name":                               "E2E opt-in: Contoso landing zone",
		"externalReferenceId":                oppID,
		"type":                               "Independent", // no help requested: partner-led
		"details.dealValue":                  55000.0,
		"details.currency":                   "EUR",
		"details.notes":                      "Contoso wants an Azure landing zone before the audit.",
		"customerProfile.name":               "Contoso Opt-In Outbound Inc",
		"customerProfile.address.country":    "US",
		"customerProfile.address.postalCode": "98052",
		"customerProfile.address.city":       "Redmond",
	}
	for _, k := range sortedKeys(want) {
		if got := at(ref, k); got != want[k] {
			t.Errorf("referral.%s = %#v, want %#v", k, got, want[k])
		}
	}
	if d := dateOf(at(ref, "details.closingDateTime")); d != closeDate {
		t.Errorf("referral.details.closingDateTime = %v (date %s), want the Close Date %s", at(ref, "details.closingDateTime"), d, closeDate)
	}

	refID := str(ref["id"])
	opp := s.waitOpp(t, ctx, oppID, 20*time.Second, "Referral ID, link and Audit written back", func(o map[string]any) bool {
		return str(o["Referral_Identifier__c"]) == refID && str(o["Referral_Link__c"]) != "" && str(o["Audit__c"]) != ""
	})
	if link := "https://partner.microsoft.com/dashboard/referrals/v2/opportunities/" + refID; opp["Referral_Link__c"] != link {
		t.Errorf("Opportunity.Referral_Link__c = %v, want %s", opp["Referral_Link__c"], link)
	}
	if audit := str(opp["Audit__c"]); !strings.Contains(strings.ToLower(audit), "referral") {
		t.Errorf("Opportunity.Audit__c = %q: want a line saying the referral was created", audit)
	}
	if opp["Name"] != "E2E opt-in: Contoso landing zone" {
		t.Errorf("Opportunity.Name = %v: the name marker is off by default, want the name unchanged", opp["Name"])
	}
	s.settle(t, ctx)
	if refs, err := s.pc.ReferralsFor(ctx, oppID); err != nil || len(refs) != 1 {
		t.Errorf("opportunity %s has %d referrals (%v), want 1: %v %s", oppID, len(refs), err, ids(refs), s.logs())
	}
}

// testCoSellOptIn: an opportunity asking for Microsoft's help, with a
// primary contact and a Microsoft solution → a co-sell (Shared) referral
// with the assistance code, the solution and the contact.
func (s *system) testCoSellOptIn(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	// Children first, opted in last: adding a contact role or a solution
	// does not change the opportunity's SystemModstamp.
	oppID, acctID := s.optIn(t, ctx, "E2E co-sell: Fabrikam analytics", "Fabrikam Co-Sell Outbound GmbH", map[string]any{
		"How_can_Microsoft_help__c":   "Proof of concept or demo",
		"Sync_with_Partner_Center__c": false,
	}, map[string]any{"BillingCountry": "DE", "BillingPostalCode": "80331", "BillingCity": "Munich", "BillingStreet": "Marienplatz 1"})
	s.addContactAndSolution(t, ctx, oppID, acctID, "SOL-6115380-IPC")
	if _, err := s.sf.UpdateRecord(ctx, "Opportunity", oppID, map[string]any{"Sync_with_Partner_Center__c": true}); err != nil {
		t.Fatalf("seller opts in: %v", err)
	}
	ref := s.waitReferralFor(t, ctx, oppID, 20*time.Second, nil)
	want := map[string]any{
		"type":                                "Shared",
		"inviteContext.assistanceRequestCode": "ProofOfConceptOrDemo",
		"customerProfile.address.country":     "DE",
	}
	for _, k := range sortedKeys(want) {
		if got := at(ref, k); got != want[k] {
			t.Errorf("referral.%s = %#v, want %#v", k, got, want[k])
		}
	}
	sols, _ := at(ref, "details.requirements.solutions").([]any)
	if !slices.ContainsFunc(sols, func(v any) bool { m, _ := v.(map[string]any); return m["id"] == "SOL-6115380-IPC" }) {
		t.Errorf("referral.details.requirements.solutions = %v, want SOL-6115380-IPC", sols)
	}
	team, _ := at(ref, "customerProfile.team").([]any)
	if first, _ := firstItem(team); at(first, "email") != "ines.buyer@fabrikam.example" {
		t.Errorf("referral.customerProfile.team = %v, want the primary contact ines.buyer@fabrikam.example", team)
	}
	s.waitOpp(t, ctx, oppID, 20*time.Second, "the Referral ID written back", func(o map[string]any) bool {
		return str(o["Referral_Identifier__c"]) == str(ref["id"])
	})
}

// ---------------------------------------------------------------- 2

// testSellerChangesDeal: the seller changes Amount and Close Date → the
// referral is patched (dealValue, closingDateTime).
func (s *system) testSellerChangesDeal(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	oppID, _ := s.optIn(t, ctx, "E2E change: Northwind stores", "Northwind Change Outbound Ltd", nil, nil)
	ref := s.waitReferralFor(t, ctx, oppID, 20*time.Second, nil)
	s.waitOpp(t, ctx, oppID, 20*time.Second, "the Referral ID written back", func(o map[string]any) bool {
		return str(o["Referral_Identifier__c"]) == str(ref["id"])
	})

	closeDate := time.Now().UTC().Add(120 * 24 * time.Hour).Format(time.DateOnly)
	if _, err := s.sf.UpdateRecord(ctx, "Opportunity", oppID, map[string]any{"Amount": 61000.5, "CloseDate": closeDate}); err != nil {
		t.Fatalf("seller changes Amount and Close Date: %v", err)
	}
	s.waitReferralFor(t, ctx, oppID, 20*time.Second, func(r map[string]any) bool {
		return at(r, "details.dealValue") == 61000.5 && dateOf(at(r, "details.closingDateTime")) == closeDate
	})
}

// ---------------------------------------------------------------- 3

// testValidationFailure: opportunities Partner Center would refuse (a
// billing country that is not an ISO 3166 code; help requested without a
// solution or a contact) → a plain-words Audit__c entry and an audit-log
// row, and no call to Partner Center at all.
func (s *system) testValidationFailure(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	s.settle(t, ctx) // nothing of the earlier subtests still on its way
	before, err := s.pc.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}

	country, _ := s.optIn(t, ctx, "E2E invalid: Wingtip country", "Wingtip Invalid Country AG", nil,
		map[string]any{"BillingCountry": "Germany", "BillingPostalCode": "10115", "BillingCity": "Berlin"})
	help, _ := s.optIn(t, ctx, "E2E invalid: Wingtip help", "Wingtip Invalid Help Inc",
		map[string]any{"How_can_Microsoft_help__c": "Customer technical architecture"}, nil)

	cases := []struct {
		oppID string
		why   string
		words []string // the Audit entry must say these (case-insensitive)
	}{
		{country, "billing country Germany", []string{"germany", "country"}},
		{help, "help requested without a solution or a contact", []string{"solution", "contact"}},
	}
	for _, c := range cases {
		opp := s.waitOpp(t, ctx, c.oppID, 20*time.Second, "an Audit__c entry explaining the "+c.why, func(o map[string]any) bool {
			return str(o["Audit__c"]) != ""
		})
		audit := strings.ToLower(str(opp["Audit__c"]))
		for _, w := range c.words {
			if !strings.Contains(audit, w) {
				t.Errorf("Audit__c of the opportunity with %s = %q: want it to mention %q", c.why, opp["Audit__c"], w)
			}
		}
		if str(opp["Referral_Identifier__c"]) != "" {
			t.Errorf("the opportunity with %s got Referral ID %v", c.why, opp["Referral_Identifier__c"])
		}
		rows, err := s.db.Rows(ctx, "SELECT kind, message FROM mapper.audit_events WHERE opportunity_id = $1 ORDER BY id", c.oppID)
		if err != nil || len(rows) == 0 {
			t.Errorf("the mapper's audit log has no entry for the opportunity with %s (%v) %s", c.why, err, s.logs())
		}
	}

	// Let the write-backs come round through the poller; nothing may reach
	// Partner Center, not even the duplicate lookup.
	s.settle(t, ctx)
	after, err := s.pc.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"referrals.create", "referrals.list", "referrals.patch", "referrals.put"} {
		if after[k] != before[k] {
			t.Errorf("Partner Center %s calls went from %d to %d for opportunities that fail validation, want no call %s", k, before[k], after[k], s.logs())
		}
	}
	for _, id := range []string{country, help} {
		if refs, err := s.pc.ReferralsFor(ctx, id); err != nil || len(refs) != 0 {
			t.Errorf("opportunity %s that fails validation has referrals %v (%v)", id, ids(refs), err)
		}
	}
}

// ---------------------------------------------------------------- 4

// testAcceptAndDecline: inbound referrals wait in On Hold; moving one
// opportunity to Qualification accepts its referral, moving another to
// Declined with a reason declines it.
func (s *system) testAcceptAndDecline(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	acceptID := s.createReferral(t, ctx, newReferral("E2E accept: Proseware portal", "Proseware Accept Inc"))
	declineID := s.createReferral(t, ctx, newReferral("E2E decline: Adventure Works bikes", "Adventure Works Decline Ltd"))
	onHold := func(o map[string]any) bool { return o["StageName"] == "On Hold" }
	accOpp := s.waitOpportunity(t, ctx, acceptID, 20*time.Second, onHold)
	decOpp := s.waitOpportunity(t, ctx, declineID, 20*time.Second, onHold)

	if _, err := s.sf.UpdateRecord(ctx, "Opportunity", str(accOpp["Id"]), map[string]any{"StageName": "Qualification"}); err != nil {
		t.Fatalf("seller accepts: %v", err)
	}
	const reason = "The customer chose another partner."
	if _, err := s.sf.UpdateRecord(ctx, "Opportunity", str(decOpp["Id"]), map[string]any{"StageName": "Declined", "Decline_Reason__c": reason}); err != nil {
		t.Fatalf("seller declines: %v", err)
	}
	s.waitReferral(t, ctx, acceptID, 20*time.Second, "Active/Accepted", func(r map[string]any) bool {
		return r["status"] == "Active" && r["substatus"] == "Accepted"
	})
	s.waitReferral(t, ctx, declineID, 20*time.Second, "Closed/Declined with the seller's reason", func(r map[string]any) bool {
		return r["status"] == "Closed" && r["substatus"] == "Declined" && r["statusReason"] == reason
	})
	// The referrals' new states come back inbound; the stages stay.
	s.settle(t, ctx)
	for id, stage := range map[string]string{str(accOpp["Id"]): "Qualification", str(decOpp["Id"]): "Declined"} {
		if o, err := s.sf.Record(ctx, "Opportunity", id); err != nil || o["StageName"] != stage {
			t.Errorf("after the sync settled opportunity %s is in stage %v (%v), want %s %s", id, o["StageName"], err, stage, s.logs())
		}
	}
}

// ---------------------------------------------------------------- 5

// testWonAndLost: the seller closes an opportunity as won → its referral
// is Closed/Won; a Microsoft seller closes a referral as lost → its
// opportunity is Closed Lost.
func (s *system) testWonAndLost(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	wonID, _ := s.optIn(t, ctx, "E2E won: Tailspin drones", "Tailspin Won Outbound Inc", nil, nil)
	lostID, _ := s.optIn(t, ctx, "E2E lost: Woodgrove branches", "Woodgrove Lost Outbound Bank", nil, nil)
	wonRef := s.waitReferralFor(t, ctx, wonID, 20*time.Second, nil)
	lostRef := s.waitReferralFor(t, ctx, lostID, 20*time.Second, nil)
	for oppID, ref := range map[string]map[string]any{wonID: wonRef, lostID: lostRef} {
		s.waitOpp(t, ctx, oppID, 20*time.Second, "the Referral ID written back", func(o map[string]any) bool {
			return str(o["Referral_Identifier__c"]) == str(ref["id"])
		})
	}

	if _, err := s.sf.UpdateRecord(ctx, "Opportunity", wonID, map[string]any{"StageName": "Closed Won"}); err != nil {
		t.Fatalf("seller closes the opportunity as won: %v", err)
	}
	if _, err := s.pc.UpdateAsMicrosoft(ctx, str(lostRef["id"]), map[string]any{"status": "Closed", "substatus": "Lost"}); err != nil {
		t.Fatalf("Microsoft seller closes the referral as lost: %v", err)
	}
	s.waitReferral(t, ctx, str(wonRef["id"]), 20*time.Second, "Closed/Won", func(r map[string]any) bool {
		return r["status"] == "Closed" && r["substatus"] == "Won"
	})
	s.waitOpp(t, ctx, lostID, 20*time.Second, "stage Closed Lost", func(o map[string]any) bool {
		return o["StageName"] == "Closed Lost"
	})
	s.settle(t, ctx)
	if o, err := s.sf.Record(ctx, "Opportunity", wonID); err != nil || o["StageName"] != "Closed Won" {
		t.Errorf("after the sync settled the won opportunity is in stage %v (%v), want Closed Won %s", o["StageName"], err, s.logs())
	}
}

// ---------------------------------------------------------------- 6

// testExpiry: Partner Center expires an unanswered inbound referral → the
// opportunity is Closed Lost and its Audit says it expired.
func (s *system) testExpiry(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	id := s.createReferral(t, ctx, newReferral("E2E expiry: Litware archive", "Litware Expiry Inc"))
	opp := s.waitOpportunity(t, ctx, id, 20*time.Second, func(o map[string]any) bool { return o["StageName"] == "On Hold" })
	if _, err := s.pc.Expire(ctx, id); err != nil {
		t.Fatalf("Partner Center expires the referral: %v", err)
	}
	s.waitOpp(t, ctx, str(opp["Id"]), 20*time.Second, "stage Closed Lost and an Audit__c line about the expiry", func(o map[string]any) bool {
		return o["StageName"] == "Closed Lost" && strings.Contains(strings.ToLower(str(o["Audit__c"])), "expire")
	})
}

// ---------------------------------------------------------------- 7

// testMicrosoftSeller: the Microsoft seller edits Microsoft's referral of
// the engagement (related-referral-updated) → the opportunity follows; then
// Microsoft accepts the co-sell → Microsoft_CRM_Identifier__c.
func (s *system) testMicrosoftSeller(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	partner, microsoft, err := s.pc.CreateInboundPair(ctx, newReferral("E2E Microsoft seller: Contoso data", "Contoso Microsoft Seller Inc"))
	if err != nil {
		t.Fatalf("Microsoft seller creates a referral: %v", err)
	}
	id := str(partner["id"])
	opp := s.waitOpportunity(t, ctx, id, 20*time.Second, nil)
	oppID := str(opp["Id"])

	closing := time.Now().UTC().Add(100 * 24 * time.Hour).Truncate(24 * time.Hour).Add(12 * time.Hour)
	if _, err := s.pc.UpdateAsMicrosoft(ctx, str(microsoft["id"]), map[string]any{"details": map[string]any{
		"dealValue": 77777.0, "closingDateTime": closing.Format(time.RFC3339), "notes": "Microsoft seller: the customer adds Fabric.",
	}}); err != nil {
		t.Fatalf("Microsoft seller edits Microsoft's referral %s: %v", microsoft["id"], err)
	}
	msID := str(microsoft["id"])
	s.eventually(t, 20*time.Second, "opportunity "+oppID+" to take the Microsoft seller's deal value, close date and notes", func() (bool, string) {
		o, err := s.sf.Record(ctx, "Opportunity", oppID)
		if err != nil {
			return false, err.Error()
		}
		ok := o["Amount"] == 77777.0 && o["CloseDate"] == closing.Format(time.DateOnly) && o["Description"] == "Microsoft seller: the customer adds Fabric."
		return ok, s.outboundState(ctx, oppID) + "; Microsoft's referral " + msID + ": " + s.auditOf(ctx, msID)
	})

	const msx = "7-E2EACCEPT1"
	if _, err := s.pc.Accept(ctx, id, msx); err != nil {
		t.Fatalf("Microsoft accepts the co-sell: %v", err)
	}
	s.waitOpp(t, ctx, oppID, 20*time.Second, "Microsoft_CRM_Identifier__c = "+msx, func(o map[string]any) bool {
		return o["Microsoft_CRM_Identifier__c"] == msx
	})
}

// ---------------------------------------------------------------- 8

// testConvergence: the seller and the Microsoft seller change the same
// deal at the same moment, in both orders. With the default ownership,
// Amount/dealValue goes to the later change by source time (SystemModstamp
// against updatedDateTime; ties to Salesforce) and the name is
// Salesforce's; both sides end equal and stay so.
func (s *system) testConvergence(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	oppID, _ := s.optIn(t, ctx, "E2E converge: Fourth Coffee", "Fourth Coffee Converge Inc", nil, nil)
	ref := s.waitReferralFor(t, ctx, oppID, 20*time.Second, nil)
	refID := str(ref["id"])
	s.waitOpp(t, ctx, oppID, 20*time.Second, "the Referral ID written back", func(o map[string]any) bool {
		return str(o["Referral_Identifier__c"]) == refID
	})
	s.settle(t, ctx)

	for round, sellerFirst := range []bool{true, false} {
		sfAmount, pcAmount := 81000.0+float64(10*round), 82000.0+float64(10*round)
		sfName := fmt.Sprintf("E2E converge: seller's name %d", round+1)
		pcName := fmt.Sprintf("E2E converge: Microsoft's name %d", round+1)
		var sfAt, pcAt time.Time
		var sfErr, pcErr error
		seller := func() {
			var o map[string]any
			if o, sfErr = s.sf.UpdateRecord(ctx, "Opportunity", oppID, map[string]any{"Amount": sfAmount, "Name": sfName}); sfErr == nil {
				sfAt, sfErr = stack.ParseSFTime(o["SystemModstamp"])
			}
		}
		msft := func() {
			var r map[string]any
			if r, pcErr = s.pc.UpdateAsMicrosoft(ctx, refID, map[string]any{"name": pcName, "details": map[string]any{"dealValue": pcAmount}}); pcErr == nil {
				pcAt, pcErr = time.Parse(time.RFC3339Nano, str(r["updatedDateTime"]))
			}
		}
		// Both at once; the round decides which request leaves first.
		var wg sync.WaitGroup
		first, second := seller, msft
		if !sellerFirst {
			first, second = msft, seller
		}
		wg.Add(1)
		go func() { defer wg.Done(); first() }()
		time.Sleep(time.Millisecond)
		second()
		wg.Wait()
		if sfErr != nil || pcErr != nil {
			t.Fatalf("round %d: simultaneous edits: seller %v, Microsoft seller %v", round+1, sfErr, pcErr)
		}
		// Salesforce keeps milliseconds; compare at that precision and let a
		// tie within it go either way.
		want := []float64{sfAmount, pcAmount}
		switch d := pcAt.Sub(sfAt); {
		case d >= time.Millisecond:
			want = []float64{pcAmount}
		case d < 0:
			want = []float64{sfAmount}
		}
		t.Logf("round %d: seller's save at %s (Amount %v), Microsoft seller's at %s (dealValue %v): want %v", round+1,
			sfAt.Format(time.RFC3339Nano), sfAmount, pcAt.Format(time.RFC3339Nano), pcAmount, want)

		check := func() (bool, string) {
			o, err := s.sf.Record(ctx, "Opportunity", oppID)
			if err != nil {
				return false, err.Error()
			}
			r, err := s.pc.Referral(ctx, refID)
			if err != nil || r == nil {
				return false, fmt.Sprint("read referral: ", err)
			}
			amount, deal := o["Amount"], at(r, "details.dealValue")
			state := fmt.Sprintf("opportunity Amount %v Name %q; referral dealValue %v name %q", amount, o["Name"], deal, r["name"])
			a, _ := amount.(float64)
			ok := amount == deal && slices.Contains(want, a) && o["Name"] == sfName && r["name"] == sfName
			if !ok {
				state += "; mapper audit of the referral: " + s.auditOf(ctx, refID)
			}
			return ok, state
		}
		s.eventually(t, 30*time.Second, fmt.Sprintf("round %d: both sides to agree on Amount (%v) and the seller's name", round+1, want), check)
		s.settle(t, ctx)
		if ok, state := check(); !ok {
			t.Errorf("round %d: the sides agreed, then drifted apart after the sync settled: %s %s", round+1, state, s.logs())
		}
	}
}

// ---------------------------------------------------------------- 9

// testNoEcho: once a sync has settled, our own writes never come back as
// changes: a seller's change costs exactly one Partner Center PATCH, a
// Microsoft seller's change none, and afterwards neither Partner Center
// nor Salesforce sees another write over several poll intervals.
func (s *system) testNoEcho(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	oppID, _ := s.optIn(t, ctx, "E2E echo: Alpine Ski House", "Alpine Ski House Echo Inc", nil, nil)
	ref := s.waitReferralFor(t, ctx, oppID, 20*time.Second, nil)
	refID := str(ref["id"])
	s.waitOpp(t, ctx, oppID, 20*time.Second, "the Referral ID written back", func(o map[string]any) bool {
		return str(o["Referral_Identifier__c"]) == refID
	})
	s.settle(t, ctx)
	s.assertQuiet(t, ctx, "after the referral was created and written back")

	// The seller's change: one PATCH, and it does not come back.
	pc0, err := s.pc.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.sf.UpdateRecord(ctx, "Opportunity", oppID, map[string]any{"Amount": 43210.0}); err != nil {
		t.Fatal(err)
	}
	s.waitReferral(t, ctx, refID, 20*time.Second, "dealValue 43210", func(r map[string]any) bool { return at(r, "details.dealValue") == 43210.0 })
	s.settle(t, ctx)
	pc1, err := s.pc.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := pc1["referrals.patch"] - pc0["referrals.patch"]; d != 1 {
		t.Errorf("one seller change cost %d Partner Center PATCH calls, want 1 %s", d, s.logs())
	}
	if d := pc1["referrals.create"] + pc1["referrals.put"] - pc0["referrals.create"] - pc0["referrals.put"]; d != 0 {
		t.Errorf("one seller change caused %d Partner Center create/PUT calls, want 0 %s", d, s.logs())
	}
	s.assertQuiet(t, ctx, "after the seller's change was synced")

	// The Microsoft seller's change: written to Salesforce, never sent back.
	if _, err := s.pc.UpdateAsMicrosoft(ctx, refID, map[string]any{"details": map[string]any{"dealValue": 54321.0}}); err != nil {
		t.Fatal(err)
	}
	s.waitOpp(t, ctx, oppID, 20*time.Second, "Amount 54321", func(o map[string]any) bool { return o["Amount"] == 54321.0 })
	s.settle(t, ctx)
	pc2, err := s.pc.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := stack.SumCounters(pc2, stack.PCWriteEndpoints...) - stack.SumCounters(pc1, stack.PCWriteEndpoints...); d != 0 {
		t.Errorf("the Microsoft seller's change came back to Partner Center as %d writes (create/patch/put), want 0 %s", d, s.logs())
	}
	s.assertQuiet(t, ctx, "after the Microsoft seller's change was synced")
}

// ---------------------------------------------------------------- 10

// testRepeatedSaves: the seller saves an opted-in opportunity several
// times in quick succession while its referral is being created → exactly
// one referral, holding the last save.
func (s *system) testRepeatedSaves(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	oppID, _ := s.optIn(t, ctx, "E2E repeated saves: Coho Winery", "Coho Winery Repeat Inc", nil, nil)
	const saves = 5
	for i := 1; i <= saves; i++ {
		if _, err := s.sf.UpdateRecord(ctx, "Opportunity", oppID, map[string]any{
			"Sync_with_Partner_Center__c": true, "Description": fmt.Sprintf("Save %d of %d.", i, saves),
		}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	ref := s.waitReferralFor(t, ctx, oppID, 20*time.Second, func(r map[string]any) bool {
		return at(r, "details.notes") == fmt.Sprintf("Save %d of %d.", saves, saves)
	})
	s.waitOpp(t, ctx, oppID, 20*time.Second, "the Referral ID written back", func(o map[string]any) bool {
		return str(o["Referral_Identifier__c"]) == str(ref["id"])
	})
	s.settle(t, ctx)
	refs, err := s.pc.ReferralsFor(ctx, oppID)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 {
		t.Errorf("opportunity %s saved %d times has %d referrals, want 1: %v %s", oppID, saves, len(refs), ids(refs), s.logs())
	}
}

// ---------------------------------------------------------------- helpers

// optIn plays a seller creating a customer account and an opportunity
// with "Sync with Partner Center" ticked (unless opp says otherwise); opp
// and acct override the defaults. It returns the opportunity and account ids.
func (s *system) optIn(t *testing.T, ctx context.Context, name, customer string, opp, acct map[string]any) (string, string) {
	t.Helper()
	a := map[string]any{
		"Name": customer, "BillingCountry": "US", "BillingPostalCode": "98052", "BillingCity": "Redmond", "BillingStreet": "1 Microsoft Way",
	}
	for k, v := range acct {
		a[k] = v
	}
	account, err := s.sf.CreateRecord(ctx, "Account", a)
	if err != nil {
		t.Fatalf("seller creates account %s: %v", customer, err)
	}
	o := map[string]any{
		"Name":                        name,
		"AccountId":                   account["Id"],
		"Amount":                      25000.0,
		"CurrencyIsoCode":             "USD",
		"CloseDate":                   time.Now().UTC().Add(60 * 24 * time.Hour).Format(time.DateOnly),
		"StageName":                   "Qualification",
		"Description":                 "The customer wants an Azure landing zone.",
		"Sync_with_Partner_Center__c": true,
	}
	for k, v := range opp {
		o[k] = v
	}
	rec, err := s.sf.CreateRecord(ctx, "Opportunity", o)
	if err != nil {
		t.Fatalf("seller creates opportunity %s: %v", name, err)
	}
	return str(rec["Id"]), str(account["Id"])
}

// addContactAndSolution gives an opportunity a primary contact and a
// Microsoft solution.
func (s *system) addContactAndSolution(t *testing.T, ctx context.Context, oppID, acctID, solution string) {
	t.Helper()
	contact, err := s.sf.CreateRecord(ctx, "Contact", map[string]any{
		"AccountId": acctID, "FirstName": "Ines", "LastName": "Buyer", "Email": "ines.buyer@fabrikam.example", "Phone": "+49 89 5550100",
	})
	if err != nil {
		t.Fatalf("create contact: %v", err)
	}
	if _, err := s.sf.CreateRecord(ctx, "OpportunityContactRole", map[string]any{
		"OpportunityId": oppID, "ContactId": contact["Id"], "Role": "Decision Maker", "IsPrimary": true,
	}); err != nil {
		t.Fatalf("create contact role: %v", err)
	}
	if _, err := s.sf.CreateRecord(ctx, "Microsoft_Solution__c", map[string]any{
		"Opportunity__c": oppID, "Solution_Identifier__c": solution,
	}); err != nil {
		t.Fatalf("create Microsoft solution: %v", err)
	}
}

// waitReferralFor waits until the opportunity has a referral (by
// externalReferenceId) for which match (nil = any) holds, failing at once on
// a second referral, and returns it.
func (s *system) waitReferralFor(t *testing.T, ctx context.Context, oppID string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	s.eventually(t, timeout, "the referral of opportunity "+oppID, func() (bool, string) {
		refs, err := s.pc.ReferralsFor(ctx, oppID)
		if err != nil {
			return false, err.Error()
		}
		if len(refs) > 1 {
			t.Fatalf("opportunity %s has %d referrals, want 1: %v %s", oppID, len(refs), ids(refs), s.logs())
		}
		if len(refs) == 0 {
			return false, "no referral yet; " + s.outboundState(ctx, oppID)
		}
		got = refs[0]
		if match != nil && !match(got) {
			return false, fmt.Sprintf("referral is %s; %s", brief(got), s.outboundState(ctx, oppID))
		}
		return true, ""
	})
	return got
}

// waitReferral waits until referral id satisfies match.
func (s *system) waitReferral(t *testing.T, ctx context.Context, id string, timeout time.Duration, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	s.eventually(t, timeout, "referral "+id+": "+what, func() (bool, string) {
		r, err := s.pc.Referral(ctx, id)
		if err != nil || r == nil {
			return false, fmt.Sprint("read referral: ", err)
		}
		got = r
		return match(r), fmt.Sprintf("referral is %s; %s", brief(r), s.linkState(ctx, id))
	})
	return got
}

// waitOpp waits until the opportunity (read as the seller sees it)
// satisfies match.
func (s *system) waitOpp(t *testing.T, ctx context.Context, oppID string, timeout time.Duration, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	s.eventually(t, timeout, "opportunity "+oppID+": "+what, func() (bool, string) {
		o, err := s.sf.Record(ctx, "Opportunity", oppID)
		if err != nil {
			return false, err.Error()
		}
		got = o
		return match(o), s.outboundState(ctx, oppID)
	})
	return got
}

// outboundState describes an opportunity's sync for failure messages: the
// opportunity's sync fields, its referrals and the mapper's last audit entry.
func (s *system) outboundState(ctx context.Context, oppID string) string {
	var b strings.Builder
	if o, err := s.sf.Record(ctx, "Opportunity", oppID); err != nil {
		fmt.Fprintf(&b, "read opportunity: %v", err)
	} else {
		audit := str(o["Audit__c"])
		if len(audit) > 300 {
			audit = audit[:300] + "…"
		}
		fmt.Fprintf(&b, "opportunity Stage %v Amount %v CloseDate %v Referral ID %q Microsoft CRM id %v Audit__c %q",
			o["StageName"], o["Amount"], o["CloseDate"], o["Referral_Identifier__c"], o["Microsoft_CRM_Identifier__c"], audit)
	}
	if refs, err := s.pc.ReferralsFor(ctx, oppID); err == nil {
		for _, r := range refs {
			fmt.Fprintf(&b, "; referral %s", brief(r))
		}
	}
	if rows, err := s.db.Rows(ctx, "SELECT kind, message FROM mapper.audit_events WHERE opportunity_id = $1 ORDER BY id DESC LIMIT 1", oppID); err != nil {
		fmt.Fprintf(&b, "; mapper audit: %v", err)
	} else if len(rows) == 0 {
		b.WriteString("; the mapper's audit log has nothing for it")
	} else {
		fmt.Fprintf(&b, "; last mapper audit %v: %v", rows[0]["kind"], rows[0]["message"])
	}
	return b.String()
}

// auditOf lists the mapper's last audit entries of a referral, for failure messages.
func (s *system) auditOf(ctx context.Context, referralID string) string {
	audit, err := s.db.AuditEvents(ctx, referralID)
	if err != nil {
		return err.Error()
	}
	if len(audit) == 0 {
		return "no mapper audit entry"
	}
	var out []string
	for _, a := range audit[max(0, len(audit)-6):] {
		out = append(out, a.Kind+": "+a.Message)
	}
	return strings.Join(out, " | ")
}

// settle waits until the pipeline is idle, the poller has had time to
// read back our last writes to Salesforce, and the pipeline is idle again.
func (s *system) settle(t *testing.T, ctx context.Context) {
	t.Helper()
	s.waitIdle(t, ctx, 30*time.Second)
	time.Sleep(2 * pollInterval)
	s.waitIdle(t, ctx, 30*time.Second)
}

// assertQuiet checks that nobody writes to Partner Center or Salesforce
// over three poll intervals: a settled sync stays settled.
func (s *system) assertQuiet(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	pc0, err1 := s.pc.Counters(ctx)
	sf0, err2 := s.sf.SFCalls(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	time.Sleep(3 * pollInterval)
	s.waitIdle(t, ctx, 30*time.Second)
	pc1, err1 := s.pc.Counters(ctx)
	sf1, err2 := s.sf.SFCalls(ctx)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	for _, k := range stack.PCWriteEndpoints {
		if pc1[k] != pc0[k] {
			t.Errorf("%s: Partner Center %s went from %d to %d over %s, want no write (an echo) %s", when, k, pc0[k], pc1[k], 3*pollInterval, s.logs())
		}
	}
	for _, k := range stack.SFWriteEndpoints {
		if sf1[k] != sf0[k] {
			t.Errorf("%s: Salesforce %s went from %d to %d over %s, want no write (an echo) %s", when, k, sf0[k], sf1[k], 3*pollInterval, s.logs())
		}
	}
}

// at reads a dotted path of a JSON object.
func at(m map[string]any, path string) any {
	var v any = m
	for _, seg := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[seg]
	}
	return v
}

// dateOf is the UTC date of an RFC 3339 date-time, or "" when it does not parse.
func dateOf(v any) string {
	ts, err := time.Parse(time.RFC3339Nano, str(v))
	if err != nil {
		return ""
	}
	return ts.UTC().Format(time.DateOnly)
}

// brief is a referral's id, status and deal, for failure messages.
func brief(r map[string]any) string {
	return fmt.Sprintf("%v (%v/%v %q, dealValue %v, closing %v, name %q, ext %v)", r["id"], r["status"], r["substatus"], str(r["statusReason"]),
		at(r, "details.dealValue"), at(r, "details.closingDateTime"), str(r["name"]), r["externalReferenceId"])
}

// firstItem is the first element of a JSON array when it is an object.
func firstItem(list []any) (map[string]any, bool) {
	if len(list) == 0 {
		return nil, false
	}
	m, ok := list[0].(map[string]any)
	return m, ok
}

func ids(refs []map[string]any) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = str(r["id"])
	}
	return out
}
