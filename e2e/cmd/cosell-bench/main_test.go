package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cosell/cosell/e2e/stack"
)

// The emulator's delivery log as /webhooks/deliveries returns it: the
// first attempt of each referral's referral-created delivery starts the
// webhook → opportunity clock, even when a later attempt or a duplicate
// delivery was the one acknowledged.
func TestWebhookToOpportunity(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(ms int) string { return t0.Add(time.Duration(ms) * time.Millisecond).Format(time.RFC3339Nano) }
	raw := fmt.Sprintf(`[
	  {"eventName":"referral-created","resourceUri":"https://pc/engagements/referrals/A","createdAt":%q,
	   "attempts":[{"at":%q,"statusCode":503,"durationMs":2},{"at":%q,"statusCode":200,"durationMs":3}]},
	  {"eventName":"referral-created","resourceUri":"https://pc/engagements/referrals/A","createdAt":%q,
	   "attempts":[{"at":%q,"statusCode":200,"durationMs":1}]},
	  {"eventName":"related-referral-created","resourceUri":"https://pc/engagements/referrals/B","createdAt":%q,
	   "attempts":[{"at":%q,"statusCode":200,"durationMs":1}]},
	  {"eventName":"referral-created","resourceUri":"https://pc/engagements/referrals/C","createdAt":%q,
	   "attempts":[{"at":%q,"statusCode":200,"durationMs":1}]}
	]`, at(0), at(10), at(500), at(600), at(610), at(0), at(5), at(0), at(20))
	var log []delivery
	if err := json.Unmarshal([]byte(raw), &log); err != nil {
		t.Fatal(err)
	}
	seeded := []*stack.Seeded{
		{ReferralID: "A", OpportunityID: "006A", CreatedAt: t0.Add(700 * time.Millisecond)},
		{ReferralID: "B", OpportunityID: "006B", CreatedAt: t0.Add(900 * time.Millisecond)}, // no referral-created delivery logged
		{ReferralID: "C", CreatedAt: t0.Add(time.Second)},                                   // not synced
		nil, // a create that failed
	}
	got := webhookToOpportunity(seeded, createdDeliveries(log))
	if fmt.Sprint(got) != "[690ms]" {
		t.Errorf("webhook → opportunity = %v, want [690ms]: A from its first attempt; B has no delivery, C no opportunity", got)
	}
}

func TestCPUPerReferral(t *testing.T) {
	procs := map[string]float64{"ingress-1": 1, "mapper-1": 2, "nats-server": 0.5, "partnercenter-emulator": 3, "salesforce-emulator": 1}
	got := cpuPerReferral(procs, 1.5, 0.25, 500)
	want := map[string]float64{"system": 10, "emulators": 8, "load_generator": 0.5}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cpuPerReferral = %v, want %v", got, want)
	}
	if cpuPerReferral(procs, 1, 1, 0) != nil {
		t.Error("no referrals should give no figures")
	}
}

func TestWriteTimelines(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var log []delivery
	if err := json.Unmarshal([]byte(`[{"eventName":"referral-created","resourceUri":"x/referrals/A",
	  "attempts":[{"at":"2026-12-07T12:00:00.010Z","statusCode":503,"durationMs":2},{"at":"2026-12-07T12:00:00.500Z","statusCode":200,"durationMs":3.5}]}]`), &log); err != nil {
		t.Fatal(err)
	}
	seeded := []*stack.Seeded{
		{ReferralID: "A", SentAt: t0.Add(5 * time.Millisecond), OpportunityID: "006A", CreatedAt: t0.Add(700 * time.Millisecond)},
		{ReferralID: "B", SentAt: t0},
		nil,
	}
	path := filepath.Join(t.TempDir(), "out", "timelines.csv")
	if err := writeTimelines(path, seeded, createdDeliveries(log)); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "referral_id,sent_ms,webhook_ms,acked_ms,opportunity_ms\nA,5.0,10.0,503.5,700.0\nB,0.0,,,\n"
	if string(got) != want {
		t.Errorf("timelines:\n%s\nwant:\n%s", got, want)
	}
}
