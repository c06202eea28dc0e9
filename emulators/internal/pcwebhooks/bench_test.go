package pcwebhooks

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkDeliveryThroughput measures end-to-end signed deliveries per
// second to a local receiver that answers 202 at once: Notify, queueing,
// RSA signing, the HTTP POST and the log update. notify-ns is what the API
// request path pays per event (encoding and queueing only).
func BenchmarkDeliveryThroughput(b *testing.B) {
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	defer rcv.Close()
	d, err := New(Config{PublicBaseURL: "http://127.0.0.1:1", CADir: sharedCADir, MaxLogEntries: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = d.Close(b.Context()) }()
	d.mu.Lock()
	d.reg = &registration{url: rcv.URL, events: SupportedEvents()}
	d.mu.Unlock()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		d.Notify(EventReferralUpdated, "https://api.partner.microsoft.com/v1.0/engagements/referrals/x", changed)
	}
	notify := time.Since(start)
	for d.Stats().Counters["delivered"] < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(notify.Nanoseconds())/float64(b.N), "notify-ns")
}

// BenchmarkNewWithStoredCA measures start-up cost with an existing CA:
// one RSA-2048 key generation for the signing certificate.
func BenchmarkNewWithStoredCA(b *testing.B) {
	for range b.N {
		d, err := New(Config{PublicBaseURL: "http://127.0.0.1:1", CADir: sharedCADir})
		if err != nil {
			b.Fatal(err)
		}
		_ = d.Close(b.Context())
	}
}
