package sfclient_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/cosell/cosell/libs/telemetry/telemetrytest"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// tokenSeries is every series the counter has from the start.
var tokenSeries = []string{
	"ok", "canceled",
	"error/invalid_grant", "error/invalid_client", "error/rejected", "error/unavailable", "error/bad_response", "error/other",
}

func TestTokenRequestsAreCountedByOutcome(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	// Faults fire on the next matching call only, so the cases share one
	// emulator.
	for _, tc := range []struct {
		name    string
		mode    string
		tweak   func(*sfclient.Config)
		before  func()
		timeout time.Duration
		wantErr bool
		want    map[string]int64
	}{
		{name: "jwt", mode: sfclient.AuthJWT, want: map[string]int64{"ok": 1}},
		{name: "client credentials", mode: sfclient.AuthClientCredentials, want: map[string]int64{"ok": 1}},
		{name: "session revoked: one new token", mode: sfclient.AuthJWT,
			before: func() { emu.AddFault(sfemutest.Fault{Endpoint: "query", Kind: "revoke-token", Count: 1}) },
			want:   map[string]int64{"ok": 2}},
		{name: "wrong consumer secret", mode: sfclient.AuthClientCredentials,
			tweak:   func(c *sfclient.Config) { c.Credentials.ClientSecret = "wrong" },
			wantErr: true, want: map[string]int64{"error/invalid_client": 1}},
		{name: "unknown consumer key", mode: sfclient.AuthJWT,
			tweak:   func(c *sfclient.Config) { c.Credentials.ClientID = "not-a-connected-app" },
			wantErr: true, want: map[string]int64{"error/invalid_client": 1}},
		{name: "wrong audience", mode: sfclient.AuthJWT,
			tweak:   func(c *sfclient.Config) { c.Credentials.Audience = "https://example.com" },
			wantErr: true, want: map[string]int64{"error/invalid_grant": 1}},
		{name: "login host down once", mode: sfclient.AuthJWT,
			before: func() { emu.AddFault(sfemutest.Fault{Endpoint: "token", Kind: "503", Count: 1}) },
			want:   map[string]int64{"error/unavailable": 1, "ok": 1}},
		{name: "login host unreachable", mode: sfclient.AuthJWT,
			tweak: func(c *sfclient.Config) {
				c.Credentials.LoginURL = "http://127.0.0.1:1"
				c.Retry.Attempts = 1
			},
			wantErr: true, want: map[string]int64{"error/unavailable": 1}},
		{name: "caller gave up", mode: sfclient.AuthJWT,
			before:  func() { emu.AddFault(sfemutest.Fault{Endpoint: "token", Kind: "latency", Latency: "1s", Count: 1}) },
			timeout: 100 * time.Millisecond, wantErr: true, want: map[string]int64{"canceled": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			c := newClient(t, emu, tc.mode, func(cfg *sfclient.Config) {
				cfg.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
				if tc.tweak != nil {
					tc.tweak(cfg)
				}
			})
			// Every series exists at zero before the first request.
			before := telemetrytest.OutcomeCounts(t, reader, sfclient.MetricTokenRefreshes)
			for _, s := range tokenSeries {
				if v, ok := before[s]; !ok || v != 0 {
					t.Errorf("before any request: %s = %d (present %v), want 0", s, v, ok)
				}
			}
			if len(before) != len(tokenSeries) {
				t.Errorf("before any request: series %v, want %v", before, tokenSeries)
			}
			if tc.before != nil {
				tc.before()
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := c.Query(ctx, "SELECT Id FROM Account")
			if (err != nil) != tc.wantErr {
				t.Fatalf("query: err = %v, want error %v", err, tc.wantErr)
			}
			for s, v := range telemetrytest.OutcomeCounts(t, reader, sfclient.MetricTokenRefreshes) {
				if v != tc.want[s] {
					t.Errorf("%s = %d, want %d (err %v)", s, v, tc.want[s], err)
				}
			}
		})
	}
}
