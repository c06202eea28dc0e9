package pcclient_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
)

func createBody(extRef string) []byte {
	return []byte(`{"name":"Contoso","type":"Independent","externalReferenceId":"` + extRef +
		`","customerProfile":{"name":"Contoso","address":{"country":"US"}},"consent":{},"details":{"dealValue":10}}`)
}

func TestCreateReferral(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	ref, err := c.CreateReferral(context.Background(), createBody("006A"), "006A")
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID == "" || ref.ETag == "" || ref.ExternalReferenceID != "006A" || ref.CreatedAt.IsZero() || ref.UpdatedAt.IsZero() {
		t.Errorf("created %+v", ref)
	}
}

// A create is never repeated by the client: after a server error, the
// referral may exist and only a lookup can tell.
func TestCreateIsNotRetriedAfterAServerError(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	emu.AddFault(pcemutest.Fault{Endpoint: "referrals.create", Kind: "500", Count: 1})
	_, err := c.CreateReferral(context.Background(), createBody("006A"), "006A")
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError {
		t.Fatalf("err = %v, want the 500", err)
	}
	if n := emu.Counters()["referrals.create"]; n != 1 {
		t.Errorf("referrals.create called %d times, want 1", n)
	}

	// Throttling is different: Partner Center did nothing, so the client
	// waits and sends it again.
	emu.ResetCounters()
	emu.AddFault(pcemutest.Fault{Endpoint: "referrals.create", Kind: "429", Count: 1, RetryAfter: 1})
	if _, err := c.CreateReferral(context.Background(), createBody("006B"), "006B"); err != nil {
		t.Fatal(err)
	}
	if n := emu.Counters()["referrals.create"]; n != 2 {
		t.Errorf("referrals.create called %d times after a 429, want 2", n)
	}
}

func TestFindByExternalReference(t *testing.T) {
	emu := pcemutest.Start(t, "-page-size", "2")
	c := newClient(t, emu, nil)
	ctx := context.Background()
	for _, id := range []string{"006A", "006B", "it's", "006A"} {
		if _, err := c.CreateReferral(ctx, createBody(id), id); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct createdDateTime
	}
	emu.SeedInbound("no external reference", true)

	found, err := c.FindByExternalReference(ctx, "006A")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || !found[0].CreatedAt.Before(found[1].CreatedAt) {
		t.Errorf("006A: %+v, want two, oldest first", found)
	}
	if found, err := c.FindByExternalReference(ctx, "it's"); err != nil || len(found) != 1 {
		t.Errorf("it's: %v, %v", found, err)
	}
	if found, err := c.FindByExternalReference(ctx, "006C"); err != nil || len(found) != 0 {
		t.Errorf("006C: %v, %v", found, err)
	}
}

func TestPatchReferral(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	ctx := context.Background()
	ref, err := c.CreateReferral(ctx, createBody("006A"), "006A")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.PatchReferral(ctx, ref.ID, []byte(`[{"op":"replace","path":"/details/dealValue","value":20}]`), ref.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Full || out.Status != http.StatusOK || out.Referral.ETag == ref.ETag || out.Referral.ID != ref.ID {
		t.Errorf("patch answered %+v", out)
	}

	// The old eTag is stale now.
	_, err = c.PatchReferral(ctx, ref.ID, []byte(`[{"op":"replace","path":"/details/dealValue","value":30}]`), ref.ETag)
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusPreconditionFailed || ae.Code != "preconditionFailed" {
		t.Fatalf("stale eTag: %v", err)
	}
}

// A patch that appends is not repeated blindly after a server error
// unless it is conditional; one that only replaces is.
func TestPatchRetriesOnlyWhenRepeatingIsHarmless(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	ctx := context.Background()
	ref, err := c.CreateReferral(ctx, createBody("006A"), "006A")
	if err != nil {
		t.Fatal(err)
	}
	appendOp := []byte(`[{"op":"add","path":"/team/-","value":{"firstName":"Jane","lastName":"Doe","email":"jane@contoso.com"}}]`)
	replaceOp := []byte(`[{"op":"replace","path":"/name","value":"x"}]`)
	for _, tc := range []struct {
		name    string
		ops     []byte
		ifMatch bool
		calls   int
	}{
		{"append, unconditional", appendOp, false, 1},
		{"append, conditional", appendOp, true, 2},
		{"replace, unconditional", replaceOp, false, 2},
	} {
		current, err := c.GetReferral(ctx, ref.ID)
		if err != nil {
			t.Fatal(err)
		}
		ifMatch := ""
		if tc.ifMatch {
			ifMatch = current.ETag
		}
		emu.ResetCounters()
		emu.AddFault(pcemutest.Fault{Endpoint: "referrals.patch", Kind: "500", Count: 1})
		_, err = c.PatchReferral(ctx, ref.ID, tc.ops, ifMatch)
		if n := emu.Counters()["referrals.patch"]; n != tc.calls {
			t.Errorf("%s: %d calls (err %v), want %d", tc.name, n, err, tc.calls)
		}
		emu.ClearFaults()
	}
}
