package salesforce

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkUpsertOpportunityByExternalID measures the adapter's hot call,
// PATCH …/sobjects/Opportunity/Referral_Identifier__c/{id}, over real
// loopback HTTP with keep-alive connections from parallel clients. Keys
// cycle through 1,000 referrals, so after warm-up most calls update (200)
// and the first round creates (201).
func BenchmarkUpsertOpportunityByExternalID(b *testing.B) {
	ts, tok := newBenchServer(b)

	transport := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	body := []byte(`{"Name":"Contoso expansion","StageName":"Qualification","CloseDate":"2026-06-30","Amount":125000,"CurrencyIsoCode":"EUR","Description":"Inbound co-sell referral","Sync_with_Partner_Center__c":true}`)
	var seq atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1) % 1000
			req, _ := http.NewRequest(http.MethodPatch, fmt.Sprintf("%s%s/sobjects/Opportunity/Referral_Identifier__c/REF-%04d", ts.URL, v, n), bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkQueryByExternalIDs measures the adapter's read-back after a
// batch of upserts, SELECT Id, SystemModstamp FROM Opportunity WHERE
// Referral_Identifier__c IN (20 keys), over loopback HTTP against 5,000
// opportunities. Each call asks for a different 20 keys.
func BenchmarkQueryByExternalIDs(b *testing.B) {
	const records, perQuery = 5000, 20
	ts, tok := newBenchServer(b)
	client := ts.Client()
	send := func(method, path string, body []byte) []byte {
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%s %s: status %d, %v: %s", method, path, resp.StatusCode, err, out)
		}
		return out
	}
	for start := 0; start < records; start += maxCollection {
		var recs []map[string]any
		for i := start; i < start+maxCollection; i++ {
			recs = append(recs, newOpp(map[string]any{"attributes": map[string]any{"type": "Opportunity"},
				"Referral_Identifier__c": fmt.Sprintf("REF-%05d", i)}))
		}
		body, err := json.Marshal(map[string]any{"allOrNone": true, "records": recs})
		if err != nil {
			b.Fatal(err)
		}
		send(http.MethodPost, v+"/composite/sobjects", body)
	}
	// Keys of one query are spread over the table, as a batch of referrals
	// changed in any order would be.
	var paths []string
	for n := range records / perQuery {
		keys := make([]string, perQuery)
		for j := range keys {
			keys[j] = fmt.Sprintf("'REF-%05d'", (n+j*records/perQuery)%records)
		}
		paths = append(paths, q("SELECT Id, SystemModstamp FROM Opportunity WHERE Referral_Identifier__c IN ("+strings.Join(keys, ", ")+")"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		var res queryResult
		if err := json.Unmarshal(send(http.MethodGet, paths[n%len(paths)], nil), &res); err != nil || res.TotalSize != perQuery {
			b.Fatalf("query: %d records, %v", res.TotalSize, err)
		}
		n++
	}
}

// newBenchServer starts an emulator without an API limit behind a loopback
// listener and returns it with a session token.
func newBenchServer(b *testing.B) (*httptest.Server, string) {
	b.Helper()
	keys, err := testKeys()
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	srv, err := New(Config{
		JWTCerts:  []*x509.Certificate{keys.cert},
		PublicURL: "http://" + ts.Listener.Addr().String(),
		APILimit:  1 << 62,
	})
	if err != nil {
		b.Fatal(err)
	}
	ts.Config.Handler = srv
	ts.Start()
	b.Cleanup(ts.Close)
	return ts, srv.benchToken(b)
}

// benchToken issues a session directly, outside the measured loop.
func (s *Server) benchToken(b *testing.B) string {
	b.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/services/oauth2/token", bytes.NewBufferString("grant_type=client_credentials&client_id="+DefaultClientID+"&client_secret="+DefaultClientSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	var tr tokenResponse
	mustUnmarshal(b, rec.Body.Bytes(), &tr)
	return tr.AccessToken
}
