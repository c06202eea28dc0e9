package partnercenter

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/emulators/internal/pcwebhooks"
)

func TestControlInboundReferralAcceptAndExpire(t *testing.T) {
	e := newEnv(t, nil)
	ours, ms := e.inbound(map[string]any{"Name": "Northwind ERP", "details": map[string]any{
		"dealValue": 75000, "currency": "EUR", "requirements": map[string]any{"solutions": []any{map[string]any{"id": "SOL-2-DEF"}}},
	}})
	want := map[string]any{
		"name": "Northwind ERP", "direction": "Incoming", "status": "New", "substatus": "Pending", "type": "Shared",
		"qualification": "SalesQualified", "inviteContext/invitedBy/organizationId": "msft",
		"organizationId": e.srv.Config().OrganizationID, "details/dealValue": 75000.0,
		"expirationDateTime": "2026-03-16T09:00:00Z",
	}
	for p, v := range want {
		if got := dig(ours, p); got != v {
			t.Errorf("inbound %s = %v, want %v", p, got, v)
		}
	}
	if ms == nil || ms["engagementId"] != ours["engagementId"] || ms["organizationId"] != "msft" || ms["status"] != "Active" {
		t.Fatalf("Microsoft's referral: %v", ms)
	}
	if dig(ms, "trackingInfo/microsoftMsxId") != nil {
		t.Error("msx id set before acceptance")
	}

	r := e.do(http.MethodPost, "/_emulator/referrals/"+ours["id"].(string)+"/accept", nil)
	if r.status != http.StatusOK {
		t.Fatalf("accept: %d %s", r.status, r.body)
	}
	acc := r.json(t)
	msx, _ := dig(acc, "trackingInfo/microsoftMsxId").(string)
	if acc["id"] != ms["id"] || !strings.HasPrefix(msx, "7-") || acc["eTag"] == ms["eTag"] {
		t.Errorf("accept result: id %v msx %q", acc["id"], msx)
	}
	// The partner reads it through the API.
	if got := e.api(http.MethodGet, collection+"/"+ms["id"].(string), nil).json(t); dig(got, "trackingInfo/microsoftMsxId") != msx {
		t.Errorf("API sees msx %v", dig(got, "trackingInfo/microsoftMsxId"))
	}

	// Control PATCH edits as the Microsoft seller, without the partner path list.
	r = e.do(http.MethodPatch, "/_emulator/referrals/"+ours["id"].(string), `[{"op":"replace","path":"/customerProfile/address/city","value":"Oslo"}]`)
	if r.status != http.StatusOK || dig(r.json(t), "customerProfile/address/city") != "Oslo" {
		t.Fatalf("control patch: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodPatch, "/_emulator/referrals/"+ours["id"].(string), `[{"op":"replace","path":"/eTag","value":"x"}]`); r.status != http.StatusBadRequest {
		t.Errorf("control patch of eTag: %d", r.status)
	}

	e.clock.Advance(time.Minute)
	r = e.do(http.MethodPost, "/_emulator/referrals/"+ours["id"].(string)+"/expire", nil)
	if r.status != http.StatusOK {
		t.Fatalf("expire: %d %s", r.status, r.body)
	}
	if exp := r.json(t); exp["status"] != "Closed" || exp["substatus"] != "Expired" || exp["closedDateTime"] != "2026-03-02T09:01:00Z" {
		t.Errorf("expired: %v/%v %v", exp["status"], exp["substatus"], exp["closedDateTime"])
	}
	if r := e.do(http.MethodPost, "/_emulator/referrals/nope/accept", nil); r.status != http.StatusNotFound {
		t.Errorf("accept missing: %d", r.status)
	}
	if r := e.do(http.MethodPost, "/_emulator/referrals", map[string]any{"status": "Active", "substatus": "Accepted"}); r.status != http.StatusBadRequest {
		t.Errorf("inbound Active: %d", r.status)
	}
	// related=false creates only the partner's referral.
	r = e.do(http.MethodPost, "/_emulator/referrals?related=false", map[string]any{})
	if r.status != http.StatusCreated || r.json(t)["relatedReferral"] != nil {
		t.Errorf("related=false: %d %s", r.status, r.body)
	}
}

func TestFaultsAndCounters(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(validReferral())["id"].(string)
	get := collection + "/" + id

	r := e.do(http.MethodPost, "/_emulator/faults", map[string]any{"endpoint": "referrals.get", "kind": "503", "count": 2, "retryAfter": 3})
	if r.status != http.StatusCreated {
		t.Fatalf("add fault: %d %s", r.status, r.body)
	}
	for i := 0; i < 2; i++ {
		r := e.api(http.MethodGet, get, nil)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "3" {
			t.Fatalf("call %d: %d Retry-After %q", i, r.status, r.header.Get("Retry-After"))
		}
		if code, _ := apiErr(t, r); code != "serviceNotAvailable" {
			t.Errorf("code %s", code)
		}
	}
	if r := e.api(http.MethodGet, get, nil); r.status != http.StatusOK {
		t.Fatalf("after the two faulted calls: %d", r.status)
	}
	// Other endpoints were never affected.
	if r := e.api(http.MethodGet, collection, nil); r.status != http.StatusOK {
		t.Fatalf("list: %d", r.status)
	}

	e.do(http.MethodPost, "/_emulator/faults", map[string]any{"endpoint": "referrals.patch", "kind": "429", "count": 1, "retryAfter": 7})
	r = e.api(http.MethodPatch, get, `[{"op":"replace","path":"/name","value":"x"}]`)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "7" || r.json(t)["statusCode"] != 429.0 {
		t.Fatalf("429: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}

	r = e.do(http.MethodPost, "/_emulator/faults", map[string]any{"endpoint": "token", "kind": "500", "rate": 1})
	fid := int(r.json(t)["id"].(float64))
	tr := e.form("/common/oauth2/token", e.passwordForm(AudienceReferrals))
	if tr.status != http.StatusInternalServerError || tr.json(t)["error"] != "server_error" {
		t.Fatalf("token fault: %d %s", tr.status, tr.body)
	}
	if r := e.do(http.MethodDelete, "/_emulator/faults/"+itoa(fid), nil); r.status != http.StatusNoContent {
		t.Fatalf("delete fault: %d", r.status)
	}
	if tr := e.form("/common/oauth2/token", e.passwordForm(AudienceReferrals)); tr.status != http.StatusOK {
		t.Fatalf("token after delete: %d", tr.status)
	}

	// Faults on the webhook API use its own error shape.
	e.do(http.MethodPost, "/_emulator/faults", map[string]any{"endpoint": "webhooks.registration", "kind": "503", "count": 1})
	wh := e.passwordToken(AudienceWebhooks)["access_token"].(string)
	r = e.do(http.MethodGet, "/webhooks/v1/registration/events", nil, "Authorization", "Bearer "+wh)
	if r.status != http.StatusServiceUnavailable || r.json(t)["code"] != 503.0 {
		t.Fatalf("webhooks fault: %d %s", r.status, r.body)
	}

	// A latency fault delays but does not fail the call.
	e.do(http.MethodPost, "/_emulator/faults", map[string]any{"endpoint": "referrals.list", "kind": "latency", "latency": "1ms", "count": 1})
	if r := e.api(http.MethodGet, collection, nil); r.status != http.StatusOK {
		t.Fatalf("latency fault: %d", r.status)
	}

	for _, bad := range []map[string]any{
		{"endpoint": "referrals.gte", "kind": "500"},
		{"endpoint": "referrals.get", "kind": "418"},
		{"endpoint": "referrals.get", "kind": "500", "rate": 2},
		{"endpoint": "referrals.get", "kind": "500", "bogus": true},
	} {
		if r := e.do(http.MethodPost, "/_emulator/faults", bad); r.status != http.StatusBadRequest {
			t.Errorf("fault %v: %d", bad, r.status)
		}
	}

	c := e.do(http.MethodGet, "/_emulator/counters", nil).json(t)["counters"].(map[string]any)
	wantCounts := map[string]float64{"referrals.get": 3, "referrals.list": 2, "referrals.create": 1, "referrals.patch": 1, "token": 4, "webhooks.registration": 1}
	for k, v := range wantCounts {
		if c[k] != v {
			t.Errorf("counter %s = %v, want %v (all: %v)", k, c[k], v, c)
		}
	}
	e.do(http.MethodDelete, "/_emulator/counters", nil)
	if c := e.do(http.MethodGet, "/_emulator/counters", nil).json(t)["counters"].(map[string]any); len(c) != 0 {
		t.Errorf("counters after reset: %v", c)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestStateDumpAndReset(t *testing.T) {
	e := newEnv(t, nil)
	e.create(validReferral())
	e.inbound(nil)
	e.do(http.MethodPost, "/_emulator/faults", map[string]any{"endpoint": "referrals.get", "kind": "500"})
	wh := e.passwordToken(AudienceWebhooks)["access_token"].(string)
	if r := e.do(http.MethodPost, "/webhooks/v1/registration", map[string]any{"WebhookUrl": "http://127.0.0.1:1/hook", "WebhookEvents": []string{"referral-created"}},
		"Authorization", "Bearer "+wh); r.status != http.StatusOK {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	st := e.do(http.MethodGet, "/_emulator/state", nil).json(t)
	if n := len(st["referrals"].([]any)); n != 3 {
		t.Errorf("state has %d referrals, want 3", n)
	}
	if n := len(st["engagements"].(map[string]any)); n != 2 {
		t.Errorf("state has %d engagements, want 2", n)
	}
	if n := len(st["faults"].([]any)); n != 1 {
		t.Errorf("state has %d faults", n)
	}

	if r := e.do(http.MethodPost, "/_emulator/reset", nil); r.status != http.StatusNoContent {
		t.Fatalf("reset: %d", r.status)
	}
	st = e.do(http.MethodGet, "/_emulator/state", nil).json(t)
	if len(st["referrals"].([]any)) != 0 || len(st["faults"].([]any)) != 0 {
		t.Errorf("state after reset: %v", st)
	}
	if r := e.do(http.MethodGet, "/webhooks/v1/registration", nil, "Authorization", "Bearer "+wh); r.status != http.StatusNotFound {
		t.Errorf("registration after reset: %d %s", r.status, r.body)
	}
	// Tokens survive a reset.
	if r := e.api(http.MethodGet, collection, nil); r.status != http.StatusOK {
		t.Errorf("token after reset: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/healthz", nil); r.status != http.StatusOK {
		t.Errorf("healthz: %d", r.status)
	}
}

// event is one webhook delivery the test receiver saw.
type event struct {
	name, uri string
	err       error
}

func TestWebhookEventsForEveryWrite(t *testing.T) {
	got := make(chan event, 64)
	var e *env
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			EventName, ResourceUri, ResourceName string
			AuditUri                             *string
			ResourceChangeUtcDate                string
		}
		err := json.Unmarshal(body, &ev)
		if err == nil {
			err = pcwebhooks.VerifySignature(body, r.Header, e.srv.Webhooks().CAPool(), pcwebhooks.HTTPFetcher(http.DefaultClient))
		}
		got <- event{name: ev.EventName, uri: ev.ResourceUri, err: err}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer recv.Close()
	e = newEnv(t, nil)
	wh := e.passwordToken(AudienceWebhooks)["access_token"].(string)
	r := e.do(http.MethodPost, "/webhooks/v1/registration", map[string]any{
		"WebhookUrl":    recv.URL,
		"WebhookEvents": []string{"referral-created", "referral-updated", "related-referral-created", "related-referral-updated"},
	}, "Authorization", "Bearer "+wh)
	if r.status != http.StatusOK {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	uri := func(id any) string { return e.ts.URL + collection + "/" + id.(string) }
	expect := func(step string, want ...string) {
		t.Helper()
		var seen []string
		deadline := time.After(10 * time.Second)
		for len(seen) < len(want) {
			select {
			case ev := <-got:
				if ev.err != nil {
					t.Errorf("%s: delivery failed verification: %v", step, ev.err)
				}
				seen = append(seen, ev.name+" "+ev.uri)
			case <-deadline:
				t.Fatalf("%s: got %v, still waiting for %v", step, seen, want)
			}
		}
		slices.Sort(seen)
		want = slices.Clone(want)
		slices.Sort(want)
		if !slices.Equal(seen, want) {
			t.Errorf("%s: events %v, want %v", step, seen, want)
		}
	}

	x := e.create(validReferral())
	expect("API create", "referral-created "+uri(x["id"]))

	ours, ms := e.inbound(nil)
	// Microsoft's referral is not the partner's: the partner hears of it as
	// a related referral, and of its own as a referral.
	expect("control create",
		"related-referral-created "+uri(ms["id"]),
		"referral-created "+uri(ours["id"]))

	if r := e.api(http.MethodPatch, collection+"/"+ours["id"].(string), patchStatus("Active", "Accepted", "")); r.status != http.StatusNoContent {
		t.Fatalf("accept: %d %s", r.status, r.body)
	}
	expect("API patch", "referral-updated "+uri(ours["id"]))

	e.do(http.MethodPost, "/_emulator/referrals/"+ours["id"].(string)+"/accept", nil)
	expect("Microsoft accepts", "related-referral-updated "+uri(ms["id"]))

	doc := e.api(http.MethodGet, collection+"/"+x["id"].(string), nil).json(t)
	e.api(http.MethodPut, collection+"/"+x["id"].(string), doc, "If-Match", doc["eTag"].(string))
	expect("API put", "referral-updated "+uri(x["id"]))

	select {
	case ev := <-got:
		t.Errorf("unexpected extra event %s %s", ev.name, ev.uri)
	default:
	}
}
