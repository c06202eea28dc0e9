package salesforce

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// BenchmarkUpsertOpportunityByExternalID measures the adapter's hot call,
// PATCH …/sobjects/Opportunity/Referral_Identifier__c/{id}, over real
// loopback HTTP with keep-alive connections from parallel clients. Keys
// cycle through 1,000 referrals, so after warm-up most calls update (200)
// and the first round creates (201).
func BenchmarkUpsertOpportunityByExternalID(b *testing.B) {
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
	defer ts.Close()
	tok := srv.benchToken(b)

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
