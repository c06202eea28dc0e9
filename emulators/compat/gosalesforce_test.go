package compat_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	gosf "github.com/k-capehart/go-salesforce/v3"

	"github.com/cosell/cosell/emulators/internal/salesforce"
)

// pageSize is the emulator's MaxPageSize in these tests, so that a query of a
// dozen records needs several locator pages.
const pageSize = 5

// emulator is one in-process Salesforce emulator behind a real HTTP server.
type emulator struct {
	t   *testing.T
	url string
}

// startEmulator starts the emulator with the dev credentials and a small
// query page size.
func startEmulator(t *testing.T) *emulator {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	srv, err := salesforce.New(salesforce.Config{
		PublicURL:   "http://" + ts.Listener.Addr().String(),
		MaxPageSize: pageSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		_ = srv.Close()
	})
	return &emulator{t: t, url: ts.URL}
}

// control calls the emulator's control API and decodes a JSON answer into
// out (when non-nil).
func (e *emulator) control(method, path, body string, out any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+"/_emulator/"+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		e.t.Fatalf("control %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("control %s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// calls returns the emulator's per-endpoint call counters.
func (e *emulator) calls() map[string]int {
	e.t.Helper()
	var c struct {
		Calls map[string]int `json:"calls"`
	}
	e.control(http.MethodGet, "counters", "", &c)
	return c.Calls
}

// login authenticates the client with the client credentials flow, as an
// application configured with a My Domain URL, consumer key and secret does.
func login(t *testing.T, e *emulator) *gosf.Salesforce {
	t.Helper()
	sf, err := gosf.Init(gosf.Creds{
		Domain:         e.url,
		ConsumerKey:    salesforce.DefaultClientID,
		ConsumerSecret: salesforce.DefaultClientSecret,
	})
	if err != nil {
		t.Fatalf("client credentials login: %v", err)
	}
	return sf
}

// opportunity is how an application maps Opportunity rows with the client's
// struct tags; omitempty keeps unset fields out of write bodies.
type opportunity struct {
	ID          string  `salesforce:"Id,omitempty"`
	Name        string  `salesforce:"Name,omitempty"`
	StageName   string  `salesforce:"StageName,omitempty"`
	CloseDate   string  `salesforce:"CloseDate,omitempty"`
	Amount      float64 `salesforce:"Amount,omitempty"`
	NextStep    string  `salesforce:"NextStep,omitempty"`
	IsWon       bool    `salesforce:"IsWon,omitempty"`
	ReferralID  string  `salesforce:"Referral_Identifier__c,omitempty"`
	Probability float64 `salesforce:"Probability,omitempty"`
}

// getOpportunity reads one record with a raw REST GET through the client,
// as applications do for calls the client has no method for.
func getOpportunity(t *testing.T, sf *gosf.Salesforce, id string) map[string]any {
	t.Helper()
	resp, err := sf.DoRequest(http.MethodGet, "/sobjects/Opportunity/"+id, nil)
	if err != nil {
		t.Fatalf("GET Opportunity %s: %v", id, err)
	}
	defer resp.Body.Close()
	var rec map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// queryRefs queries the Opportunities whose Referral ID starts with prefix,
// ordered by Referral ID.
func queryRefs(t *testing.T, sf *gosf.Salesforce, prefix string) []opportunity {
	t.Helper()
	var opps []opportunity
	q := "SELECT Id, Name, StageName, Amount, IsWon, Referral_Identifier__c FROM Opportunity " +
		"WHERE Referral_Identifier__c LIKE '" + prefix + "%' ORDER BY Referral_Identifier__c"
	if err := sf.Query(q, &opps); err != nil {
		t.Fatalf("query %q: %v", prefix, err)
	}
	return opps
}

// checkResults fails unless every collection or composite item succeeded
// with an Opportunity id; it returns the ids.
func checkResults(t *testing.T, what string, res gosf.SalesforceResults, err error, n int) []string {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if res.HasSalesforceErrors || len(res.Results) != n {
		t.Fatalf("%s: %d results (want %d), errors %v: %+v", what, len(res.Results), n, res.HasSalesforceErrors, res.Results)
	}
	ids := make([]string, n)
	for i, r := range res.Results {
		if !r.Success || !strings.HasPrefix(r.Id, "006") || len(r.Id) != 18 {
			t.Fatalf("%s: item %d = %+v", what, i, r)
		}
		ids[i] = r.Id
	}
	return ids
}

// TestGoSalesforceClient drives github.com/k-capehart/go-salesforce/v3,
// unchanged, against the emulator: client-credentials login, describe,
// create, read, update, upsert by External ID, paged SOQL, sObject
// Collections, Composite, delete, Salesforce errors and session refresh.
func TestGoSalesforceClient(t *testing.T) {
	e := startEmulator(t)
	sf := login(t, e)
	if sf.AuthFlow != gosf.AuthFlowClientCredentials || sf.GetInstanceUrl() != e.url || sf.GetAccessToken() == "" {
		t.Fatalf("login: flow %v, instance %q", sf.AuthFlow, sf.GetInstanceUrl())
	}

	t.Run("describe", func(t *testing.T) {
		resp, err := sf.DoRequest(http.MethodGet, "/sobjects/Opportunity/describe", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Sforce-Limit-Info"), "api-usage=") {
			t.Errorf("Sforce-Limit-Info = %q", resp.Header.Get("Sforce-Limit-Info"))
		}
		var d struct {
			Name   string `json:"name"`
			Fields []struct {
				Name           string `json:"name"`
				Type           string `json:"type"`
				ExternalID     bool   `json:"externalId"`
				PicklistValues []struct {
					Value string `json:"value"`
				} `json:"picklistValues"`
			} `json:"fields"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
		var extID, prospecting bool
		for _, f := range d.Fields {
			switch f.Name {
			case "Referral_Identifier__c":
				extID = f.ExternalID
			case "StageName":
				prospecting = slices.ContainsFunc(f.PicklistValues, func(p struct {
					Value string `json:"value"`
				}) bool {
					return p.Value == "Prospecting"
				})
			}
		}
		if d.Name != "Opportunity" || !extID || !prospecting {
			t.Fatalf("describe: name %q, Referral_Identifier__c external ID %v, Prospecting stage %v", d.Name, extID, prospecting)
		}
	})

	t.Run("single records", func(t *testing.T) {
		res, err := sf.InsertOne("Opportunity", opportunity{
			Name: "Contoso expansion", StageName: "Prospecting", CloseDate: "2026-06-30", Amount: 1200.5,
		})
		if err != nil || !res.Success || !strings.HasPrefix(res.Id, "006") {
			t.Fatalf("InsertOne: %+v, %v", res, err)
		}
		id := res.Id
		rec := getOpportunity(t, sf, id)
		if rec["Name"] != "Contoso expansion" || rec["Amount"] != 1200.5 || rec["IsClosed"] != false || rec["CloseDate"] != "2026-06-30" {
			t.Fatalf("created record %v", rec)
		}

		if err := sf.UpdateOne("Opportunity", map[string]any{"Id": id, "StageName": "Closed Won", "Amount": 2500}); err != nil {
			t.Fatalf("UpdateOne: %v", err)
		}
		rec = getOpportunity(t, sf, id)
		if rec["StageName"] != "Closed Won" || rec["IsWon"] != true || rec["Amount"] != 2500.0 || rec["Probability"] != 100.0 {
			t.Fatalf("updated record %v", rec)
		}

		// Salesforce's error array reaches the caller.
		_, err = sf.InsertOne("Opportunity", opportunity{Name: "x", StageName: "No such stage", CloseDate: "2026-06-30"})
		if err == nil || !strings.Contains(err.Error(), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") {
			t.Fatalf("InsertOne with a bad stage: %v", err)
		}

		if err := sf.DeleteOne("Opportunity", map[string]any{"Id": id}); err != nil {
			t.Fatalf("DeleteOne: %v", err)
		}
		_, err = sf.DoRequest(http.MethodGet, "/sobjects/Opportunity/"+id, nil)
		if err == nil || !strings.Contains(err.Error(), "ENTITY_IS_DELETED") {
			t.Fatalf("GET after delete: %v", err)
		}
	})

	t.Run("upsert by external ID", func(t *testing.T) {
		res, err := sf.UpsertOne("Opportunity", "Referral_Identifier__c", opportunity{
			ReferralID: "COMPAT-U-1", Name: "Fabrikam", StageName: "Qualification", CloseDate: "2026-09-30", Amount: 10,
		})
		if err != nil || !res.Success || !strings.HasPrefix(res.Id, "006") {
			t.Fatalf("UpsertOne (insert): %+v, %v", res, err)
		}
		id := res.Id
		res, err = sf.UpsertOne("Opportunity", "Referral_Identifier__c", map[string]any{
			"Referral_Identifier__c": "COMPAT-U-1", "NextStep": "Joint call", "Amount": 20,
		})
		if err != nil || !res.Success || res.Id != id {
			t.Fatalf("UpsertOne (update): %+v, %v (want id %s)", res, err, id)
		}
		opps := queryRefs(t, sf, "COMPAT-U-")
		if len(opps) != 1 || opps[0].ID != id || opps[0].Amount != 20 || opps[0].StageName != "Qualification" {
			t.Fatalf("after upserts: %+v", opps)
		}
		if rec := getOpportunity(t, sf, id); rec["NextStep"] != "Joint call" || rec["Name"] != "Fabrikam" {
			t.Fatalf("upserted record %v", rec)
		}
	})

	t.Run("collections and paged query", func(t *testing.T) {
		const n = 12
		recs := make([]opportunity, n)
		for i := range recs {
			recs[i] = opportunity{
				Name: fmt.Sprintf("Collection %02d", i), StageName: "Prospecting", CloseDate: "2026-12-31",
				Amount: float64(100 * (i + 1)), ReferralID: fmt.Sprintf("COMPAT-C-%02d", i),
			}
		}
		before := e.calls()
		res, err := sf.InsertCollection("Opportunity", recs, pageSize)
		ids := checkResults(t, "InsertCollection", res, err, n)
		after := e.calls()
		if got := after["composite.sobjects"] - before["composite.sobjects"]; got != 3 {
			t.Errorf("InsertCollection of %d in batches of %d made %d collection calls, want 3", n, pageSize, got)
		}

		opps := queryRefs(t, sf, "COMPAT-C-")
		if len(opps) != n {
			t.Fatalf("paged query: %d records, want %d: %+v", len(opps), n, opps)
		}
		for i, o := range opps {
			if o.ID != ids[i] || o.ReferralID != fmt.Sprintf("COMPAT-C-%02d", i) || o.Amount != float64(100*(i+1)) {
				t.Fatalf("paged query row %d = %+v (want id %s)", i, o, ids[i])
			}
		}
		// 12 rows in pages of 5: the first page and two locator pages.
		if got := e.calls()["query.more"] - after["query.more"]; got != 2 {
			t.Errorf("paged query fetched %d locator pages, want 2", got)
		}

		updates := make([]map[string]any, n)
		for i, id := range ids {
			updates[i] = map[string]any{"Id": id, "StageName": "Negotiation/Review"}
		}
		res, err = sf.UpdateCollection("Opportunity", updates, 200)
		checkResults(t, "UpdateCollection", res, err, n)

		// Upsert two existing rows and one new one.
		res, err = sf.UpsertCollection("Opportunity", "Referral_Identifier__c", []map[string]any{
			{"Referral_Identifier__c": "COMPAT-C-00", "Amount": 1},
			{"Referral_Identifier__c": "COMPAT-C-11", "Amount": 2},
			{"Referral_Identifier__c": "COMPAT-C-12", "Name": "Collection 12", "StageName": "Prospecting", "CloseDate": "2026-12-31", "Amount": 3},
		}, 200)
		upserted := checkResults(t, "UpsertCollection", res, err, 3)
		if upserted[0] != ids[0] || upserted[1] != ids[11] || slices.Contains(ids, upserted[2]) {
			t.Fatalf("UpsertCollection ids %v, inserted ids %v", upserted, ids)
		}
		opps = queryRefs(t, sf, "COMPAT-C-")
		if len(opps) != n+1 || opps[0].Amount != 1 || opps[11].Amount != 2 || opps[12].Amount != 3 ||
			opps[5].StageName != "Negotiation/Review" || opps[12].StageName != "Prospecting" {
			t.Fatalf("after update and upsert collections: %+v", opps)
		}

		// A failing item is reported per record, the others are written.
		res, err = sf.InsertCollection("Opportunity", []opportunity{
			{Name: "Good", StageName: "Prospecting", CloseDate: "2026-12-31", ReferralID: "COMPAT-C-13"},
			{Name: "Duplicate", StageName: "Prospecting", CloseDate: "2026-12-31", ReferralID: "COMPAT-C-00"},
		}, 200)
		if err != nil || !res.HasSalesforceErrors || len(res.Results) != 2 || !res.Results[0].Success ||
			res.Results[1].Success || len(res.Results[1].Errors) != 1 || res.Results[1].Errors[0].StatusCode != "DUPLICATE_VALUE" {
			t.Fatalf("InsertCollection with a duplicate: %+v, %v", res, err)
		}
		ids = append(ids, upserted[2], res.Results[0].Id)

		del := make([]map[string]any, len(ids))
		for i, id := range ids {
			del[i] = map[string]any{"Id": id}
		}
		res, err = sf.DeleteCollection("Opportunity", del, pageSize)
		checkResults(t, "DeleteCollection", res, err, len(ids))
		if opps := queryRefs(t, sf, "COMPAT-C-"); len(opps) != 0 {
			t.Fatalf("after DeleteCollection: %+v", opps)
		}
	})

	t.Run("composite", func(t *testing.T) {
		recs := make([]map[string]any, 7)
		for i := range recs {
			recs[i] = map[string]any{
				"Name": fmt.Sprintf("Composite %d", i), "StageName": "Prospecting", "CloseDate": "2027-01-31",
				"Referral_Identifier__c": fmt.Sprintf("COMPAT-K-%d", i),
			}
		}
		res, err := sf.InsertComposite("Opportunity", recs, 3, true)
		ids := checkResults(t, "InsertComposite", res, err, 7)

		updates := make([]map[string]any, len(ids))
		for i, id := range ids {
			updates[i] = map[string]any{"Id": id, "Amount": 50 * (i + 1)}
		}
		res, err = sf.UpdateComposite("Opportunity", updates, 3, true)
		checkResults(t, "UpdateComposite", res, err, 7)

		res, err = sf.UpsertComposite("Opportunity", "Referral_Identifier__c", []map[string]any{
			{"Referral_Identifier__c": "COMPAT-K-0", "StageName": "Closed Won"},
			{"Referral_Identifier__c": "COMPAT-K-7", "Name": "Composite 7", "StageName": "Prospecting", "CloseDate": "2027-01-31"},
		}, 1, true)
		upserted := checkResults(t, "UpsertComposite", res, err, 2)
		if upserted[0] != ids[0] || slices.Contains(ids, upserted[1]) {
			t.Fatalf("UpsertComposite ids %v, inserted %v", upserted, ids)
		}
		opps := queryRefs(t, sf, "COMPAT-K-")
		if len(opps) != 8 || !opps[0].IsWon || opps[0].Amount != 50 || opps[6].Amount != 350 || opps[7].ID != upserted[1] {
			t.Fatalf("after composite writes: %+v", opps)
		}

		del := make([]map[string]any, 0, 8)
		for _, o := range opps {
			del = append(del, map[string]any{"Id": o.ID})
		}
		res, err = sf.DeleteComposite("Opportunity", del, 4, true)
		checkResults(t, "DeleteComposite", res, err, 8)
		if opps := queryRefs(t, sf, "COMPAT-K-"); len(opps) != 0 {
			t.Fatalf("after DeleteComposite: %+v", opps)
		}
	})

	t.Run("session refresh", func(t *testing.T) {
		old := sf.GetAccessToken()
		var exp struct {
			Sessions int `json:"sessions"`
		}
		e.control(http.MethodPost, "tokens/expire", "", &exp)
		if exp.Sessions < 1 {
			t.Fatalf("expired %d sessions", exp.Sessions)
		}
		// The client answers INVALID_SESSION_ID by logging in again with
		// the client credentials and retrying once.
		opps := queryRefs(t, sf, "COMPAT-U-")
		if len(opps) != 1 || sf.GetAccessToken() == old {
			t.Fatalf("after expiry: %+v, token renewed %v", opps, sf.GetAccessToken() != old)
		}
	})
}

// TestGoSalesforceClientGzip drives the client with WithCompressionHeaders,
// which gzips every request body (Content-Encoding: gzip) and asks for gzip
// responses (Accept-Encoding: gzip), as Salesforce supports (reference §2.1).
func TestGoSalesforceClientGzip(t *testing.T) {
	e := startEmulator(t)
	sf, err := gosf.Init(gosf.Creds{
		Domain:         e.url,
		ConsumerKey:    salesforce.DefaultClientID,
		ConsumerSecret: salesforce.DefaultClientSecret,
	}, gosf.WithCompressionHeaders(true))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	res, err := sf.InsertOne("Opportunity", opportunity{
		Name: "Gzip", StageName: "Prospecting", CloseDate: "2026-06-30", Amount: 7, ReferralID: "COMPAT-Z-0",
	})
	if err != nil || !res.Success {
		t.Fatalf("gzip InsertOne: %+v, %v", res, err)
	}
	id := res.Id
	if err := sf.UpdateOne("Opportunity", map[string]any{"Id": id, "NextStep": "compressed"}); err != nil {
		t.Fatalf("gzip UpdateOne: %v", err)
	}
	up, err := sf.UpsertOne("Opportunity", "Referral_Identifier__c", map[string]any{"Referral_Identifier__c": "COMPAT-Z-0", "Amount": 8})
	if err != nil || !up.Success || up.Id != id {
		t.Fatalf("gzip UpsertOne: %+v, %v (want id %s)", up, err, id)
	}
	recs := make([]opportunity, 2*pageSize+1)
	for i := range recs {
		recs[i] = opportunity{Name: "Gzip", StageName: "Prospecting", CloseDate: "2026-06-30", ReferralID: fmt.Sprintf("COMPAT-Z-%02d", i+1)}
	}
	cres, err := sf.InsertCollection("Opportunity", recs, 200)
	checkResults(t, "gzip InsertCollection", cres, err, len(recs))
	opps := queryRefs(t, sf, "COMPAT-Z-")
	if len(opps) != len(recs)+1 || opps[0].ID != id || opps[0].Amount != 8 {
		t.Fatalf("gzip paged query: %d rows: %+v", len(opps), opps)
	}
	if rec := getOpportunity(t, sf, id); rec["NextStep"] != "compressed" {
		t.Fatalf("gzip GET: %v", rec)
	}
	// A large response comes back gzipped and the client decodes it.
	resp, err := sf.DoRequest(http.MethodGet, "/sobjects/Opportunity/describe", nil)
	if err != nil {
		t.Fatalf("gzip describe: %v", err)
	}
	defer resp.Body.Close()
	var d struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.Name != "Opportunity" || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip describe: name %q, Content-Encoding %q, %v", d.Name, resp.Header.Get("Content-Encoding"), err)
	}
	if err := sf.DeleteOne("Opportunity", map[string]any{"Id": id}); err != nil {
		t.Fatalf("gzip DeleteOne: %v", err)
	}
}

// TestGoSalesforceClientBadCredentials checks that a wrong consumer secret
// fails the client's login instead of yielding a session.
func TestGoSalesforceClientBadCredentials(t *testing.T) {
	e := startEmulator(t)
	sf, err := gosf.Init(gosf.Creds{Domain: e.url, ConsumerKey: salesforce.DefaultClientID, ConsumerSecret: "wrong"})
	if err == nil || sf != nil || !strings.Contains(err.Error(), "failed authentication") {
		t.Fatalf("Init with a wrong secret: %v, %v", sf, err)
	}
}
