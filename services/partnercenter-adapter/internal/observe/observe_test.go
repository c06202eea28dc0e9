package observe_test

import (
	"testing"
	"time"

	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/observe"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
)

func TestReferralID(t *testing.T) {
	for _, tc := range []struct{ parsed, uri, want string }{
		{"", "https://api.partnercenter.microsoft.com/engagements/v1/referrals/abc-123", "abc-123"},
		{"", "https://api.partner.microsoft.com/v1.0/engagements/referrals/abc-123/", "abc-123"},
		{"", "http://127.0.0.1:8081/v1.0/engagements/referrals/abc-123?x=1", "abc-123"},
		{"from-ingress", "https://example.com/referrals/other", "from-ingress"},
	} {
		n := &cosellv1.PartnerCenterNotification{ReferralId: tc.parsed, ResourceUri: tc.uri}
		if got := observe.ReferralID(n); got != tc.want {
			t.Errorf("ReferralID(%q, %q) = %q, want %q", tc.parsed, tc.uri, got, tc.want)
		}
	}
}

func TestMsgIDIdentifiesTheSnapshot(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456700, time.UTC)
	a := pcclient.Referral{ID: "r1", UpdatedAt: at, ETag: `"e1"`}
	if got, want := observe.MsgID(a), "referral:r1:2026-03-04T05:06:07.1234567Z:e1"; got != want {
		t.Errorf("MsgID = %q, want %q", got, want)
	}
	b := a
	b.ETag = `"e2"`
	c := a
	c.UpdatedAt = at.Add(time.Microsecond)
	if observe.MsgID(a) == observe.MsgID(b) || observe.MsgID(a) == observe.MsgID(c) {
		t.Error("different snapshots share a Msg-Id")
	}
}

func TestIsReferralEvent(t *testing.T) {
	for name, want := range map[string]bool{
		"referral-created": true, "related-referral-updated": true, "test-created": false, "subscription-updated": false,
	} {
		if got := observe.IsReferralEvent(name); got != want {
			t.Errorf("IsReferralEvent(%q) = %v", name, got)
		}
	}
}
