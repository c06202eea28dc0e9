package partnercenter

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkGetReferralByID measures the hot call of the Partner Center
// adapter (GET a referral after a webhook) over real loopback HTTP with
// keep-alive connections and a valid bearer, from parallel clients. It
// reports requests per second; the target is at least 5,000 on a 2-core
// machine.
func BenchmarkGetReferralByID(b *testing.B) {
	e := newEnv(b, nil)
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = e.create(validReferral())["id"].(string)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	auth := "Bearer " + e.token
	base := e.ts.URL + collection + "/"
	var next atomic.Uint64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[next.Add(1)%uint64(len(ids))]
			req, err := http.NewRequest(http.MethodGet, base+id, nil)
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkListByExternalReferenceID is the adapter's create-idempotency
// lookup (one filter on externalReferenceId), and a test's check of 20
// opportunities at once (an `or` of 20, paged), against a store holding many
// referrals, as after a large inbound run.
func BenchmarkListByExternalReferenceID(b *testing.B) {
	e := newEnv(b, nil)
	const n = 5000
	for i := range n {
		body := validReferral()
		body["externalReferenceId"] = fmt.Sprintf("006%012d", i)
		e.create(body)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	auth := "Bearer " + e.token
	for _, width := range []int{1, 20} {
		b.Run(fmt.Sprintf("ids=%d", width), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				terms := make([]string, width)
				for j := range terms {
					terms[j] = fmt.Sprintf("externalReferenceId eq '006%012d'", (i*width+j)%n)
				}
				q := url.Values{"$filter": {strings.Join(terms, " or ")}}
				found := 0
				for next := e.ts.URL + collection + "?" + q.Encode(); next != ""; {
					req, err := http.NewRequest(http.MethodGet, next, nil)
					if err != nil {
						b.Fatal(err)
					}
					req.Header.Set("Authorization", auth)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					var page struct {
						Value []struct {
							ExternalReferenceID string `json:"externalReferenceId"`
						} `json:"value"`
						NextLink string `json:"@odata.nextLink"`
					}
					err = json.NewDecoder(resp.Body).Decode(&page)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d: %v", resp.StatusCode, err)
					}
					found += len(page.Value)
					next = page.NextLink
				}
				if found != width {
					b.Fatalf("%d referrals found, want %d", found, width)
				}
			}
		})
	}
}
