package upsert_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/cursorstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// seenVersions collects what the batcher reports as read back.
type seenVersions struct {
	mu sync.Mutex
	vs []cursorstore.Version
}

func (s *seenVersions) note(_ context.Context, vs []cursorstore.Version) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vs = append(s.vs, vs...)
	return nil
}

func (s *seenVersions) all() map[cursorstore.Version]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[cursorstore.Version]bool{}
	for _, v := range s.vs {
		out[v] = true
	}
	return out
}

// checkObserved fails unless o carries the opportunity as Salesforce now
// holds it, and seen has its version.
func checkObserved(t *testing.T, emu *sfemutest.Emulator, seen *seenVersions, o upsert.Outcome) {
	t.Helper()
	obs := o.Observed
	if obs == nil || obs.ID != o.OpportunityID {
		t.Fatalf("outcome %+v: read back %+v, want opportunity %s", o, obs, o.OpportunityID)
	}
	stored := emu.Record("Opportunity", o.OpportunityID)
	if obs.ModstampText != stored["SystemModstamp"] || obs.ReferralID != stored["Referral_Identifier__c"] {
		t.Fatalf("read back %s / %s, Salesforce holds %v / %v", obs.ModstampText, obs.ReferralID, stored["SystemModstamp"], stored["Referral_Identifier__c"])
	}
	var rec map[string]any
	if err := json.Unmarshal(obs.JSON, &rec); err != nil || rec["Name"] != stored["Name"] || rec["attributes"] != nil {
		t.Fatalf("record_json %s (%v), want the poller's shape of %v", obs.JSON, err, stored)
	}
	if _, ok := rec["OpportunityContactRoles"]; !ok {
		t.Fatalf("record_json %s lacks the contact roles the poller reads", obs.JSON)
	}
	if !seen.all()[cursorstore.Version{OpportunityID: obs.ID, SystemModstamp: obs.SystemModstamp}] {
		t.Fatalf("version %s@%s not reported as read back", obs.ID, obs.ModstampText)
	}
	if obs.MsgID() != "opp:"+obs.ID+":"+obs.ModstampText {
		t.Fatalf("msg id %s", obs.MsgID())
	}
}

func TestWritesReadTheirRecordsBack(t *testing.T) {
	seen := &seenVersions{}
	f := start(t, sfemutest.Options{}, upsert.Config{BatchWait: 200 * time.Millisecond}, 0, upsert.WithReadBackSeen(seen.note))

	// Upserts, one by a differently cased External ID, and one refused.
	bad := command("cmd-bad", "ref-bad", "Bad")
	bad.Fields["StageName"] = json.RawMessage(`"No Such Stage"`)
	f.emu.ResetCounters()
	outs := submitAll(t, f.batcher, []upsert.Command{command("c1", "ref-1", "One"), command("c2", "REF-Two", "Two"), bad})
	checkObserved(t, f.emu, seen, outs[0])
	checkObserved(t, f.emu, seen, outs[1])
	if outs[2].Kind != upsert.Rejected || outs[2].Observed != nil {
		t.Fatalf("refused record = %+v, want rejected with nothing read back", outs[2])
	}
	if c := f.emu.Counters().Calls; c["composite"] != 1 || c["query"] != 0 || c["composite.sobjects"] != 0 {
		t.Fatalf("calls = %v, want one Composite call and no other", c)
	}

	// An update by Id reads back too.
	outs = submitAll(t, f.batcher, []upsert.Command{update("wb-1", outs[0].OpportunityID, map[string]json.RawMessage{"Amount": json.RawMessage(`5`)})})
	checkObserved(t, f.emu, seen, outs[0])

	// An opportunity the poller would not publish (neither opted in nor
	// linked) is not read back either.
	o := f.emu.CreateRecord("Opportunity", map[string]any{"Name": "Unlinked", "StageName": "Prospecting", "CloseDate": "2030-06-30"})
	outs = submitAll(t, f.batcher, []upsert.Command{update("wb-2", o["Id"].(string), map[string]json.RawMessage{"Amount": json.RawMessage(`7`)})})
	if outs[0].Kind != upsert.OK || outs[0].Observed != nil {
		t.Fatalf("update of an unlinked opportunity = %+v, want ok with nothing read back", outs[0])
	}
}
