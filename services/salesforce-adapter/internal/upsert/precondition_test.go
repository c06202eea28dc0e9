package upsert_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/opprecord"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// modstamp reads an opportunity's SystemModstamp as the emulator has it.
func modstamp(t *testing.T, f *fixture, id string) time.Time {
	t.Helper()
	s, _ := f.emu.Record("Opportunity", id)["SystemModstamp"].(string)
	ts, err := opprecord.ParseDateTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func queryCalls(f *fixture) int64 {
	var n int64
	for k, v := range f.emu.Counters().Calls {
		if strings.HasPrefix(k, "query") {
			n += v
		}
	}
	return n
}

func TestConditionalUpdatesByIdRefuseAChangedOpportunity(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 300 * time.Millisecond}, 0)
	var ids []string
	for _, name := range []string{"Fresh", "Stale", "Plain"} {
		o := f.emu.CreateRecord("Opportunity", map[string]any{"Name": name, "StageName": "Prospecting", "CloseDate": "2030-06-30", "Amount": 100})
		ids = append(ids, o["Id"].(string))
	}
	fresh, stale := modstamp(t, f, ids[0]), modstamp(t, f, ids[1])
	// A seller saves the second opportunity after the mapper's decision read it.
	f.emu.AdvanceClock(2 * time.Millisecond)
	f.emu.UpdateRecord("Opportunity", ids[1], map[string]any{"Amount": 555})
	if !modstamp(t, f, ids[1]).After(stale) {
		t.Fatal("the seller's save did not move SystemModstamp")
	}
	f.emu.ResetCounters()
	amount := map[string]json.RawMessage{"Amount": json.RawMessage(`777`)}
	c0, c1, c2 := update("wb-0", ids[0], amount), update("wb-1", ids[1], amount), update("wb-2", ids[2], amount)
	c0.ExpectedSystemModstamp, c1.ExpectedSystemModstamp = fresh, stale
	outs := submitAll(t, f.batcher, []upsert.Command{c0, c1, c2})
	if outs[0].Kind != upsert.OK || outs[2].Kind != upsert.OK {
		t.Fatalf("outcomes = %+v", outs)
	}
	if outs[1].Kind != upsert.Rejected || len(outs[1].Errors) != 1 || outs[1].Errors[0].Code != upsert.CodePreconditionFailed ||
		!strings.Contains(outs[1].Errors[0].Message, "changed in Salesforce") {
		t.Fatalf("stale = %+v, want rejected PRECONDITION_FAILED", outs[1])
	}
	if got := f.emu.Record("Opportunity", ids[1])["Amount"]; got != 555.0 {
		t.Fatalf("the seller's amount was overwritten: %v", got)
	}
	for _, i := range []int{0, 2} {
		if got := f.emu.Record("Opportunity", ids[i])["Amount"]; got != 777.0 {
			t.Fatalf("opportunity %d amount = %v, want 777", i, got)
		}
	}
	c := f.emu.Counters().Calls
	if c["composite"] != 1 || queryCalls(f) != 1 {
		t.Fatalf("calls = %v, want one query and one update", c)
	}
}

func TestConditionalUpsertsRefuseAChangedOpportunity(t *testing.T) {
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 300 * time.Millisecond}, 0)
	a := f.emu.CreateRecord("Opportunity", map[string]any{"Name": "A", "StageName": "Prospecting", "CloseDate": "2030-06-30", "Referral_Identifier__c": "ref-a"})
	b := f.emu.CreateRecord("Opportunity", map[string]any{"Name": "B", "StageName": "Prospecting", "CloseDate": "2030-06-30", "Referral_Identifier__c": "ref-b"})
	fresh, stale := modstamp(t, f, a["Id"].(string)), modstamp(t, f, b["Id"].(string))
	f.emu.AdvanceClock(2 * time.Millisecond)
	f.emu.UpdateRecord("Opportunity", b["Id"].(string), map[string]any{"Name": "B by the seller"})
	f.emu.ResetCounters()
	ca, cb, cc := command("up-a", "REF-A", "A by cosell"), command("up-b", "ref-b", "B by cosell"), command("up-c", "ref-c", "C new")
	ca.ExpectedSystemModstamp, cb.ExpectedSystemModstamp = fresh, stale
	outs := submitAll(t, f.batcher, []upsert.Command{ca, cb, cc})
	if outs[0].Kind != upsert.OK || outs[0].Created || outs[2].Kind != upsert.OK || !outs[2].Created {
		t.Fatalf("outcomes = %+v", outs)
	}
	if outs[1].Kind != upsert.Rejected || outs[1].Errors[0].Code != upsert.CodePreconditionFailed {
		t.Fatalf("stale = %+v, want rejected PRECONDITION_FAILED", outs[1])
	}
	if got := f.emu.Record("Opportunity", b["Id"].(string))["Name"]; got != "B by the seller" {
		t.Fatalf("the seller's name was overwritten: %v", got)
	}
	if got := f.emu.Record("Opportunity", a["Id"].(string))["Name"]; got != "A by cosell" {
		t.Fatalf("name = %v", got)
	}
	if queryCalls(f) != 1 {
		t.Fatalf("calls = %v, want one query for the batch", f.emu.Counters().Calls)
	}
	// Unconditional commands cost no query.
	f.emu.ResetCounters()
	if out := submitAll(t, f.batcher, []upsert.Command{command("up-d", "ref-d", "D")}); out[0].Kind != upsert.OK {
		t.Fatalf("outcome = %+v", out[0])
	}
	if n := queryCalls(f); n != 0 {
		t.Fatalf("%d queries for an unconditional batch", n)
	}
}
