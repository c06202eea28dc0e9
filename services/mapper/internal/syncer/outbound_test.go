package syncer_test

import (
	"strings"
	"testing"

	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
)

func TestOptInCreatesReferralAndWritesBack(t *testing.T) {
	w := newWorld(t)
	w.expect(w.seedOpportunity(nil), syncer.OutcomeApplied)
	cmds := pcCommands(w.commands())
	if len(cmds) != 1 {
		t.Fatalf("%d Partner Center commands, want 1", len(cmds))
	}
	c := cmds[0]
	if c.GetCommandId() != "pc-create:"+oppID || c.GetOpportunityId() != oppID || c.GetCreate().GetExternalReferenceId() != oppID {
		t.Fatalf("create command = %v", c)
	}
	body := decode(t, c.GetCreate().GetBodyJson())
	if body["type"] != "Shared" || body["externalReferenceId"] != oppID || body["inviteContext"].(map[string]any)["assistanceRequestCode"] != "ProofOfConceptOrDemo" {
		t.Errorf("create body = %v", body)
	}
	l := w.link()
	if l.ReferralID != "" || l.Origin != linkstore.OriginOutbound || l.State != linkstore.StateActive || l.PCCommandID != c.GetCommandId() {
		t.Errorf("link before the answer = %+v", l)
	}

	w.carry()
	w.expect(w.queue[0], syncer.OutcomeRecorded) // the create's result
	w.queue = w.queue[1:]
	l = w.link()
	if l.ReferralID != "ref-1" || l.PCETag == "" || l.EngagementID != "eng-1" {
		t.Errorf("link after the answer = %+v", l)
	}
	wbs := writebacks(w.commands())
	if len(wbs) != 1 {
		t.Fatalf("%d write-backs, want 1", len(wbs))
	}
	f := decode(t, wbs[0].GetFieldsJson())
	if f["Referral_Identifier__c"] != "ref-1" || !strings.HasSuffix(f["Referral_Link__c"].(string), "/opportunities/ref-1") ||
		!strings.Contains(f["Audit__c"].(string), "Shared with Partner Center as a co-sell referral") {
		t.Errorf("write-back = %v", f)
	}
	if _, marked := f["Name"]; marked {
		t.Error("the name marker is off by default but the name was written")
	}
	// The write-back and the referral's webhook come back: nothing more is
	// sent to either side.
	before := w.sfWrites
	w.settle()
	if w.sfWrites != before+1 || w.pcCalls != 1 {
		t.Errorf("after settling: %d Salesforce writes (want %d), %d Partner Center calls (want 1)", w.sfWrites, before+1, w.pcCalls)
	}
	if w.opp["Referral_Identifier__c"] != "ref-1" {
		t.Errorf("opportunity = %v", w.opp)
	}
}

func TestValidationFailureIsExplainedAndNothingIsSent(t *testing.T) {
	w := newWorld(t)
	w.expect(w.seedOpportunity(map[string]any{
		"Account":                map[string]any{"Name": "Fabrikam Inc", "BillingCountry": "Germany"},
		"Microsoft_Solutions__r": nil,
	}), syncer.OutcomeInvalid)
	if n := len(pcCommands(w.commands())); n != 0 {
		t.Fatalf("%d Partner Center commands for an invalid opportunity", n)
	}
	wbs := writebacks(w.commands())
	if len(wbs) != 1 {
		t.Fatalf("%d write-backs, want 1 (the Audit field)", len(wbs))
	}
	audit := decode(t, wbs[0].GetFieldsJson())["Audit__c"].(string)
	for _, want := range []string{`The customer's country "GERMANY" (Billing Country on the account) is not a two-letter ISO 3166 country code`,
		"so Partner Center needs a co-sell solution"} {
		if !strings.Contains(audit, want) {
			t.Errorf("Audit__c = %q\nwant it to say %q", audit, want)
		}
	}
	if l := w.link(); l.State != linkstore.StateInvalid || l.ReferralID != "" {
		t.Errorf("link = %+v", l)
	}
	if !w.hasAudit(syncer.KindInvalid) {
		t.Error("no validation_failed entry in the audit log")
	}
	// Our Audit write comes back: it is not told again (no loop).
	w.settle()
	if n := len(writebacks(w.commands())); n != 0 || w.sfWrites != 1 {
		t.Errorf("the Audit write's echo caused %d more write-backs (%d writes)", n, w.sfWrites)
	}
	// The seller fixes the country and adds a solution: the referral is
	// created.
	w.expect(w.sellerEdit(map[string]any{
		"Account":                map[string]any{"Name": "Fabrikam Inc", "BillingCountry": "DE"},
		"Microsoft_Solutions__r": map[string]any{"records": []any{map[string]any{"Solution_Identifier__c": "SOL-9"}}},
	}), syncer.OutcomeApplied)
	if cmds := pcCommands(w.commands()); len(cmds) != 1 || cmds[0].GetCreate() == nil {
		t.Fatalf("commands after the fix = %v", cmds)
	}
	w.settle()
	if l := w.link(); l.State != linkstore.StateActive || l.ReferralID == "" {
		t.Errorf("link after the fix = %+v", l)
	}
}

func TestRepeatedOrRedeliveredCreateNeverSendsASecond(t *testing.T) {
	w := newWorld(t)
	obs := w.seedOpportunity(nil)
	// The first attempt commits and crashes before publishing.
	w.e.pub.fail = 1
	d := syncer.Delivery{MsgID: oppMsgID(obs), Stream: "OPPORTUNITIES", StreamSeq: 1}
	if _, err := w.e.svc.OpportunityObserved(t.Context(), d, obs.opp); err == nil {
		t.Fatal("publish failure not reported")
	}
	// JetStream redelivers: the same create goes out.
	out, err := w.e.svc.OpportunityObserved(t.Context(), d, obs.opp)
	if err != nil || out != syncer.OutcomeRedelivered {
		t.Fatalf("redelivery: %s, %v", out, err)
	}
	// Another observation before the answer (the seller saved again).
	w.expect(w.sellerEdit(map[string]any{"Description": "More scope."}), syncer.OutcomeHeld)
	// The same observation again (the poller's overlap window).
	w.expect(delivery{kind: "opp", opp: obs.opp}, syncer.OutcomeRedelivered)
	ids := map[string]bool{}
	for _, c := range pcCommands(w.commands()) {
		if c.GetCreate() == nil {
			t.Fatalf("unexpected command %v", c)
		}
		ids[c.GetCommandId()] = true
	}
	if len(ids) != 1 || !ids["pc-create:"+oppID] {
		t.Fatalf("create ids = %v, want only pc-create:%s", ids, oppID)
	}
	// The adapter answers each delivery of the command alike (it looks the
	// referral up by externalReferenceId): one referral. A redelivered
	// result is absorbed.
	w.settle()
	res := &cosellv1.PartnerCenterResult{CommandId: "pc-create:" + oppID, OpportunityId: oppID, ReferralId: "ref-1", Outcome: cosellv1.Outcome_OUTCOME_OK}
	w.expect(delivery{kind: "pcres", pc: res}, syncer.OutcomeDuplicate)
	if w.seq != 1 {
		t.Errorf("%d referrals created, want 1", w.seq)
	}
	// The change made while the create was under way follows as a patch.
	if w.ref["details"].(map[string]any)["notes"] != "More scope." {
		t.Errorf("referral notes = %v, want the later edit", w.ref["details"])
	}
	if l := w.link(); l.ReferralID != "ref-1" || l.CreateAttempt != 1 {
		t.Errorf("link = %+v", l)
	}
}

func TestDealValueAndCloseDatePatchWithIfMatch(t *testing.T) {
	w := newWorld(t)
	w.deliver(w.seedOpportunity(nil))
	w.settle()
	etag := w.link().PCETag
	w.expect(w.sellerEdit(map[string]any{"Amount": num("150000.0"), "CloseDate": "2026-10-15"}), syncer.OutcomeApplied)
	cmds := pcCommands(w.commands())
	if len(cmds) != 1 || cmds[0].GetPatch() == nil {
		t.Fatalf("commands = %v", cmds)
	}
	p := cmds[0]
	if p.GetPatch().GetIfMatch() != etag || !strings.HasPrefix(p.GetCommandId(), "pc-patch:ref-1:") || p.GetPatch().GetReferralId() != "ref-1" {
		t.Errorf("patch = %v (eTag %s)", p, etag)
	}
	if got := opsOf(t, p); got != `/details/dealValue=150000 /details/closingDateTime="2026-10-15T00:00:00.000Z"` {
		t.Errorf("ops = %s", got)
	}
	writes := w.sfWrites
	w.settle()
	if w.sfWrites != writes {
		t.Errorf("a routine patch wrote to Salesforce %d times", w.sfWrites-writes)
	}
	if d := w.ref["details"].(map[string]any); d["closingDateTime"] != "2026-10-15T00:00:00.000Z" {
		t.Errorf("referral details = %v", d)
	}
}

func TestPreconditionFailedIsDecidedAgain(t *testing.T) {
	w := newWorld(t)
	w.deliver(w.seedOpportunity(nil))
	w.settle()
	// The seller changes the amount; before the patch lands a Microsoft
	// seller changes the notes (the mapper has not heard of it yet).
	w.expect(w.sellerEdit(map[string]any{"Amount": num("130000.0")}), syncer.OutcomeApplied)
	msEdit := w.microsoftEdit(map[string]any{"details.notes": "Microsoft's notes."})
	w.carry() // the patch: 412, with the referral as it is now
	if len(w.queue) != 1 || w.queue[0].pc.GetErrorCode() != "preconditionFailed" {
		t.Fatalf("queue = %+v", w.queue)
	}
	w.expect(w.queue[0], syncer.OutcomeRecorded)
	w.queue = w.queue[1:]
	cmds := pcCommands(w.commands())
	if len(cmds) != 1 {
		t.Fatalf("%d commands after the 412, want a new patch", len(cmds))
	}
	if got := opsOf(t, cmds[0]); got != "/details/dealValue=130000" || cmds[0].GetPatch().GetIfMatch() != w.ref["eTag"] {
		t.Errorf("re-decided patch = %s If-Match %s (current %v)", got, cmds[0].GetPatch().GetIfMatch(), w.ref["eTag"])
	}
	if !w.hasAudit(syncer.KindPreconditionRedecided) {
		t.Error("412 not audited")
	}
	w.settle()
	w.expect(msEdit, syncer.OutcomeStale) // its webhook, late: already applied
	w.settle()
	if d := w.ref["details"].(map[string]any); d["notes"] != "Microsoft's notes." || w.opp["Description"] != "Microsoft's notes." || w.opp["Amount"] != num("130000.0") {
		t.Errorf("after settling: referral %v, opportunity Description %v Amount %v", d, w.opp["Description"], w.opp["Amount"])
	}
}
