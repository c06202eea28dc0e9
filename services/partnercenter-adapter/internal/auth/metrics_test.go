package auth_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/libs/telemetry/telemetrytest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/tokenstore"
)

// allSeries is every series the counter has from the start.
var allSeries = []string{
	"ok", "canceled",
	"error/no_refresh_token", "error/token_key", "error/store", "error/invalid_grant", "error/invalid_client",
	"error/rejected", "error/unavailable", "error/bad_response", "error/other",
}

func TestMeteredGrantCountsEveryOutcome(t *testing.T) {
	emu := pcemutest.Start(t, "-device-code-interval", "1s")
	ctx := context.Background()
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: service, FS: storetest.RepoMigrations(t, service)})
	pool := storetest.Open(t, dsn)
	consented, err := tokenstore.New(pool, key(1), pcemutest.TenantID, pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	login(t, emu, consented)
	// Other (tenant, client) rows of the same table, so each case has the
	// state it needs without disturbing the consented one.
	empty, err := tokenstore.New(pool, key(1), "tenant-without-consent", pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	bogus, err := tokenstore.New(pool, key(1), "tenant-with-revoked-consent", pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if err := bogus.Save(ctx, "a-refresh-token-entra-never-issued"); err != nil {
		t.Fatal(err)
	}
	wrongKey, err := tokenstore.New(pool, key(2), pcemutest.TenantID, pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	closedPool := storetest.Open(t, dsn)
	closedPool.Close()
	unreachable, err := tokenstore.New(closedPool, key(1), pcemutest.TenantID, pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}

	once := func(e *auth.Endpoint) *auth.Endpoint { e.Attempts = 1; return e }
	withSecret := func(secret string) *auth.Endpoint { e := endpoint(emu); e.ClientSecret = secret; return e }
	withClient := func(id string) *auth.Endpoint { e := endpoint(emu); e.ClientID = id; return e }
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	for _, tc := range []struct {
		name  string
		grant auth.Grant
		fault *pcemutest.Fault
		ctx   context.Context
		want  string
	}{
		{name: "sam ok", grant: auth.SAMGrant(endpoint(emu), consented), want: "ok"},
		{name: "password ok", grant: auth.PasswordGrant(endpoint(emu), pcemutest.Username, pcemutest.Password), want: "ok"},
		{name: "no consent", grant: auth.SAMGrant(endpoint(emu), empty), want: "error/no_refresh_token"},
		{name: "wrong PC_TOKEN_KEY", grant: auth.SAMGrant(endpoint(emu), wrongKey), want: "error/token_key"},
		{name: "revoked refresh token", grant: auth.SAMGrant(endpoint(emu), bogus), want: "error/invalid_grant"},
		{name: "wrong password", grant: auth.PasswordGrant(endpoint(emu), pcemutest.Username, "wrong"), want: "error/invalid_grant"},
		{name: "wrong client secret", grant: auth.PasswordGrant(withSecret("wrong"), pcemutest.Username, pcemutest.Password), want: "error/invalid_client"},
		{name: "unknown client", grant: auth.PasswordGrant(withClient("00000000-0000-0000-0000-000000000000"), pcemutest.Username, pcemutest.Password), want: "error/rejected"},
		{name: "token endpoint down", grant: auth.SAMGrant(once(endpoint(emu)), consented),
			fault: &pcemutest.Fault{Endpoint: "token", Kind: "503", Count: 1}, want: "error/unavailable"},
		{name: "token endpoint unreachable", grant: auth.PasswordGrant(&auth.Endpoint{TokenURL: "http://127.0.0.1:1/common/oauth2/token", ClientID: pcemutest.ClientID, Attempts: 1}, pcemutest.Username, pcemutest.Password),
			want: "error/unavailable"},
		{name: "postgres unreachable", grant: auth.SAMGrant(endpoint(emu), unreachable), want: "error/store"},
		{name: "caller gave up", grant: auth.SAMGrant(endpoint(emu), consented), ctx: canceled, want: "canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			grant, err := auth.Metered(tc.grant, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
			if err != nil {
				t.Fatal(err)
			}
			// Every series exists at zero before the first grant.
			before := telemetrytest.OutcomeCounts(t, reader, auth.MetricTokenRefreshes)
			for _, s := range allSeries {
				if v, ok := before[s]; !ok || v != 0 {
					t.Errorf("before any grant: %s = %d (present %v), want 0", s, v, ok)
				}
			}
			if len(before) != len(allSeries) {
				t.Errorf("before any grant: %d series %v, want %d", len(before), before, len(allSeries))
			}
			if tc.fault != nil {
				emu.AddFault(*tc.fault)
				t.Cleanup(emu.ClearFaults)
			}
			callCtx := ctx
			if tc.ctx != nil {
				callCtx = tc.ctx
			}
			tok, err := auth.NewSource(grant).Token(callCtx, pcclient.ResourceReferrals)
			if (err == nil) != (tc.want == "ok") {
				t.Fatalf("Token = %q, %v; want outcome %s", tok, err, tc.want)
			}
			after := telemetrytest.OutcomeCounts(t, reader, auth.MetricTokenRefreshes)
			for s, v := range after {
				want := int64(0)
				if s == tc.want {
					want = 1
				}
				if v != want {
					t.Errorf("%s = %d, want %d (err %v)", s, v, want, err)
				}
			}
			if _, ok := after[tc.want]; !ok {
				t.Errorf("no series %s in %v", tc.want, after)
			}
		})
	}
}
