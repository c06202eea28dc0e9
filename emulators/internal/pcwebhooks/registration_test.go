package pcwebhooks

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// decodeAPIError checks the CSP error shape and returns its description.
func decodeAPIError(t *testing.T, status int, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	for _, k := range []string{"code", "description", "data", "source"} {
		if _, ok := m[k]; !ok {
			t.Errorf("error body %s lacks %q", b, k)
		}
	}
	if m["code"] != float64(status) {
		t.Errorf("error code = %v, want %d", m["code"], status)
	}
	desc, _ := m["description"].(string)
	if desc == "" {
		t.Errorf("error description empty in %s", b)
	}
	return desc
}

func TestRegistrationLifecycle(t *testing.T) {
	e := newEnv(t, nil)

	st, _, b := e.call(http.MethodGet, "/webhooks/v1/registration", "", "")
	if st != http.StatusNotFound {
		t.Fatalf("GET before POST = %d %s, want 404", st, b)
	}
	decodeAPIError(t, st, b)

	// Mixed-case keys, as the official samples send them.
	st, h, b := e.call(http.MethodPost, "/webhooks/v1/registration", "application/json",
		`{"webhookUrl":"https://receiver.example/hook","WEBHOOKEVENTS":["referral-created","referral-created","test-created"],"signatureTokenToMsSignatureHeader":true}`)
	if st != http.StatusOK {
		t.Fatalf("POST = %d %s", st, b)
	}
	if h.Get("MS-CorrelationId") == "" || h.Get("MS-RequestId") == "" {
		t.Errorf("response lacks MS-CorrelationId/MS-RequestId: %v", h)
	}
	var created struct {
		SubscriberID  string   `json:"SubscriberId"`
		WebhookURL    string   `json:"WebhookUrl"`
		WebhookEvents []string `json:"WebhookEvents"`
	}
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	if !guidRE.MatchString(created.SubscriberID) || created.WebhookURL != "https://receiver.example/hook" ||
		!slices.Equal(created.WebhookEvents, []string{"referral-created", "test-created"}) {
		t.Errorf("POST body = %s", b)
	}

	st, _, b = e.call(http.MethodPost, "/webhooks/v1/registration", "application/json",
		`{"WebhookUrl":"https://other.example/","WebhookEvents":["referral-updated"]}`)
	if st != http.StatusConflict {
		t.Fatalf("second POST = %d %s, want 409", st, b)
	}
	if d := decodeAPIError(t, st, b); !strings.Contains(d, "use the PUT method") {
		t.Errorf("409 description = %q", d)
	}

	st, _, b = e.call(http.MethodGet, "/webhooks/v1/registration", "", "")
	if st != http.StatusOK {
		t.Fatalf("GET = %d %s", st, b)
	}
	var view map[string]any
	if err := json.Unmarshal(b, &view); err != nil {
		t.Fatal(err)
	}
	if len(view) != 2 || view["WebhookUrl"] != "https://receiver.example/hook" {
		t.Errorf("GET body = %s, want only WebhookUrl and WebhookEvents", b)
	}

	// PUT replaces everything, including the header choice, and keeps the id.
	st, _, b = e.call(http.MethodPut, "/webhooks/v1/registration", "text/json; charset=utf-8",
		`{"WebhookUrl":"https://receiver.example/v2","WebhookEvents":["referral-updated","related-referral-updated"]}`)
	if st != http.StatusOK {
		t.Fatalf("PUT = %d %s", st, b)
	}
	reg, ok := e.d.Registration()
	if !ok || reg.SubscriberID != created.SubscriberID || reg.WebhookURL != "https://receiver.example/v2" ||
		reg.SignatureTokenToMsSignatureHeader ||
		!slices.Equal(reg.WebhookEvents, []string{"referral-updated", "related-referral-updated"}) {
		t.Errorf("after PUT registration = %+v", reg)
	}

	st, _, b = e.call(http.MethodGet, "/_emulator/webhooks/registration", "", "")
	if st != http.StatusOK || !strings.Contains(string(b), `"SignatureTokenToMsSignatureHeader":false`) {
		t.Errorf("control GET registration = %d %s", st, b)
	}
}

func TestRegistrationRejectsBadInput(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name, method, ctype, body string
		want                      int
	}{
		{"empty body", http.MethodPost, "application/json", "", 400},
		{"not JSON", http.MethodPost, "application/json", "{", 400},
		{"array", http.MethodPost, "application/json", `["referral-created"]`, 400},
		{"trailing data", http.MethodPost, "application/json", `{"WebhookUrl":"https://a.example/","WebhookEvents":["referral-created"]} {}`, 400},
		{"no url", http.MethodPost, "application/json", `{"WebhookEvents":["referral-created"]}`, 400},
		{"relative url", http.MethodPost, "application/json", `{"WebhookUrl":"/hook","WebhookEvents":["referral-created"]}`, 400},
		{"ftp url", http.MethodPost, "application/json", `{"WebhookUrl":"ftp://a.example/hook","WebhookEvents":["referral-created"]}`, 400},
		{"no events", http.MethodPost, "application/json", `{"WebhookUrl":"https://a.example/","WebhookEvents":[]}`, 400},
		{"unknown event", http.MethodPost, "application/json", `{"WebhookUrl":"https://a.example/","WebhookEvents":["subscription-updated"]}`, 400},
		{"event case", http.MethodPost, "application/json", `{"WebhookUrl":"https://a.example/","WebhookEvents":["Referral-Created"]}`, 400},
		{"form body", http.MethodPost, "application/x-www-form-urlencoded", `WebhookUrl=x`, 415},
		{"PUT before POST", http.MethodPut, "application/json", `{"WebhookUrl":"https://a.example/","WebhookEvents":["referral-created"]}`, 404},
		{"DELETE", http.MethodDelete, "", "", 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _, b := e.call(c.method, "/webhooks/v1/registration", c.ctype, c.body)
			if st != c.want {
				t.Fatalf("status = %d %s, want %d", st, b, c.want)
			}
			decodeAPIError(t, st, b)
		})
	}
	if _, ok := e.d.Registration(); ok {
		t.Errorf("a rejected request created a registration")
	}
}

func TestEventsList(t *testing.T) {
	e := newEnv(t, nil)
	st, _, b := e.call(http.MethodGet, "/webhooks/v1/registration/events", "", "")
	var got []string
	if err := json.Unmarshal(b, &got); err != nil || st != http.StatusOK {
		t.Fatalf("events = %d %s (%v)", st, b, err)
	}
	want := []string{"referral-created", "referral-updated", "related-referral-created", "related-referral-updated", "test-created"}
	if !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestValidationEvents(t *testing.T) {
	e := newEnv(t, nil)
	rc := newReceiver(t)

	st, _, b := e.call(http.MethodPost, "/webhooks/v1/registration/validationEvents", "", "")
	if st != http.StatusNotFound {
		t.Fatalf("validation without registration = %d %s, want 404", st, b)
	}
	e.register(rc.srv.URL+"/hook", false, EventReferralCreated)
	st, _, b = e.call(http.MethodPost, "/webhooks/v1/registration/validationEvents", "", "")
	if st != http.StatusBadRequest {
		t.Fatalf("validation without test-created = %d %s, want 400", st, b)
	}
	decodeAPIError(t, st, b)

	st, _, b = e.call(http.MethodPut, "/webhooks/v1/registration", "application/json",
		`{"WebhookUrl":"`+rc.srv.URL+`/hook","WebhookEvents":["referral-created","test-created"]}`)
	if st != http.StatusOK {
		t.Fatalf("PUT = %d %s", st, b)
	}
	st, _, b = e.call(http.MethodPost, "/webhooks/v1/registration/validationEvents", "", "")
	if st != http.StatusOK {
		t.Fatalf("validationEvents = %d %s", st, b)
	}
	var out map[string]string
	if err := json.Unmarshal(b, &out); err != nil || !guidRE.MatchString(out["correlationId"]) || len(out) != 1 {
		t.Fatalf("validationEvents body = %s", b)
	}
	cid := out["correlationId"]

	got := rc.next(t)
	ev := eventOf(t, got.body)
	wantURI := e.srv.URL + "/webhooks/v1/registration/validationEvents/" + cid
	if ev.EventName != EventTestCreated || ev.ResourceName != "test" || ev.ResourceURI != wantURI || ev.AuditURI != nil {
		t.Errorf("test event = %+v", ev)
	}
	if err := VerifySignature(got.body, got.header, e.d.CAPool(), HTTPFetcher(nil)); err != nil {
		t.Errorf("test event signature: %v", err)
	}

	var status validationStatus
	e.waitFor("validation status completed", func() bool {
		st, _, b = e.call(http.MethodGet, "/webhooks/v1/registration/validationEvents/"+cid, "", "")
		if st != http.StatusOK {
			t.Fatalf("status = %d %s", st, b)
		}
		if err := json.Unmarshal(b, &status); err != nil {
			t.Fatal(err)
		}
		return status.Status == "completed"
	})
	if status.CorrelationID != cid || status.PartnerID != DefaultPartnerID || status.CallbackURL != rc.srv.URL+"/hook" ||
		len(status.Results) != 1 || status.Results[0].ResponseCode != "Accepted" || status.Results[0].SystemError {
		t.Errorf("status = %s", b)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}$`).MatchString(status.Results[0].DateTimeUtc) {
		t.Errorf("dateTimeUtc = %q", status.Results[0].DateTimeUtc)
	}

	st, _, b = e.call(http.MethodGet, "/webhooks/v1/registration/validationEvents/"+newGUID(), "", "")
	if st != http.StatusNotFound {
		t.Errorf("unknown correlation id = %d %s", st, b)
	}

	// Two per minute: the second is allowed, the third throttled.
	if st, _, b = e.call(http.MethodPost, "/webhooks/v1/registration/validationEvents", "", ""); st != http.StatusOK {
		t.Fatalf("second validationEvents = %d %s", st, b)
	}
	st, h, b := e.call(http.MethodPost, "/webhooks/v1/registration/validationEvents", "", "")
	if st != http.StatusTooManyRequests {
		t.Fatalf("third validationEvents = %d %s, want 429", st, b)
	}
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 61 {
		t.Errorf("Retry-After = %q", h.Get("Retry-After"))
	}
}

func TestValidationStatusReportsTransportFailures(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxAttempts = 2 })
	rc := newReceiver(t)
	dead := rc.srv.URL + "/hook"
	rc.srv.Close() // nothing listens there any more

	e.register(dead, false, EventTestCreated)
	st, _, b := e.call(http.MethodPost, "/webhooks/v1/registration/validationEvents", "", "")
	if st != http.StatusOK {
		t.Fatalf("validationEvents = %d %s", st, b)
	}
	var out map[string]string
	_ = json.Unmarshal(b, &out)
	var status validationStatus
	e.waitFor("validation to fail", func() bool {
		_, _, b = e.call(http.MethodGet, "/webhooks/v1/registration/validationEvents/"+out["correlationId"], "", "")
		_ = json.Unmarshal(b, &status)
		return status.Status == "failed"
	})
	if len(status.Results) != 2 {
		t.Fatalf("results = %s, want 2 attempts", b)
	}
	for _, r := range status.Results {
		if !r.SystemError || r.ResponseCode != "" || r.ResponseMessage == "" {
			t.Errorf("result = %+v, want a system error with a message", r)
		}
	}
}

func TestRoutesWorkBehindStripPrefix(t *testing.T) {
	d, err := New(Config{PublicBaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(t.Context()) })
	mux := http.NewServeMux()
	mux.Handle("/webhooks/v1/", http.StripPrefix("/webhooks/v1", d.Routes()))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webhooks/v1/registration/events", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "referral-updated") {
		t.Errorf("events via StripPrefix = %d %s", rec.Code, rec.Body.String())
	}
	if d.CertificateURL() != "http://127.0.0.1:1/cert/pcnotifications-dispatch.microsoft.com.cer" {
		t.Errorf("certificate URL = %s", d.CertificateURL())
	}
}
