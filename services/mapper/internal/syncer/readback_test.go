package syncer_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"

	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
)

// pendingSF returns the Salesforce writes the two-way state still expects
// to see come back.
func pendingSF(w *world) int {
	w.t.Helper()
	var doc struct {
		State struct {
			Pending map[string][]json.RawMessage `json:"pending"`
		} `json:"state"`
	}
	if err := json.Unmarshal(w.link().Sync, &doc); err != nil {
		w.t.Fatal(err)
	}
	return len(doc.State.Pending["sf"])
}

// A write read back in the same Salesforce call settles at once: the
// result carries the write's own echo, so the link knows the new
// SystemModstamp (its next update is conditional on it) and expects
// nothing more from the poll. A copy of that version the poller publishes
// anyway is the same observation.
func TestReadBackSettlesTheWriteInItsResult(t *testing.T) {
	w := newWorld(t)
	w.readBack = true
	w.expect(w.seedInbound(), syncer.OutcomeApplied)
	w.carry()
	if len(w.queue) != 1 || w.queue[0].kind != "sfres" || w.queue[0].sf.GetObserved() == nil {
		t.Fatalf("queue = %v, want only the create's result, carrying the read-back", w.queue)
	}
	created := w.opp["SystemModstamp"]
	pollCopy := delivery{kind: "opp", opp: w.queue[0].sf.GetObserved()}
	w.expect(w.queue[0], syncer.OutcomeRecorded)
	w.queue = nil
	if l := w.link(); l.SFModstamp == nil || sfTime(*l.SFModstamp) != created {
		t.Fatalf("link SystemModstamp %v, want the create's %v", l.SFModstamp, created)
	}
	if n := pendingSF(w); n != 0 {
		t.Fatalf("%d Salesforce writes still expected after the read-back", n)
	}
	w.expect(pollCopy, syncer.OutcomeDuplicate)
	if n := w.e.pub.count(); n != 1 {
		t.Fatalf("%d commands, want only the create", n)
	}

	// Microsoft changes the deal value: a conditional update, read back
	// too, and nothing more.
	w.deliver(w.microsoftEdit(map[string]any{"details.dealValue": num("51000")}))
	cmds := w.commands()
	if len(cmds) != 1 {
		t.Fatalf("commands = %v, want one update", cmds)
	}
	w.settle()
	if !sameNumber(w.opp["Amount"], "51000") || pendingSF(w) != 0 {
		t.Fatalf("Amount %v, %d writes expected", w.opp["Amount"], pendingSF(w))
	}

	writes := w.sfWrites
	w.expect(w.oppObserved(), syncer.OutcomeEcho) // a later poll, nothing changed
	w.settle()
	if w.sfWrites != writes {
		t.Errorf("%d Salesforce writes after everything settled", w.sfWrites-writes)
	}
}

// The outbound direction and the lifecycle behave the same whether the
// echoes come back through the poll or inside the results.
func TestReadBackOutboundConverges(t *testing.T) {
	w := newWorld(t)
	w.readBack = true
	w.deliver(w.seedOpportunity(nil))
	w.settle()
	if w.ref == nil || w.opp["Referral_Identifier__c"] != "ref-1" || pendingSF(w) != 0 {
		t.Fatalf("after the opt-in: referral %v, opportunity %v, %d writes expected", w.ref, w.opp, pendingSF(w))
	}
	w.deliver(w.microsoftEdit(map[string]any{"details.dealValue": num("300")}))
	w.settle()
	if !sameNumber(w.opp["Amount"], "300") || pendingSF(w) != 0 {
		t.Fatalf("Amount %v, %d writes expected", w.opp["Amount"], pendingSF(w))
	}

	// The seller changes the amount, then sets it back to exactly the 300
	// we wrote: both are the seller's changes and reach Partner Center.
	w.expect(w.sellerEdit(map[string]any{"Amount": num("310.0")}), syncer.OutcomeApplied)
	w.settle()
	w.expect(w.sellerEdit(map[string]any{"Amount": num("300.0")}), syncer.OutcomeApplied)
	w.settle()
	if d := w.ref["details"].(map[string]any); !sameNumber(d["dealValue"], "300") {
		t.Fatalf("dealValue %v, want the seller's 300", d["dealValue"])
	}

	w.deliver(w.sellerEdit(map[string]any{"StageName": "Closed Won"}))
	w.settle()
	if w.ref["status"] != "Closed" || pendingSF(w) != 0 {
		t.Fatalf("referral %v, %d writes expected", w.ref["status"], pendingSF(w))
	}
	writes := w.sfWrites
	w.expect(w.oppObserved(), syncer.OutcomeEcho) // a later poll, nothing changed
	w.settle()
	if w.sfWrites != writes {
		t.Errorf("%d Salesforce writes after everything settled", w.sfWrites-writes)
	}
}

// A result redelivered after its first delivery was committed (here: the
// first carried no read-back, as from an adapter before read-backs) still
// applies the read-back it carries, once, in a transaction of its own.
func TestReadBackOfARedeliveredResultIsAppliedOnce(t *testing.T) {
	w := newWorld(t)
	w.readBack = true
	w.expect(w.seedInbound(), syncer.OutcomeApplied)
	w.carry()
	res := w.queue[0]
	w.queue = nil
	bare := proto.Clone(res.sf).(*cosellv1.SalesforceResult)
	bare.Observed, bare.ObservedMsgId = nil, ""
	w.expect(delivery{kind: "sfres", sf: bare}, syncer.OutcomeRecorded)
	if l := w.link(); l.SFModstamp != nil || pendingSF(w) != 1 {
		t.Fatalf("after the bare result: SystemModstamp %v, %d writes expected; want none applied, the create pending", l.SFModstamp, pendingSF(w))
	}
	for range 2 {
		w.expect(res, syncer.OutcomeDuplicate)
		if l := w.link(); l.SFModstamp == nil || sfTime(*l.SFModstamp) != w.opp["SystemModstamp"] || pendingSF(w) != 0 {
			t.Fatalf("after the redelivery: SystemModstamp %v, %d writes expected", l.SFModstamp, pendingSF(w))
		}
	}
	if n := w.e.pub.count(); n != 1 {
		t.Fatalf("%d commands, want only the create", n)
	}
}
