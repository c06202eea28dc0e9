package sfclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

func TestWriteReadBackIsOneCall(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	ctx := context.Background()
	emu.ResetCounters()

	out, err := c.UpsertCollectionReadBack(ctx, "Opportunity", "Referral_Identifier__c",
		[]sfclient.Record{opp("ref-1", "First"), opp("ref-2", "Second")},
		"SELECT Id, Name, SystemModstamp FROM Opportunity WHERE Referral_Identifier__c IN ('ref-1', 'ref-2')")
	if err != nil {
		t.Fatalf("upsert: %v", err)
	}
	if out.ReadErr != nil || len(out.Results) != 2 || len(out.Records) != 2 {
		t.Fatalf("answer = %+v, want two results and two rows", out)
	}
	byID := map[string]map[string]any{}
	for _, raw := range out.Records {
		var row map[string]any
		if err := json.Unmarshal(raw, &row); err != nil {
			t.Fatal(err)
		}
		byID[row["Id"].(string)] = row
	}
	for i, r := range out.Results {
		if !r.Success || !r.Created {
			t.Fatalf("result %d = %+v, want created", i, r)
		}
		row, stored := byID[r.ID], emu.Record("Opportunity", r.ID)
		if row == nil || row["SystemModstamp"] != stored["SystemModstamp"] || row["Name"] != stored["Name"] {
			t.Fatalf("read back %v, Salesforce holds %v", row, stored)
		}
	}

	// Updates by Id read back the same way.
	upd := sfclient.Record{"Id": out.Results[0].ID, "Name": "First renamed"}
	out, err = c.UpdateCollectionReadBack(ctx, "Opportunity", []sfclient.Record{upd},
		"SELECT Id, Name FROM Opportunity WHERE Id IN ('"+out.Results[0].ID+"')")
	if err != nil || out.ReadErr != nil || len(out.Records) != 1 || !out.Results[0].Success {
		t.Fatalf("update = %+v, %v", out, err)
	}
	if !json.Valid(out.Records[0]) || emu.Record("Opportunity", out.Results[0].ID)["Name"] != "First renamed" {
		t.Fatalf("update not applied or not read back: %s", out.Records[0])
	}
	if cnt := emu.Counters(); cnt.Calls["composite"] != 2 || cnt.Calls["query"] != 0 || cnt.Calls["composite.sobjects"] != 0 {
		t.Fatalf("calls = %v, want two Composite calls and no other", cnt.Calls)
	}
}

func TestFailedReadBackLeavesTheWriteStanding(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	out, err := c.UpsertCollectionReadBack(context.Background(), "Opportunity", "Referral_Identifier__c",
		[]sfclient.Record{opp("ref-1", "First")}, "SELECT No_Such_Field__c FROM Opportunity")
	if err != nil {
		t.Fatalf("upsert: %v", err)
	}
	if len(out.Results) != 1 || !out.Results[0].Success || out.Records != nil {
		t.Fatalf("answer = %+v, want the write's result and no rows", out)
	}
	var ae *sfclient.APIError
	if !errors.As(out.ReadErr, &ae) || ae.Status != http.StatusBadRequest || ae.Code() != "INVALID_FIELD" {
		t.Fatalf("read error = %v, want Salesforce's INVALID_FIELD", out.ReadErr)
	}
	if n := len(emu.Records("Opportunity")); n != 1 {
		t.Fatalf("%d opportunities, want the one written", n)
	}
}

func TestWriteSubrequestErrors(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	c := newClient(t, emu, sfclient.AuthJWT, nil)
	ctx := context.Background()
	const soql = "SELECT Id FROM Opportunity WHERE Referral_Identifier__c IN ('ref-x')"

	// A row lock on the write subrequest as a whole is temporary: the
	// whole Composite call is sent again.
	emu.AddFault(sfemutest.Fault{Endpoint: "composite", Kind: "UNABLE_TO_LOCK_ROW", Count: 1})
	out, err := c.UpsertCollectionReadBack(ctx, "Opportunity", "Referral_Identifier__c", []sfclient.Record{opp("ref-x", "X")}, soql)
	if err != nil || !out.Results[0].Success || len(out.Records) != 1 {
		t.Fatalf("upsert = %+v, %v; want success after a retry", out, err)
	}
	if n := emu.Counters().Calls["composite"]; n != 2 {
		t.Fatalf("%d Composite calls, want 2", n)
	}

	// A write refused as a whole is an APIError with the subrequest's
	// status, not retried.
	emu.ResetCounters()
	_, err = c.UpsertCollectionReadBack(ctx, "Opportunity", "No_Such_Field__c", []sfclient.Record{{"No_Such_Field__c": "x", "Name": "X"}}, soql)
	var ae *sfclient.APIError
	if !errors.As(err, &ae) || ae.Status/100 != 4 || ae.Temporary() {
		t.Fatalf("err = %v, want a permanent 4xx APIError", err)
	}
	if n := emu.Counters().Calls["composite"]; n != 1 {
		t.Fatalf("%d Composite calls, want 1 (not retried)", n)
	}
}
