package salesforce

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureDevKeyPairCreatesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	certPath, keyPath, err := EnsureDevKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(keyPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", info, err)
	}
	first, _ := os.ReadFile(keyPath)
	if _, _, err := EnsureDevKeyPair(dir); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(keyPath)
	if !bytes.Equal(first, second) {
		t.Fatal("an existing dev key pair must be reused, not replaced")
	}
	certs, err := LoadCertificates(certPath)
	if err != nil || len(certs) != 1 {
		t.Fatalf("LoadCertificates: %v %v", certs, err)
	}
	if _, err := LoadCertificates(keyPath); err == nil {
		t.Fatal("a file without certificates must be rejected")
	}
	if _, err := LoadCertificates(filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("a missing file must be rejected")
	}
}

func TestNotCreateableObjectsAndIDPaths(t *testing.T) {
	h := newHarness(t)
	h.expectError(http.MethodPost, v+"/sobjects/User", map[string]any{}, 400, "INVALID_TYPE_FOR_OPERATION", "entity type User does not support insert")
	h.expectError(http.MethodDelete, v+"/sobjects/User/"+h.srv.SellerUserID(), nil, 400, "INVALID_TYPE_FOR_OPERATION", "entity type User does not support delete")
	if u := h.get("User", h.srv.SellerUserID()); u["Username"] != DefaultSellerName || u["IsActive"] != true {
		t.Fatalf("seller user %v", u)
	}
	h.expectError(http.MethodPost, v+"/sobjects/Opportunity/Name", newOpp(nil), 405, "METHOD_NOT_ALLOWED", "")
	h.expectError(http.MethodDelete, v+"/sobjects/Opportunity/006abc", nil, 400, "MALFORMED_ID", "")
	// _HttpMethod lets POST stand in for PATCH.
	id := h.create("Opportunity", newOpp(nil))
	h.expect(http.MethodPost, v+"/sobjects/Opportunity/"+id+"?_HttpMethod=PATCH", map[string]any{"NextStep": "override"}, 204, nil)
	if h.get("Opportunity", id)["NextStep"] != "override" {
		t.Fatal("_HttpMethod=PATCH not applied")
	}
	// "OAuth <token>" is accepted like "Bearer <token>".
	resp, _ := h.doToken("", http.MethodGet, v+"/limits", nil, "Authorization", "OAuth "+h.token)
	if resp.StatusCode != 200 {
		t.Fatalf("OAuth scheme: %d", resp.StatusCode)
	}
}

func TestCompositeAllOrNoneCommits(t *testing.T) {
	h := newHarness(t)
	var res compositeResp
	h.expect(http.MethodPost, v+"/composite", map[string]any{"allOrNone": true, "compositeRequest": []any{
		map[string]any{"method": "POST", "url": v + "/sobjects/Account", "referenceId": "acct", "body": map[string]any{"Name": "Kept"}},
		map[string]any{"method": "POST", "url": v + "/composite/sobjects", "referenceId": "opps", "body": map[string]any{"allOrNone": true, "records": []any{
			typed("Opportunity", newOpp(map[string]any{"AccountId": "@{acct.id}", "Amount": 1})),
			typed("Opportunity", newOpp(map[string]any{"AccountId": "@{acct.id}", "Amount": 2})),
		}}},
		map[string]any{"method": "GET", "url": v + "/query?q=SELECT+Id,Amount+FROM+Opportunity+WHERE+AccountId='@{acct.id}'+ORDER+BY+Amount", "referenceId": "q"},
		map[string]any{"method": "PATCH", "url": v + "/sobjects/Opportunity/@{opps[1].id}", "referenceId": "upd", "body": map[string]any{"Amount": "@{q.totalSize}"}},
		map[string]any{"method": "DELETE", "url": v + "/sobjects/Opportunity/@{q.records[0].Id}", "referenceId": "del"},
	}}, 200, &res)
	for _, r := range res.CompositeResponse {
		if r.HTTPStatusCode >= 300 {
			t.Fatalf("%s: %d %s", r.ReferenceID, r.HTTPStatusCode, r.Body)
		}
	}
	if string(res.CompositeResponse[3].Body) != "null" || res.CompositeResponse[3].HTTPStatusCode != 204 {
		t.Fatalf("204 subresponse %+v", res.CompositeResponse[3])
	}
	if n := h.count("SELECT COUNT() FROM Opportunity"); n != 1 {
		t.Fatalf("committed opportunities %d", n)
	}
	var got queryResult
	h.expect(http.MethodGet, q("SELECT Amount FROM Opportunity"), nil, 200, &got)
	if got.Records[0]["Amount"] != 2.0 {
		t.Fatalf("typed reference: Amount %v", got.Records[0]["Amount"])
	}
}
