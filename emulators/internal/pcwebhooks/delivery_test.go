package pcwebhooks

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// changed is a fixed change time with sub-microsecond precision, to check
// the seven-digit rendering.
var changed = time.Date(2026, 3, 4, 5, 6, 7, 123456700, time.FixedZone("CET", 3600))

func TestDeliveryBodyHeadersAndSignature(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL+"/pc", false, EventReferralCreated, EventReferralUpdated)

	uri := "https://api.partner.microsoft.com/v1.0/engagements/referrals/2f0c9f3e"
	e.d.Notify(EventReferralCreated, uri, changed)
	got := rc.next(t)

	want := `{"EventName":"referral-created","ResourceUri":"` + uri + `","ResourceName":"referral",` +
		`"AuditUri":null,"ResourceChangeUtcDate":"2026-03-04T04:06:07.1234567+00:00"}`
	if string(got.body) != want {
		t.Errorf("body =\n%s\nwant\n%s", got.body, want)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if a := got.header.Get("X-MS-Signature-Algorithm"); a != "rsa-sha256" {
		t.Errorf("algorithm = %q", a)
	}
	certURL := got.header.Get("x-ms-certificate-url")
	if certURL != e.srv.URL+"/cert/pcnotifications-dispatch.microsoft.com.cer" {
		t.Errorf("certificate url = %q", certURL)
	}
	if got.header.Get("x-ms-signature") != "" {
		t.Errorf("x-ms-signature set although the registration asked for Authorization")
	}
	auth := got.header.Get("Authorization")
	b64, ok := strings.CutPrefix(auth, "Signature ")
	if !ok {
		t.Fatalf("Authorization = %q, want \"Signature <base64>\"", auth)
	}

	// Verify as a receiver would, with nothing but the standard library:
	// the certificate comes over HTTP, the trust root from the CA directory.
	resp, err := http.Get(certURL)
	if err != nil {
		t.Fatalf("fetching certificate: %v", err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-cert" {
		t.Fatalf("certificate response = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	cert, err := x509.ParseCertificate(der) // DER, like the real .cer
	if err != nil {
		t.Fatalf("served certificate is not DER: %v", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(e.caDir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if !slices.Contains(cert.Subject.Organization, "Microsoft Corporation") ||
		!slices.Contains(cert.Issuer.Organization, "Microsoft Corporation") ||
		cert.Subject.CommonName != "pcnotifications-dispatch.microsoft.com" {
		t.Errorf("subject %q issuer %q", cert.Subject, cert.Issuer)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(got.body)
	if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}

	// The exported helper agrees, and catches tampering and the wrong root.
	pool, err := LoadCAPool(e.caDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(got.body, got.header, pool, HTTPFetcher(nil)); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
	tampered := []byte(strings.Replace(string(got.body), "referral-created", "referral-updated", 1))
	if err := VerifySignature(tampered, got.header, pool, HTTPFetcher(nil)); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered body: err = %v, want ErrSignature", err)
	}
	other := newEnv(t, func(c *Config) { c.CADir = t.TempDir() }) // a CA of its own
	if err := VerifySignature(got.body, got.header, other.d.CAPool(), HTTPFetcher(nil)); !errors.Is(err, ErrCertificate) {
		t.Errorf("foreign CA: err = %v, want ErrCertificate", err)
	}

	if d := e.lastDelivery(); d.EventName != EventReferralCreated || d.SignatureIn != "Authorization" {
		t.Errorf("log entry = %+v", d)
	}
}

func TestDeliveryInMsSignatureHeader(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, true, EventReferralUpdated)
	e.d.Notify(EventReferralUpdated, "https://api.partner.microsoft.com/v1.0/engagements/referrals/x", changed)
	got := rc.next(t)
	if got.header.Get("Authorization") != "" {
		t.Errorf("Authorization = %q, want none in x-ms-signature mode", got.header.Get("Authorization"))
	}
	if !strings.HasPrefix(got.header.Get("x-ms-signature"), "Signature ") {
		t.Fatalf("x-ms-signature = %q", got.header.Get("x-ms-signature"))
	}
	if err := VerifySignature(got.body, got.header, e.d.CAPool(), HTTPFetcher(nil)); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
	if d := e.lastDelivery(); d.SignatureIn != "x-ms-signature" {
		t.Errorf("log signatureHeader = %q", d.SignatureIn)
	}
}

func TestNotifyOnlyForRegisteredEvents(t *testing.T) {
	e := newEnv(t, nil)
	e.d.Notify(EventReferralCreated, "u", changed) // no registration yet
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralCreated)
	e.d.Notify(EventReferralUpdated, "u", changed)        // not registered for it
	e.d.Notify("subscription-updated", "u", changed)      // not supported
	e.d.Notify(EventRelatedReferralCreated, "u", changed) // not registered for it
	if n := len(e.d.Deliveries()); n != 0 {
		t.Fatalf("log has %d entries, want none", n)
	}
	e.d.Notify(EventReferralCreated, "u", changed)
	if ev := eventOf(t, rc.next(t).body); ev.EventName != EventReferralCreated {
		t.Errorf("delivered %q", ev.EventName)
	}
}

func TestRetriesUntilSuccess(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	codes := []int{500, 503, 404}
	rc.setRespond(func(n int) int {
		if n <= len(codes) {
			return codes[n-1]
		}
		return 200
	})
	e.register(rc.srv.URL, false, EventReferralUpdated)
	e.d.Notify(EventReferralUpdated, "https://api.partner.microsoft.com/v1.0/engagements/referrals/r1", changed)
	first := rc.next(t)
	for range 3 {
		again := rc.next(t)
		if string(again.body) != string(first.body) || again.header.Get("Authorization") != first.header.Get("Authorization") {
			t.Errorf("retry differs from the first attempt")
		}
	}
	d := e.settled(e.lastDelivery().ID, StatusDelivered)
	var got []int
	var names []string
	for i, a := range d.Attempts {
		got = append(got, a.StatusCode)
		names = append(names, a.ResponseCode)
		if a.Number != i+1 {
			t.Errorf("attempt %d numbered %d", i+1, a.Number)
		}
	}
	if !slices.Equal(got, []int{500, 503, 404, 200}) {
		t.Errorf("attempt statuses = %v", got)
	}
	if !slices.Equal(names, []string{"InternalServerError", "ServiceUnavailable", "NotFound", "OK"}) {
		t.Errorf("attempt response codes = %v", names)
	}
	if d.DeliveredAt == nil || d.Parked {
		t.Errorf("delivery = %+v", d)
	}
}

func TestRedirectIsAFailedAttempt(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 1 })
	rc := newReceiver(t)
	rc.setRespond(func(int) int { return http.StatusTemporaryRedirect })
	e.register(rc.srv.URL, false, EventReferralCreated)
	e.d.Notify(EventReferralCreated, "u", changed)
	rc.next(t)
	d := e.settled(e.lastDelivery().ID, StatusParked)
	if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("attempts = %+v", d.Attempts)
	}
}

func TestParkedAfterTenAttemptsThenRedelivered(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	rc.setRespond(func(int) int { return http.StatusInternalServerError })
	e.register(rc.srv.URL, false, EventReferralUpdated)
	e.d.Notify(EventReferralUpdated, "u", changed)
	id := e.lastDelivery().ID
	d := e.settled(id, StatusParked)
	if len(d.Attempts) != 10 || !d.Parked || rc.hits.Load() != 10 {
		t.Fatalf("parked after %d attempts (%d requests), want 10", len(d.Attempts), rc.hits.Load())
	}
	for _, a := range d.Attempts {
		if a.StatusCode != 500 || a.ResponseMessage != "Internal Server Error" {
			t.Errorf("attempt = %+v", a)
		}
	}

	st, _, b := e.call(http.MethodGet, "/_emulator/webhooks/parked", "", "")
	var parked []Delivery
	if err := json.Unmarshal(b, &parked); err != nil || st != 200 || len(parked) != 1 || parked[0].ID != id {
		t.Fatalf("GET parked = %d %s", st, b)
	}
	st, _, b = e.call(http.MethodGet, "/_emulator/webhooks/deliveries?status=parked", "", "")
	if st != 200 || !strings.Contains(string(b), id) {
		t.Errorf("GET deliveries?status=parked = %d %s", st, b)
	}

	rc.setRespond(func(int) int { return http.StatusOK })
	st, _, b = e.call(http.MethodPost, "/_emulator/webhooks/deliveries/"+id+"/redeliver", "", "")
	if st != http.StatusAccepted {
		t.Fatalf("redeliver = %d %s", st, b)
	}
	d = e.settled(id, StatusDelivered)
	if len(d.Attempts) != 11 || d.Attempts[10].StatusCode != 200 {
		t.Errorf("after redelivery attempts = %d, last %+v", len(d.Attempts), d.Attempts[len(d.Attempts)-1])
	}
	if st, _, b = e.call(http.MethodPost, "/_emulator/webhooks/deliveries/"+id+"/redeliver", "", ""); st != http.StatusConflict {
		t.Errorf("redeliver of a delivered event = %d %s, want 409", st, b)
	}
	if st, _, _ = e.call(http.MethodPost, "/_emulator/webhooks/deliveries/nope/redeliver", "", ""); st != http.StatusNotFound {
		t.Errorf("redeliver of unknown id = %d, want 404", st)
	}
	if s := e.d.Stats(); s.Counters["parked"] != 1 || s.Counters["delivered"] != 1 || s.Counters["attempts"] != 11 || s.Parked != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestNotifyNeverWaitsForASlowReceiver(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workers = 1; c.BacklogWarn = 8 })
	release := make(chan struct{})
	arrived := make(chan struct{}, 1000)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(slow.Close)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before slow.Close, even if the test fails early
	e.register(slow.URL, false, EventReferralUpdated)

	e.d.Notify(EventReferralUpdated, "u/0", changed)
	<-arrived // the only worker is now stuck on the receiver
	const n = 200
	for i := 1; i < n; i++ {
		e.d.Notify(EventReferralUpdated, fmt.Sprintf("u/%d", i), changed)
	}
	// Every Notify returned while the receiver held the only worker, and
	// nothing was lost: the backlog holds all the rest.
	if s := e.d.Stats(); s.Ready != n-1 || s.Counters["notified"] != n {
		t.Fatalf("stats while blocked = %+v", s)
	}
	unblock()
	e.waitFor("all events delivered", func() bool { return e.d.Stats().Counters["delivered"] == n })
}

func TestCloseStopsDelivery(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)
	e.register(rc.srv.URL, false, EventReferralUpdated)
	if err := e.d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.d.Notify(EventReferralUpdated, "u", changed)
	if n := len(e.d.Deliveries()); n != 0 {
		t.Errorf("Notify after Close logged %d entries", n)
	}
}

func TestResetForgetsEverything(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 1 })
	rc := newReceiver(t)
	rc.setRespond(func(int) int { return 500 })
	e.register(rc.srv.URL, false, EventReferralUpdated)
	e.addFault(`{"kind":"duplicate","rate":1}`)
	e.d.Notify(EventReferralUpdated, "u", changed)
	e.waitFor("parked", func() bool { return len(e.d.Parked()) == 2 })

	if st, _, _ := e.call(http.MethodPost, "/_emulator/webhooks/reset", "", ""); st != http.StatusNoContent {
		t.Fatalf("reset = %d", st)
	}
	if _, ok := e.d.Registration(); ok {
		t.Error("registration survived Reset")
	}
	if len(e.d.Deliveries()) != 0 || len(e.d.Faults()) != 0 || len(e.d.Stats().Counters) != 0 {
		t.Errorf("state survived Reset: %d deliveries, %d faults, %+v", len(e.d.Deliveries()), len(e.d.Faults()), e.d.Stats())
	}
	// POST works again, as for a fresh tenant.
	e.register(rc.srv.URL, false, EventReferralUpdated)
}

func TestCertificateHandler(t *testing.T) {
	e := newEnv(t, nil)
	st, h, b := e.call(http.MethodGet, e.d.CertificatePath(), "", "")
	if st != http.StatusOK || h.Get("Content-Type") != "application/pkix-cert" {
		t.Fatalf("GET certificate = %d %v", st, h)
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(e.d.SigningCertificate()) || cert.NotAfter.Before(time.Now()) {
		t.Errorf("served certificate differs from the signing one or is expired")
	}
	if st, _, _ := e.call(http.MethodPost, e.d.CertificatePath(), "", ""); st == http.StatusOK {
		t.Errorf("POST certificate = %d", st)
	}
	st, _, b = e.call(http.MethodGet, "/_emulator/webhooks/ca.pem", "", "")
	ca, err := ParseCertificate(b)
	if st != http.StatusOK || err != nil || !ca.Equal(e.d.CACertificate()) {
		t.Errorf("GET ca.pem = %d (%v)", st, err)
	}
}

func TestLogEvictsOnlySettledEntries(t *testing.T) {
	d, err := New(Config{PublicBaseURL: "http://127.0.0.1:1", MaxLogEntries: 10, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(t.Context()) })
	d.mu.Lock()
	d.reg = &registration{url: "http://127.0.0.1:1/", events: SupportedEvents()}
	var parked []*delivery
	for i := range 40 {
		e := d.newEntryLocked(EventReferralUpdated, fmt.Sprint(i), "", []byte("{}"), "")
		e.status = StatusDelivered
		if i%10 == 0 {
			e.status = StatusParked
			parked = append(parked, e)
		}
	}
	n := len(d.order)
	d.mu.Unlock()
	if n > 11 {
		t.Errorf("log holds %d entries, want at most 11", n)
	}
	for _, p := range parked {
		if _, ok := d.Delivery(p.id); !ok {
			t.Errorf("parked entry %s was evicted", p.resourceURI)
		}
	}
	all := d.Deliveries()
	if last := all[len(all)-1]; last.ResourceURI != "39" {
		t.Errorf("newest entry = %s, want 39", last.ResourceURI)
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	base, max := 100*time.Millisecond, 5*time.Second
	for n := 1; n <= 70; n++ {
		want := max
		if n <= 6 {
			want = base << (n - 1) // 100ms .. 3.2s
		}
		for range 50 {
			got := backoff(base, max, n)
			if got < want/2 || got > want {
				t.Fatalf("backoff(n=%d) = %v, want within [%v, %v]", n, got, want/2, want)
			}
		}
	}
}

func TestResponseCodeNames(t *testing.T) {
	for status, want := range map[int]string{
		0: "", 200: "OK", 202: "Accepted", 204: "NoContent", 404: "NotFound", 429: "TooManyRequests",
		500: "InternalServerError", 503: "ServiceUnavailable", 599: "599",
	} {
		if got := responseCode(status); got != want {
			t.Errorf("responseCode(%d) = %q, want %q", status, got, want)
		}
	}
}
