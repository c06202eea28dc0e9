package notification_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/services/ingress/internal/notification"
)

func TestParse(t *testing.T) {
	changed := time.Date(2018, 2, 17, 0, 5, 39, 548548700, time.UTC)
	tests := []struct {
		name    string
		body    string
		want    notification.Notification
		wantErr string // substring of the error; "" means success
	}{
		{
			name: "documented referral event",
			body: `{"EventName":"referral-updated","ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/7f2c","ResourceName":"referral","AuditUri":null,"ResourceChangeUtcDate":"2018-02-17T00:05:39.5485487+00:00"}`,
			want: notification.Notification{
				EventName: "referral-updated", ResourceURI: "https://api.partnercenter.microsoft.com/engagements/v1/referrals/7f2c",
				ResourceName: "referral", ResourceChangeUTC: changed, ReferralID: "7f2c",
			},
		},
		{
			name: "camelCase keys, audit URI and an offset",
			body: `{"eventName":"related-referral-created","resourceUri":"https://api.partner.microsoft.com/v1.0/engagements/referrals/abc/","resourceName":"referral","auditUri":"https://api.partnercenter.microsoft.com/auditactivity/v1/auditrecords/1","resourceChangeUtcDate":"2018-02-17T02:05:39.5485487+02:00"}`,
			want: notification.Notification{
				EventName: "related-referral-created", ResourceURI: "https://api.partner.microsoft.com/v1.0/engagements/referrals/abc/",
				ResourceName: "referral", AuditURI: "https://api.partnercenter.microsoft.com/auditactivity/v1/auditrecords/1",
				ResourceChangeUTC: changed, ReferralID: "abc",
			},
		},
		{
			name: "test event without a referral id",
			body: `{"EventName":"test-created","ResourceUri":"http://localhost:16722/v1/webhooks/registration/test","ResourceName":"test","AuditUri":null,"ResourceChangeUtcDate":"2017-11-16T16:19:06.3520276"}`,
			want: notification.Notification{
				EventName: "test-created", ResourceURI: "http://localhost:16722/v1/webhooks/registration/test",
				ResourceName: "test", ResourceChangeUTC: time.Date(2017, 11, 16, 16, 19, 6, 352027600, time.UTC),
			},
		},
		{name: "not JSON", body: `EventName=referral-created`, wantErr: "not a JSON object"},
		{name: "JSON array", body: `[]`, wantErr: "not a JSON object"},
		{name: "missing fields", body: `{"EventName":"referral-created"}`, wantErr: "missing ResourceUri, ResourceName, ResourceChangeUtcDate"},
		{
			name:    "unknown event",
			body:    `{"EventName":"subscription-updated","ResourceUri":"https://x/y/1","ResourceName":"subscription","ResourceChangeUtcDate":"2018-02-17T00:05:39Z"}`,
			wantErr: `event "subscription-updated" is not handled`,
		},
		{
			name:    "bad date",
			body:    `{"EventName":"referral-created","ResourceUri":"https://x/referrals/1","ResourceName":"referral","ResourceChangeUtcDate":"yesterday"}`,
			wantErr: "not a date-time",
		},
		{
			name:    "relative resource URI",
			body:    `{"EventName":"referral-created","ResourceUri":"/referrals/1","ResourceName":"referral","ResourceChangeUtcDate":"2018-02-17T00:05:39Z"}`,
			wantErr: "not an absolute",
		},
		{
			name:    "resource URI without id",
			body:    `{"EventName":"referral-created","ResourceUri":"https://api.partnercenter.microsoft.com/","ResourceName":"referral","ResourceChangeUtcDate":"2018-02-17T00:05:39Z"}`,
			wantErr: "no referral id",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := notification.Parse([]byte(tc.body))
			if tc.wantErr != "" {
				if !errors.Is(err, notification.ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse error = %v, want ErrMalformed containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !got.ResourceChangeUTC.Equal(tc.want.ResourceChangeUTC) {
				t.Errorf("ResourceChangeUTC = %v, want %v", got.ResourceChangeUTC, tc.want.ResourceChangeUTC)
			}
			got.ResourceChangeUTC, tc.want.ResourceChangeUTC = time.Time{}, time.Time{}
			if got != tc.want {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMsgID(t *testing.T) {
	base := `{"EventName":"referral-created","ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/1","ResourceName":"referral","ResourceChangeUtcDate":"2018-02-17T00:05:39.5+00:00"}`
	parse := func(s string) notification.Notification {
		t.Helper()
		n, err := notification.Parse([]byte(s))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		return n
	}
	a := parse(base)
	if len(a.MsgID()) != 64 {
		t.Fatalf("MsgID %q is not a SHA-256 hex", a.MsgID())
	}
	// A retry of the same change, even formatted differently, has the same id.
	same := parse(strings.Replace(base, "2018-02-17T00:05:39.5+00:00", "2018-02-17T01:05:39.500+01:00", 1))
	if a.MsgID() != same.MsgID() {
		t.Errorf("the same change has ids %s and %s", a.MsgID(), same.MsgID())
	}
	for name, s := range map[string]string{
		"later change":   strings.Replace(base, "39.5", "39.6", 1),
		"other event":    strings.Replace(base, "referral-created", "referral-updated", 1),
		"other referral": strings.Replace(base, "referrals/1", "referrals/2", 1),
	} {
		if parse(s).MsgID() == a.MsgID() {
			t.Errorf("%s: same MsgID as the original", name)
		}
	}
}
