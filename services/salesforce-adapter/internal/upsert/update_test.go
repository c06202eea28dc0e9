package upsert_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

func update(id, opp string, fields map[string]json.RawMessage) upsert.Command {
	return upsert.Command{ID: id, OpportunityID: opp, ReferralID: "ref-" + id, Fields: fields}
}

func TestUpdatesByIdShareOneCallAndOnlyTheCulpritIsRejected(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 300 * time.Millisecond}, 0)
	var opps []string
	for i := range 4 {
		o := f.emu.CreateRecord("Opportunity", map[string]any{"Name": fmt.Sprintf("Deal %d", i), "StageName": "Prospecting", "CloseDate": "2030-06-30"})
		opps = append(opps, o["Id"].(string))
	}
	f.emu.ResetCounters()
	cmds := []upsert.Command{
		update("wb-0", opps[0], map[string]json.RawMessage{"Referral_Identifier__c": json.RawMessage(`"ref-0"`), "Audit__c": json.RawMessage(`"created"`)}),
		update("wb-1", opps[1], map[string]json.RawMessage{"StageName": json.RawMessage(`"No Such Stage"`)}),
		update("wb-2", opps[2], map[string]json.RawMessage{"Id": json.RawMessage(`"ignored"`), "Referral_Link__c": json.RawMessage(`"https://partner.microsoft.com/x"`)}),
		update("wb-3", "0068d0000000999AAA", map[string]json.RawMessage{"Audit__c": json.RawMessage(`"x"`)}),
	}
	outs := submitAll(t, f.batcher, cmds)
	if outs[0].Kind != upsert.OK || outs[0].OpportunityID != opps[0] || outs[2].Kind != upsert.OK {
		t.Fatalf("outcomes = %+v", outs)
	}
	if outs[1].Kind != upsert.Rejected || len(outs[1].Errors) == 0 || outs[1].Errors[0].Code != "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" {
		t.Fatalf("bad stage = %+v, want rejected with Salesforce's picklist error", outs[1])
	}
	if outs[3].Kind != upsert.Rejected {
		t.Fatalf("unknown id = %+v, want rejected", outs[3])
	}
	if calls := f.emu.Counters().Calls["composite"]; calls != 1 {
		t.Fatalf("%d calls, want the four updates in one", calls)
	}
	if r := f.emu.Record("Opportunity", opps[0]); r["Referral_Identifier__c"] != "ref-0" || r["Audit__c"] != "created" {
		t.Fatalf("opportunity 0 = %v", r)
	}
	if r := f.emu.Record("Opportunity", opps[1]); r["StageName"] != "Prospecting" {
		t.Fatalf("rejected update changed the stage: %v", r["StageName"])
	}
}

func TestUpdatesOfOneOpportunityAreNeverMerged(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 200 * time.Millisecond}, 0)
	o := f.emu.CreateRecord("Opportunity", map[string]any{"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2030-06-30"})
	id := o["Id"].(string)
	f.emu.ResetCounters()
	outs := submitAll(t, f.batcher, []upsert.Command{
		update("wb-a", id, map[string]json.RawMessage{"Referral_Link__c": json.RawMessage(`"https://partner.microsoft.com/a"`)}),
		update("wb-b", id, map[string]json.RawMessage{"StageName": json.RawMessage(`"No Such Stage"`)}),
	})
	// Each command has its own result: the bad stage does not take the
	// link down with it.
	if outs[0].Kind != upsert.OK || outs[1].Kind != upsert.Rejected {
		t.Fatalf("outcomes = %+v / %+v", outs[0], outs[1])
	}
	if r := f.emu.Record("Opportunity", id); r["Referral_Link__c"] != "https://partner.microsoft.com/a" {
		t.Fatalf("link = %v", r["Referral_Link__c"])
	}
	if calls := f.emu.Counters().Calls["composite"]; calls != 2 {
		t.Fatalf("%d calls, want one per update of the same opportunity", calls)
	}
}
