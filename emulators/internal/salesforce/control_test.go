package salesforce

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// ctl calls the control API (no auth) and decodes the JSON answer.
func (h *harness) ctl(method, path string, body any, status int, out any) {
	h.t.Helper()
	resp, b := h.doToken("", method, "/_emulator"+path, body)
	if resp.StatusCode != status {
		h.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	if out != nil {
		mustUnmarshal(h.t, b, out)
	}
}

func TestLimitHeaderAndExhaustion(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.APILimit = 5 })
	for i := 1; i <= 5; i++ {
		resp, body := h.do(http.MethodGet, v+"/limits", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Sforce-Limit-Info") != fmt.Sprintf("api-usage=%d/5", i) {
			t.Fatalf("call %d: %d %q %s", i, resp.StatusCode, resp.Header.Get("Sforce-Limit-Info"), body)
		}
		var lim map[string]limitValue
		mustUnmarshal(t, body, &lim)
		if lim["DailyApiRequests"].Max != 5 || lim["DailyApiRequests"].Remaining != int64(5-i) {
			t.Fatalf("limits %v", lim["DailyApiRequests"])
		}
	}
	resp, body := h.do(http.MethodPost, v+"/sobjects/Account", map[string]any{"Name": "x"})
	if resp.StatusCode != 403 || strings.TrimSpace(string(body)) != `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]` || resp.Header.Get("Sforce-Limit-Info") != "api-usage=5/5" {
		t.Fatalf("over the limit: %d %q %s", resp.StatusCode, resp.Header.Get("Sforce-Limit-Info"), body)
	}
	// Rejected calls do not count; the token endpoint and versions still work.
	h.clientCredentials()
	var counters struct {
		Calls               map[string]int64
		CountedAgainstLimit map[string]int64
		APIUsage            map[string]int64
	}
	h.ctl(http.MethodGet, "/counters", nil, 200, &counters)
	if counters.Calls["limits"] != 5 || counters.Calls["sobject.create"] != 1 || counters.CountedAgainstLimit["sobject.create"] != 0 || counters.CountedAgainstLimit["limits"] != 5 || counters.APIUsage["used"] != 5 {
		t.Fatalf("counters %+v", counters)
	}
	// The window is a rolling 24 hours.
	h.clock.Advance(24*time.Hour + time.Minute)
	h.token = h.clientCredentials()
	if resp, _ := h.do(http.MethodGet, v+"/limits", nil); resp.StatusCode != 200 || resp.Header.Get("Sforce-Limit-Info") != "api-usage=1/5" {
		t.Fatalf("after 24h: %d %q", resp.StatusCode, resp.Header.Get("Sforce-Limit-Info"))
	}
	// The control API can set usage and the allocation.
	h.ctl(http.MethodPut, "/limits", map[string]any{"used": 99, "max": 100}, 200, nil)
	if resp, _ := h.do(http.MethodGet, v+"/limits", nil); resp.Header.Get("Sforce-Limit-Info") != "api-usage=100/100" {
		t.Fatalf("after set: %q", resp.Header.Get("Sforce-Limit-Info"))
	}
	h.expectError(http.MethodGet, v+"/limits", nil, 403, "REQUEST_LIMIT_EXCEEDED", "")
}

func TestFaults(t *testing.T) {
	h := newHarness(t)
	id := h.create("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "R-1"}))
	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "upsert", "kind": "503", "count": 1}, 201, nil)
	up := v + "/sobjects/Opportunity/Referral_Identifier__c/R-1"
	h.expectError(http.MethodPatch, up, map[string]any{"NextStep": "a"}, 503, "SERVER_UNAVAILABLE", "")
	h.expect(http.MethodPatch, up, map[string]any{"NextStep": "a"}, 200, nil)

	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "sobject.update", "kind": "UNABLE_TO_LOCK_ROW", "count": 1}, 201, nil)
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"NextStep": "b"}, 400, "UNABLE_TO_LOCK_ROW", "")
	if h.get("Opportunity", id)["NextStep"] != "a" {
		t.Fatal("a lock failure must not write")
	}
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"NextStep": "b"}, 204, nil)

	// Lock faults on collections fail every record and write nothing.
	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "composite.sobjects", "kind": "UNABLE_TO_LOCK_ROW", "count": 1}, 201, nil)
	var res []itemResult
	h.expect(http.MethodPatch, v+"/composite/sobjects/Opportunity/Referral_Identifier__c", map[string]any{"records": []any{
		typed("Opportunity", map[string]any{"Referral_Identifier__c": "R-1", "NextStep": "c"}),
	}}, 200, &res)
	if res[0].Success || res[0].Errors[0].StatusCode != "UNABLE_TO_LOCK_ROW" || h.get("Opportunity", id)["NextStep"] != "b" {
		t.Fatalf("collection lock fault %+v", res)
	}
	// On composite, the first write subrequest meets the lock.
	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "composite", "kind": "UNABLE_TO_LOCK_ROW", "count": 1}, 201, nil)
	var cres compositeResp
	h.expect(http.MethodPost, v+"/composite", map[string]any{"allOrNone": true, "compositeRequest": []any{
		map[string]any{"method": "GET", "url": v + "/sobjects/Opportunity/" + id, "referenceId": "read"},
		map[string]any{"method": "PATCH", "url": v + "/sobjects/Opportunity/" + id, "referenceId": "write", "body": map[string]any{"NextStep": "d"}},
	}}, 200, &cres)
	if cres.CompositeResponse[0].HTTPStatusCode != 400 || !strings.Contains(string(cres.CompositeResponse[1].Body), "UNABLE_TO_LOCK_ROW") {
		t.Fatalf("composite lock fault %+v", cres)
	}

	// Token expiry mid-pagination: the client re-authenticates and the
	// locator still works.
	h.seedOpps(250, nil)
	var page queryResult
	h.expect(http.MethodGet, q("SELECT Id FROM Opportunity"), nil, 200, &page, "Sforce-Query-Options", "batchSize=200")
	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "query.more", "kind": "expire-token", "count": 1}, 201, nil)
	h.expectError(http.MethodGet, page.NextRecordsURL, nil, 401, "INVALID_SESSION_ID", "Session expired or invalid")
	h.expectError(http.MethodGet, v+"/limits", nil, 401, "INVALID_SESSION_ID", "")
	h.token = h.clientCredentials()
	var rest queryResult
	h.expect(http.MethodGet, page.NextRecordsURL, nil, 200, &rest)
	if len(rest.Records) != 51 || !rest.Done {
		t.Fatalf("second page %d done=%v", len(rest.Records), rest.Done)
	}

	// Token endpoint faults, then recovery.
	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "token", "kind": "503", "count": 1}, 201, nil)
	resp, body := h.form("/services/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}})
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("token fault %d %s", resp.StatusCode, body)
	}
	h.clientCredentials()

	// Rate faults stay until removed; unknown kinds are refused.
	var f struct{ ID int }
	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "describe", "kind": "500", "rate": 1}, 201, &f)
	h.expectError(http.MethodGet, v+"/sobjects/Account/describe", nil, 500, "UNKNOWN_EXCEPTION", "")
	h.expectError(http.MethodGet, v+"/sobjects/Account/describe", nil, 500, "UNKNOWN_EXCEPTION", "")
	var list []map[string]any
	h.ctl(http.MethodGet, "/faults", nil, 200, &list)
	if len(list) != 1 || list[0]["fired"] != 2.0 {
		t.Fatalf("faults %v", list)
	}
	h.ctl(http.MethodDelete, fmt.Sprintf("/faults/%d", f.ID), nil, 204, nil)
	h.expect(http.MethodGet, v+"/sobjects/Account/describe", nil, 200, nil)
	h.ctl(http.MethodPost, "/faults", map[string]any{"kind": "teapot"}, 400, nil)
	h.ctl(http.MethodPost, "/faults", map[string]any{"endpoint": "query", "kind": "latency", "latency": "1ms"}, 201, nil)
	h.expect(http.MethodGet, q("SELECT Id FROM Account"), nil, 200, nil)
	h.ctl(http.MethodDelete, "/faults", nil, 204, nil)
}

func TestControlRecordsAsSeller(t *testing.T) {
	h := newHarness(t)
	seller, integ := h.srv.SellerUserID(), h.srv.IntegrationUserID()
	var users map[string]map[string]string
	h.ctl(http.MethodGet, "/users", nil, 200, &users)
	if users["seller"]["id"] != seller || users["integration"]["id"] != integ || users["integration"]["username"] != DefaultUsername {
		t.Fatalf("users %v", users)
	}
	var rec map[string]any
	h.ctl(http.MethodPost, "/records/Opportunity", newOpp(map[string]any{"Sync_with_Partner_Center__c": true}), 201, &rec)
	id := rec["Id"].(string)
	if rec["CreatedById"] != seller || rec["OwnerId"] != seller || rec["LastModifiedById"] != seller {
		t.Fatalf("seller create %v", rec)
	}
	// The integration user writes back; then the seller edits again.
	h.clock.Advance(time.Minute)
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"Referral_Identifier__c": "R-5"}, 204, nil)
	if got := h.get("Opportunity", id); got["LastModifiedById"] != integ || got["CreatedById"] != seller {
		t.Fatalf("after API write %v", got)
	}
	h.clock.Advance(time.Minute)
	h.ctl(http.MethodPatch, "/records/Opportunity/"+id, map[string]any{"StageName": "Closed Won"}, 200, &rec)
	if rec["LastModifiedById"] != seller || rec["IsWon"] != true || rec["SystemModstamp"] != "2026-03-01T12:02:00.000+0000" {
		t.Fatalf("seller edit %v", rec)
	}
	// Validation applies to the seller too, in Salesforce's error shape.
	resp, body := h.doToken("", http.MethodPatch, "/_emulator/records/Opportunity/"+id, map[string]any{"StageName": "Nope"})
	if resp.StatusCode != 400 || !strings.Contains(string(body), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") {
		t.Fatalf("seller validation %d %s", resp.StatusCode, body)
	}
	h.ctl(http.MethodPatch, "/records/Opportunity/"+id+"?as=integration", map[string]any{"NextStep": "x"}, 200, &rec)
	if rec["LastModifiedById"] != integ {
		t.Fatalf("?as=integration %v", rec["LastModifiedById"])
	}
	var list []map[string]any
	h.ctl(http.MethodGet, "/records/Opportunity", nil, 200, &list)
	if len(list) != 1 {
		t.Fatalf("list %v", list)
	}
	h.ctl(http.MethodGet, "/records/Opportunity/"+id, nil, 200, &rec)
	h.ctl(http.MethodDelete, "/records/Opportunity/"+id, nil, 204, nil)
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/"+id, nil, 404, "ENTITY_IS_DELETED", "")
	h.ctl(http.MethodPost, "/records/Nope", map[string]any{}, 404, nil)

	var state struct {
		Records  map[string][]map[string]any
		APIUsage map[string]int64
		Sessions int
	}
	h.ctl(http.MethodGet, "/state", nil, 200, &state)
	if len(state.Records["Opportunity"]) != 1 || state.Records["Opportunity"][0]["IsDeleted"] != true || len(state.Records["User"]) != 2 || state.Sessions != 1 {
		t.Fatalf("state %+v", state)
	}
	h.ctl(http.MethodPost, "/reset", nil, 204, nil)
	h.ctl(http.MethodGet, "/state", nil, 200, &state)
	if len(state.Records["Opportunity"]) != 0 || len(state.Records["User"]) != 2 || state.APIUsage["used"] != 0 {
		t.Fatalf("after reset %+v", state)
	}
	// Sessions survive a reset.
	h.expect(http.MethodGet, v+"/limits", nil, 200, nil)
}

func TestControlTokensAndClock(t *testing.T) {
	h := newHarness(t)
	var n map[string]int
	h.ctl(http.MethodPost, "/tokens/expire", map[string]string{"token": h.token}, 200, &n)
	if n["sessions"] != 1 {
		t.Fatalf("expire %v", n)
	}
	h.expectError(http.MethodGet, v+"/limits", nil, 401, "INVALID_SESSION_ID", "")
	h.token = h.clientCredentials()
	h.ctl(http.MethodPost, "/tokens/revoke", nil, 200, &n)
	h.expectError(http.MethodGet, v+"/limits", nil, 401, "INVALID_SESSION_ID", "")

	h.token = h.clientCredentials()
	var clk map[string]string
	h.ctl(http.MethodPost, "/clock", map[string]string{"advance": "3h"}, 200, &clk)
	if clk["now"] != "2026-03-01T15:00:00.000+0000" {
		t.Fatalf("clock %v", clk)
	}
	// Three idle hours exceed the two-hour session timeout.
	h.expectError(http.MethodGet, v+"/limits", nil, 401, "INVALID_SESSION_ID", "")
	h.ctl(http.MethodPost, "/clock", map[string]string{"advance": "-1h"}, 400, nil)
}

func TestUpdatedAndDeleted(t *testing.T) {
	h := newHarness(t)
	t0 := h.clock.Now() // 12:00
	a := h.create("Opportunity", newOpp(nil))
	h.clock.Advance(90 * time.Second) // 12:01:30
	b := h.create("Opportunity", newOpp(nil))
	h.clock.Advance(2 * time.Minute) // 12:03:30
	h.expect(http.MethodDelete, v+"/sobjects/Opportunity/"+a, nil, 204, nil)
	h.clock.Advance(2 * time.Minute) // 12:05:30

	iso := func(t time.Time) string { return url.QueryEscape(t.Format("2006-01-02T15:04:05-07:00")) }
	var upd struct {
		IDs               []string `json:"ids"`
		LatestDateCovered string   `json:"latestDateCovered"`
	}
	h.expect(http.MethodGet, v+"/sobjects/Opportunity/updated/?start="+iso(t0)+"&end="+iso(t0.Add(time.Hour)), nil, 200, &upd)
	if len(upd.IDs) != 1 || upd.IDs[0] != b || upd.LatestDateCovered != "2026-03-01T12:05:00.000+0000" {
		t.Fatalf("updated %+v", upd)
	}
	// Seconds are ignored: a window ending 12:01:59 stops at 12:01.
	h.expect(http.MethodGet, v+"/sobjects/Opportunity/updated?start="+iso(t0)+"&end="+iso(t0.Add(119*time.Second)), nil, 200, &upd)
	if len(upd.IDs) != 0 || upd.LatestDateCovered != "2026-03-01T12:01:00.000+0000" {
		t.Fatalf("minute window %+v", upd)
	}
	var del struct {
		DeletedRecords []struct {
			ID          string `json:"id"`
			DeletedDate string `json:"deletedDate"`
		} `json:"deletedRecords"`
		EarliestDateAvailable string `json:"earliestDateAvailable"`
		LatestDateCovered     string `json:"latestDateCovered"`
	}
	h.expect(http.MethodGet, v+"/sobjects/Opportunity/deleted/?start="+iso(t0)+"&end="+iso(t0.Add(time.Hour)), nil, 200, &del)
	if len(del.DeletedRecords) != 1 || del.DeletedRecords[0].ID != a || del.DeletedRecords[0].DeletedDate != "2026-03-01T12:03:30.000+0000" ||
		del.EarliestDateAvailable != "2026-03-01T12:00:00.000+0000" || del.LatestDateCovered != "2026-03-01T12:05:00.000+0000" {
		t.Fatalf("deleted %+v", del)
	}
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/updated?start="+iso(t0)+"&end="+iso(t0.Add(30*time.Second)), nil, 400, "INVALID_REPLICATION_DATE", "")
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/updated?start="+iso(t0.Add(-31*24*time.Hour))+"&end="+iso(t0), nil, 400, "INVALID_REPLICATION_DATE", "")
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/deleted?start="+iso(t0.Add(-16*24*time.Hour))+"&end="+iso(t0), nil, 400, "INVALID_REPLICATION_DATE", "")
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/deleted?start="+iso(t0), nil, 400, "MISSING_ARGUMENT", "")
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/updated?start=yesterday&end=today", nil, 400, "INVALID_REPLICATION_DATE", "")
}
