package syncer_test

import (
	"encoding/json"
	"strings"
	"testing"

	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
)

// inboundLinked plays a Microsoft seller sharing a referral: the mapper
// creates the opportunity (On Hold) and everything settles.
func inboundLinked(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	w.expect(w.seedInbound(), syncer.OutcomeApplied)
	w.settle()
	if w.opp == nil || w.opp["StageName"] != "On Hold" || w.opp["Referral_Identifier__c"] != "ref-1" {
		t.Fatalf("opportunity after the inbound create = %v", w.opp)
	}
	if n := w.e.pub.count(); n != 1 {
		t.Fatalf("%d commands to create one opportunity (its echo must send nothing)", n)
	}
	return w
}

// outboundLinked plays a seller opting an opportunity in: the referral is
// created and everything settles.
func outboundLinked(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	w.deliver(w.seedOpportunity(nil))
	w.settle()
	if w.ref == nil || w.opp["Referral_Identifier__c"] != "ref-1" {
		t.Fatalf("after the opt-in: referral %v, opportunity %v", w.ref, w.opp)
	}
	return w
}

func TestAcceptFromStage(t *testing.T) {
	w := inboundLinked(t)
	// While on hold, an edit is not sent: the referral is not accepted.
	w.expect(w.sellerEdit(map[string]any{"Amount": num("61000.0")}), syncer.OutcomeEcho)
	if n := len(pcCommands(w.commands())); n != 0 {
		t.Fatalf("%d Partner Center commands while on hold", n)
	}
	// Moving to the active stage accepts it, with the held edit.
	w.expect(w.sellerEdit(map[string]any{"StageName": "Qualification"}), syncer.OutcomeApplied)
	cmds := pcCommands(w.commands())
	if len(cmds) != 1 || opsOf(t, cmds[0]) != `/details/dealValue=61000 /status="Active" /substatus="Accepted"` {
		t.Fatalf("accept patch = %v", cmds)
	}
	w.settle()
	if w.ref["status"] != "Active" || w.ref["substatus"] != "Accepted" {
		t.Errorf("referral status %v/%v", w.ref["status"], w.ref["substatus"])
	}
	if a, _ := w.opp["Audit__c"].(string); !strings.Contains(a, "Accepted the referral in Partner Center.") {
		t.Errorf("Audit__c = %q", a)
	}
	if w.opp["StageName"] != "Qualification" {
		t.Errorf("stage moved to %v by our own acceptance", w.opp["StageName"])
	}
}

func TestDeclineFromStage(t *testing.T) {
	w := inboundLinked(t)
	w.expect(w.sellerEdit(map[string]any{"StageName": "Declined", "Decline_Reason__c": "No capacity this quarter"}), syncer.OutcomeApplied)
	cmds := pcCommands(w.commands())
	if len(cmds) != 1 || opsOf(t, cmds[0]) != `/status="Closed" /substatus="Declined" /statusReason="No capacity this quarter"` {
		t.Fatalf("decline patch = %v", cmds)
	}
	w.settle()
	if w.ref["status"] != "Closed" || w.ref["substatus"] != "Declined" || w.ref["statusReason"] != "No capacity this quarter" {
		t.Errorf("referral = %v/%v %v", w.ref["status"], w.ref["substatus"], w.ref["statusReason"])
	}
	if a, _ := w.opp["Audit__c"].(string); !strings.Contains(a, "Declined the referral in Partner Center (reason: No capacity this quarter).") {
		t.Errorf("Audit__c = %q", a)
	}
}

func TestWonAndLostBothWays(t *testing.T) {
	t.Run("won in Salesforce", func(t *testing.T) {
		w := outboundLinked(t)
		w.expect(w.sellerEdit(map[string]any{"StageName": "Closed Won"}), syncer.OutcomeApplied)
		w.settle()
		if w.ref["status"] != "Closed" || w.ref["substatus"] != "Won" {
			t.Errorf("referral = %v/%v", w.ref["status"], w.ref["substatus"])
		}
		// A closed referral takes no more changes; a later edit is held.
		w.expect(w.sellerEdit(map[string]any{"Amount": num("1.0")}), syncer.OutcomeEcho)
		if n := len(pcCommands(w.commands())); n != 0 {
			t.Errorf("%d patches to a closed referral", n)
		}
	})
	t.Run("lost in Salesforce", func(t *testing.T) {
		w := outboundLinked(t)
		w.deliver(w.sellerEdit(map[string]any{"StageName": "Closed Lost"}))
		w.settle()
		if w.ref["status"] != "Closed" || w.ref["substatus"] != "Lost" {
			t.Errorf("referral = %v/%v", w.ref["status"], w.ref["substatus"])
		}
	})
	for _, sub := range []string{"Won", "Lost"} {
		t.Run(strings.ToLower(sub)+" in Partner Center", func(t *testing.T) {
			w := inboundLinked(t)
			w.expect(w.microsoftEdit(map[string]any{"status": "Closed", "substatus": sub}), syncer.OutcomeApplied)
			w.settle()
			if w.opp["StageName"] != "Closed "+sub {
				t.Errorf("stage = %v, want Closed %s", w.opp["StageName"], sub)
			}
			if a, _ := w.opp["Audit__c"].(string); !strings.Contains(a, "Partner Center closed the referral ("+sub+")") {
				t.Errorf("Audit__c = %q", a)
			}
		})
	}
}

func TestExpiryClosesTheOpportunityAndSaysWhy(t *testing.T) {
	w := inboundLinked(t)
	w.expect(w.microsoftEdit(map[string]any{"status": "Closed", "substatus": "Expired"}), syncer.OutcomeApplied)
	w.settle()
	if w.opp["StageName"] != "Closed Lost" {
		t.Errorf("stage = %v", w.opp["StageName"])
	}
	if a, _ := w.opp["Audit__c"].(string); !strings.Contains(a, "expired in Partner Center without being accepted") {
		t.Errorf("Audit__c = %q", a)
	}
	if !w.hasAudit(syncer.KindExpired) {
		t.Error("no referral_expired entry in the audit log")
	}
}

func TestMicrosoftSellerUpdates(t *testing.T) {
	w := inboundLinked(t)
	// On the partner's referral (referral-updated).
	w.expect(w.microsoftEdit(map[string]any{"details.dealValue": num("75000"), "details.notes": "Bigger scope."}), syncer.OutcomeApplied)
	w.settle()
	if w.opp["Amount"] != num("75000") || w.opp["Description"] != "Bigger scope." {
		t.Errorf("opportunity Amount %v Description %v", w.opp["Amount"], w.opp["Description"])
	}
	// On Microsoft's own referral (related-referral-updated): its first
	// snapshot is a starting point, its changes follow.
	w.expect(w.snapshotOf(w.ms, "related-referral-created"), syncer.OutcomeEcho)
	w.expect(w.microsoftOwnEdit(map[string]any{"details.closingDateTime": "2026-07-01T00:00:00Z"}), syncer.OutcomeApplied)
	w.settle()
	if w.opp["CloseDate"] != "2026-07-01" {
		t.Errorf("CloseDate = %v", w.opp["CloseDate"])
	}
	if !w.hasAudit(syncer.KindRelatedChanged) {
		t.Error("Microsoft seller's change not audited")
	}
}

func TestMicrosoftAcceptsWritesCRMIdentifier(t *testing.T) {
	w := outboundLinked(t)
	// Microsoft's referral appears when Microsoft accepts, with its CRM id.
	w.ms = deepCopy(w.ref)
	w.ms["id"], w.ms["organizationId"] = "ms-1", "msft"
	w.ms["trackingInfo"] = map[string]any{"microsoftMsxId": "7-ABCDEFGHIJ"}
	w.stamp(w.ms)
	w.expect(w.snapshotOf(w.ms, "related-referral-created"), syncer.OutcomeApplied)
	wbs := writebacks(w.commands())
	if len(wbs) != 1 {
		t.Fatalf("%d write-backs, want 1", len(wbs))
	}
	f := decode(t, wbs[0].GetFieldsJson())
	if f["Microsoft_CRM_Identifier__c"] != "7-ABCDEFGHIJ" || !strings.Contains(f["Audit__c"].(string), "Microsoft accepted the co-sell; Microsoft's CRM id is 7-ABCDEFGHIJ.") {
		t.Errorf("write-back = %v", f)
	}
	w.settle()
	if n := len(pcCommands(w.commands())); n != 0 {
		t.Errorf("Microsoft's acceptance caused %d Partner Center commands", n)
	}
}

func TestUntickStopsAndRetickResumes(t *testing.T) {
	w := outboundLinked(t)
	w.expect(w.sellerEdit(map[string]any{"Sync_with_Partner_Center__c": false}), syncer.OutcomeStopped)
	if l := w.link(); l.State != linkstore.StateStopped || l.ReferralID != "ref-1" {
		t.Errorf("link = %+v", l)
	}
	wbs := writebacks(w.commands())
	if len(wbs) != 1 || !strings.Contains(decode(t, wbs[0].GetFieldsJson())["Audit__c"].(string), "Sync with Partner Center was unticked: the sync is stopped.") {
		t.Fatalf("write-backs = %v", wbs)
	}
	w.settle()
	w.expect(w.sellerEdit(map[string]any{"Amount": num("99.0")}), syncer.OutcomeStopped)
	w.expect(w.microsoftEdit(map[string]any{"details.notes": "x"}), syncer.OutcomeStopped)
	if n := len(pcCommands(w.commands())); n != 0 {
		t.Fatalf("%d Partner Center commands while stopped", n)
	}
	// Ticking it again resumes: the change made meanwhile goes out.
	w.expect(w.sellerEdit(map[string]any{"Sync_with_Partner_Center__c": true}), syncer.OutcomeApplied)
	w.settle()
	if l := w.link(); l.State != linkstore.StateActive {
		t.Errorf("state %s after re-ticking", l.State)
	}
	if w.ref["details"].(map[string]any)["dealValue"] != num("99") && w.ref["details"].(map[string]any)["dealValue"] != num("99.0") {
		t.Errorf("referral deal value = %v", w.ref["details"].(map[string]any)["dealValue"])
	}
}

func TestDeletedOpportunityOrphansTheLink(t *testing.T) {
	w := outboundLinked(t)
	del := w.sellerEdit(nil)
	del.opp.Deleted, del.opp.RecordJson = true, nil
	w.expect(del, syncer.OutcomeStopped)
	if l := w.link(); l.State != linkstore.StateOrphaned || l.ReferralID != "ref-1" {
		t.Errorf("link = %+v", l)
	}
	if n := w.e.pub.count() - w.read; n != 0 {
		t.Errorf("%d commands after the deletion (the referral is never deleted)", n)
	}
	w.expect(w.microsoftEdit(map[string]any{"details.dealValue": num("1")}), syncer.OutcomeStopped)
	if w.ref["status"] != "Active" {
		t.Errorf("referral = %v", w.ref["status"])
	}
}

func TestOwnWritesNeverEcho(t *testing.T) {
	t.Run("upsert", func(t *testing.T) {
		w := inboundLinked(t) // checks the create's echo sends nothing
		w.deliver(w.microsoftEdit(map[string]any{"details.dealValue": num("51000")}))
		w.carry()
		for _, d := range w.queue {
			got := w.deliver(d)
			if d.kind == "opp" && got != syncer.OutcomeEcho {
				t.Errorf("the upsert's echo: %s, want echo", got)
			}
		}
		w.queue = nil
		if n := w.e.pub.count() - w.read; n != 0 {
			t.Errorf("%d commands after the echo", n)
		}
	})
	t.Run("write-back and patch", func(t *testing.T) {
		w := outboundLinked(t)
		w.deliver(w.sellerEdit(map[string]any{"StageName": "Closed Won"}))
		w.carry() // the patch: result, then the referral's webhook
		for len(w.queue) > 0 {
			d := w.queue[0]
			w.queue = w.queue[1:]
			got := w.deliver(d)
			switch {
			case d.kind == "ref" && got != syncer.OutcomeDuplicate && got != syncer.OutcomeEcho:
				t.Errorf("the patch's webhook snapshot: %s", got)
			case d.kind == "opp" && got != syncer.OutcomeEcho:
				t.Errorf("the Audit write-back's echo: %s", got)
			}
			w.carry()
		}
		if n := w.e.pub.count() - w.read; n != 0 {
			t.Errorf("%d commands after the echoes", n)
		}
		if w.opp["StageName"] != "Closed Won" {
			t.Errorf("stage = %v", w.opp["StageName"])
		}
	})
}

// TestSimultaneousEditsConverge has a seller and a Microsoft seller change
// the deal value at nearly the same time; whichever observation reaches
// the mapper first, both sides end with the later change.
func TestSimultaneousEditsConverge(t *testing.T) {
	type result struct{ opp, ref any }
	run := func(t *testing.T, salesforceLater, salesforceFirst bool) result {
		w := outboundLinked(t)
		var sf, pc delivery
		if salesforceLater {
			pc = w.microsoftEdit(map[string]any{"details.dealValue": num("300")})
			sf = w.sellerEdit(map[string]any{"Amount": num("200.0")})
		} else {
			sf = w.sellerEdit(map[string]any{"Amount": num("200.0")})
			pc = w.microsoftEdit(map[string]any{"details.dealValue": num("300")})
		}
		if salesforceFirst {
			w.deliver(sf)
			w.deliver(pc)
		} else {
			w.deliver(pc)
			w.deliver(sf)
		}
		w.settle()
		return result{w.opp["Amount"], w.ref["details"].(map[string]any)["dealValue"]}
	}
	for name, later := range map[string]bool{"Partner Center edits last": false, "Salesforce edits last": true} {
		t.Run(name, func(t *testing.T) {
			a := run(t, later, true)
			b := run(t, later, false)
			want := "300"
			if later {
				want = "200"
			}
			for _, r := range []result{a, b} {
				if !sameNumber(r.opp, want) || !sameNumber(r.ref, want) {
					t.Errorf("opportunity Amount %v, referral dealValue %v; want both %s", r.opp, r.ref, want)
				}
			}
		})
	}
}

func sameNumber(v any, want string) bool {
	s := strings.TrimSuffix(strings.TrimSuffix(toString(v), ".0"), ".00")
	return s == want
}

func toString(v any) string {
	switch x := v.(type) {
	case interface{ String() string }:
		return x.String()
	case string:
		return x
	}
	return ""
}

// The result of a write-back Salesforce refused parks an outbound link.
func TestRejectedWritebackParksAndReplayResumes(t *testing.T) {
	w := outboundLinked(t)
	w.deliver(w.microsoftEdit(map[string]any{"details.dealValue": num("70000")}))
	wbs := writebacks(w.commands())
	if len(wbs) != 1 {
		t.Fatalf("write-backs = %v", wbs)
	}
	w.read = w.e.pub.count()
	w.expect(delivery{kind: "sfres", sf: &cosellv1.SalesforceResult{CommandId: wbs[0].GetCommandId(), OpportunityId: oppID,
		Outcome: cosellv1.Outcome_OUTCOME_REJECTED, ErrorCode: "FIELD_CUSTOM_VALIDATION_EXCEPTION", ErrorMessage: "Amount locked"}}, syncer.OutcomeParked)
	if l := w.link(); l.State != linkstore.StateParked {
		t.Fatalf("state %s", l.State)
	}
	out, err := w.e.svc.Replay(t.Context(), "ref-1")
	if err != nil || out.State != "active" || out.CommandID == "" {
		t.Fatalf("replay = %+v, %v", out, err)
	}
	w.settle()
	if !sameNumber(w.opp["Amount"], "70000") {
		t.Errorf("Amount after replay = %v", w.opp["Amount"])
	}
}

// Microsoft's referral is created before the partner's, so its creation
// event finds no link; the first snapshot the mapper handles may already
// carry a Microsoft seller's edit.
func TestMicrosoftSellersEditSeenAtTheFirstLook(t *testing.T) {
	w := inboundLinked(t)
	w.expect(w.microsoftOwnEdit(map[string]any{"details.dealValue": num("77777")}), syncer.OutcomeApplied)
	w.settle()
	if !sameNumber(w.opp["Amount"], "77777") {
		t.Errorf("Amount = %v, want the Microsoft seller's 77777", w.opp["Amount"])
	}
}

// A Salesforce write refused because the record changed meanwhile (a
// conditional write) does not park the link: the next observation decides.
func TestSalesforcePreconditionFailureIsNotAPark(t *testing.T) {
	w := outboundLinked(t)
	w.deliver(w.microsoftEdit(map[string]any{"details.dealValue": num("70000")}))
	wbs := writebacks(w.commands())
	if len(wbs) != 1 {
		t.Fatalf("write-backs = %v", wbs)
	}
	// The update is conditional on the opportunity as last observed.
	if got, l := wbs[0].GetExpectedSystemModstamp(), w.link(); got == nil || l.SFModstamp == nil || !got.AsTime().Equal(*l.SFModstamp) {
		t.Fatalf("expected_system_modstamp = %v, want the applied SystemModstamp %v", got, l.SFModstamp)
	}
	w.read = w.e.pub.count()
	w.expect(delivery{kind: "sfres", sf: &cosellv1.SalesforceResult{CommandId: wbs[0].GetCommandId(), OpportunityId: oppID,
		Outcome: cosellv1.Outcome_OUTCOME_REJECTED, ErrorCode: "PRECONDITION_FAILED"}}, syncer.OutcomeRecorded)
	if l := w.link(); l.State != linkstore.StateActive {
		t.Fatalf("state %s", l.State)
	}
	// The same write is not sent again: the seller's change is awaited.
	if n := len(w.commands()); n != 0 {
		t.Fatalf("%d commands after the refusal, want none", n)
	}
	if !w.hasAudit(syncer.KindPreconditionRedecided) {
		t.Error("no audit entry for the refusal")
	}
	// The seller's edit that made it fail is observed: it is later, it wins.
	w.expect(w.sellerEdit(map[string]any{"Amount": num("65000.0")}), syncer.OutcomeApplied)
	w.settle()
	if !sameNumber(w.opp["Amount"], "65000") || !sameNumber(w.ref["details"].(map[string]any)["dealValue"], "65000") {
		t.Errorf("Amount %v, dealValue %v", w.opp["Amount"], w.ref["details"].(map[string]any)["dealValue"])
	}
}

// A Microsoft seller's change reaches the mapper first; the Salesforce
// seller saved later but the poller has not delivered it yet. The
// conditional update is refused instead of overwriting the save, and the
// save's observation makes the later value win on both sides.
func TestConditionalUpdateKeepsTheSellersLaterSave(t *testing.T) {
	w := outboundLinked(t)
	pc := w.microsoftEdit(map[string]any{"details.dealValue": num("300")})
	sf := w.sellerEdit(map[string]any{"Amount": num("200.0")}) // later, not delivered yet
	w.deliver(pc)
	wbs := writebacks(w.commands())
	if len(wbs) != 1 || wbs[0].GetExpectedSystemModstamp() == nil {
		t.Fatalf("write-backs = %v, want one conditional update", wbs)
	}
	w.carry() // the adapter refuses it: the opportunity changed
	if w.preconditionFailures != 1 || !sameNumber(w.opp["Amount"], "200") {
		t.Fatalf("precondition failures %d, Amount %v: the seller's save was overwritten", w.preconditionFailures, w.opp["Amount"])
	}
	w.settle()
	w.deliver(sf)
	w.settle()
	if !sameNumber(w.opp["Amount"], "200") || !sameNumber(w.ref["details"].(map[string]any)["dealValue"], "200") {
		t.Errorf("Amount %v, dealValue %v; want both the seller's later 200", w.opp["Amount"], w.ref["details"].(map[string]any)["dealValue"])
	}
}

// When the change that refused a conditional update was already applied
// (delivered before the refusal), the refusal decides again at once.
func TestConditionalUpdateRefusedAfterTheChangeWasSeen(t *testing.T) {
	w := outboundLinked(t)
	sf := w.sellerEdit(map[string]any{"Amount": num("200.0")})
	pc := w.microsoftEdit(map[string]any{"details.dealValue": num("300")}) // later: Microsoft wins
	w.deliver(pc)
	w.deliver(sf)
	w.settle()
	if w.preconditionFailures == 0 {
		t.Fatal("the stale update was not refused")
	}
	if !sameNumber(w.opp["Amount"], "300") || !sameNumber(w.ref["details"].(map[string]any)["dealValue"], "300") {
		t.Errorf("Amount %v, dealValue %v; want both the Microsoft seller's later 300", w.opp["Amount"], w.ref["details"].(map[string]any)["dealValue"])
	}
}

// A create Salesforce refused (a currency it does not allow) parks the
// link; the Microsoft seller corrects the referral (held), the operator
// replays, and the sync rests on the corrected value: the echo of the
// replayed write must not send the refused value again.
func TestRejectedCreateReplayedRestsOnTheHeldSnapshot(t *testing.T) {
	w := newWorld(t)
	seed := w.seedInbound()
	w.ref["details"].(map[string]any)["currency"] = "CZK"
	seed = w.refObserved("referral-created")
	w.expect(seed, syncer.OutcomeApplied)
	cmds := w.commands()
	if len(cmds) != 1 {
		t.Fatalf("commands = %v", cmds)
	}
	w.read = w.e.pub.count()
	w.done[cmds[0].id] = true
	w.expect(delivery{kind: "sfres", sf: &cosellv1.SalesforceResult{CommandId: cmds[0].id, ReferralId: "ref-1",
		Outcome: cosellv1.Outcome_OUTCOME_REJECTED, ErrorCode: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
		ErrorMessage: "Opportunity Currency: bad value for restricted picklist field: CZK", ErrorFields: []string{"CurrencyIsoCode"}}}, syncer.OutcomeParked)
	w.expect(w.microsoftEdit(map[string]any{"details.currency": "EUR"}), syncer.OutcomeHeld)

	out, err := w.e.svc.Replay(t.Context(), "ref-1")
	if err != nil || out.State != "active" {
		t.Fatalf("replay = %+v, %v", out, err)
	}
	w.settle()
	if l := w.link(); l.State != linkstore.StateActive || l.OpportunityID == "" {
		t.Fatalf("link after the replay settled = %+v", l)
	}
	if w.opp["CurrencyIsoCode"] != "EUR" {
		t.Errorf("CurrencyIsoCode = %v, want the corrected EUR", w.opp["CurrencyIsoCode"])
	}
	if w.sfWrites != 1 {
		t.Errorf("%d Salesforce writes after the replay, want 1 (its echo sends nothing)", w.sfWrites)
	}
}

// A seller edits a field right after our write landed, so the poll never
// shows our write on its own (the echo and the edit come back as one
// version). The write is then settled by that observation: when the seller
// later sets the field back to exactly the value we wrote, that is the
// seller's change, not our echo, and it reaches Partner Center.
func TestSellersRevertToOurValueAfterAnUnseenEchoIsAChange(t *testing.T) {
	w := outboundLinked(t)
	w.deliver(w.microsoftEdit(map[string]any{"details.dealValue": num("300")}))
	wbs := writebacks(w.commands())
	if len(wbs) != 1 || wbs[0].GetExpectedSystemModstamp() == nil {
		t.Fatalf("write-backs = %v, want one conditional update", wbs)
	}
	w.carry() // lands: Amount 300; its result and its echo are queued
	if len(w.queue) != 2 || w.queue[0].kind != "sfres" || w.queue[1].kind != "opp" {
		t.Fatalf("queue = %v, want the result and the echo", w.queue)
	}
	w.expect(w.queue[0], syncer.OutcomeRecorded)
	w.queue = nil // the poll missed the echo: the seller saved again first
	w.expect(w.sellerEdit(map[string]any{"Amount": num("310.0")}), syncer.OutcomeApplied)
	w.settle()
	if d := w.ref["details"].(map[string]any); !sameNumber(d["dealValue"], "310") {
		t.Fatalf("dealValue %v after the seller's 310", d["dealValue"])
	}
	// The seller undoes the edit: back to the 300 we once wrote.
	w.expect(w.sellerEdit(map[string]any{"Amount": num("300.0")}), syncer.OutcomeApplied)
	w.settle()
	if d := w.ref["details"].(map[string]any); !sameNumber(d["dealValue"], "300") || !sameNumber(w.opp["Amount"], "300") {
		t.Errorf("dealValue %v, Amount %v; want both the seller's 300", d["dealValue"], w.opp["Amount"])
	}
}

// The seller accepts the referral (moves it to the active stage) before
// the poll ever read the new opportunity: the create's echo never shows on
// its own. Its "On Hold" must not stay expected, or every later poll would
// send the stage again.
func TestAcceptBeforeTheCreatesEchoSettles(t *testing.T) {
	w := newWorld(t)
	w.expect(w.seedInbound(), syncer.OutcomeApplied)
	w.carry() // the create lands: its result and its echo are queued
	if len(w.queue) != 2 || w.queue[0].kind != "sfres" || w.queue[1].kind != "opp" {
		t.Fatalf("queue = %v, want the create's result and echo", w.queue)
	}
	w.expect(w.queue[0], syncer.OutcomeRecorded)
	w.queue = nil // the seller saves before the poll reads the record
	w.expect(w.sellerEdit(map[string]any{"StageName": "Qualification"}), syncer.OutcomeApplied)
	w.settle() // fails on an echo loop
	writes := w.sfWrites
	w.expect(w.oppObserved(), syncer.OutcomeEcho) // a later poll, nothing changed since
	w.settle()
	if w.sfWrites != writes {
		t.Errorf("%d Salesforce writes after everything settled", w.sfWrites-writes)
	}
	if w.ref["status"] != "Active" || w.opp["StageName"] != "Qualification" {
		t.Errorf("referral %v, stage %v", w.ref["status"], w.opp["StageName"])
	}
}

// The create's echo is hidden by the seller's first save (accepting the
// referral before the poll first read the opportunity). That save settles
// the create's values: none of them stays expected, so none of them can
// take a later seller edit back to it for our echo.
func TestTheFirstObservationSettlesTheCreate(t *testing.T) {
	w := newWorld(t)
	w.expect(w.seedInbound(), syncer.OutcomeApplied)
	w.carry() // the create lands: its result and its echo are queued
	w.expect(w.queue[0], syncer.OutcomeRecorded)
	w.queue = nil
	w.expect(w.sellerEdit(map[string]any{"StageName": "Qualification"}), syncer.OutcomeApplied)
	w.settle()
	var doc struct {
		State struct {
			Pending map[string][]struct {
				Command string            `json:"cmd"`
				Values  map[string]string `json:"values"`
			} `json:"pending"`
		} `json:"state"`
	}
	if err := json.Unmarshal(w.link().Sync, &doc); err != nil {
		t.Fatal(err)
	}
	if sf := doc.State.Pending["sf"]; len(sf) != 0 {
		t.Errorf("Salesforce writes still expected after everything settled: %+v", sf)
	}
	if w.ref["status"] != "Active" || w.opp["StageName"] != "Qualification" {
		t.Errorf("referral %v, stage %v", w.ref["status"], w.opp["StageName"])
	}
}
