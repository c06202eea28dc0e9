package webhook_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/cosell/cosell/services/ingress/internal/webhook"
)

// BenchmarkDelivery measures one delivery end to end inside ingress: the
// sender signs a new change, ingress verifies it (certificate cached, as in
// steady state) and publishes it, answering after JetStream's ack. ns/op
// includes the sender's RSA signing; ack-p50-ms and ack-p99-ms time only
// ingress's part, from request to answer.
func BenchmarkDelivery(b *testing.B) {
	h := newHarness(b, harnessOptions{})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		body := referralBody("referral-updated", base.Add(time.Duration(i)*time.Microsecond).Format(time.RFC3339Nano))
		i++
		hdr := h.signed(body)
		req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		h.handler.ServeHTTP(rec, req)
		lat = append(lat, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("answer %d %s", rec.Code, rec.Body.String())
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "ack-p50-ms")
	b.ReportMetric(pct(0.99), "ack-p99-ms")
}
