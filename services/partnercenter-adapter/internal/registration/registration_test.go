package registration_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/registration"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

const ours = "https://cosell.example.com/webhooks/partnercenter"

func TestDecide(t *testing.T) {
	all := registration.Events()
	for _, tc := range []struct {
		name       string
		current    *pcclient.Registration
		overwrite  bool
		want       registration.Action
		wantEvents []string
	}{
		{"none: create", nil, false, registration.Create, all},
		{"same URL and events: keep", &pcclient.Registration{WebhookURL: ours, WebhookEvents: all}, false, registration.Keep, nil},
		{"same URL modulo case and slash: keep", &pcclient.Registration{WebhookURL: "HTTPS://Cosell.Example.com/webhooks/partnercenter/", WebhookEvents: append(slices.Clone(all), "test-created")}, false, registration.Keep, nil},
		{"same URL, missing events: add them", &pcclient.Registration{WebhookURL: ours, WebhookEvents: []string{"referral-created", "test-created"}}, false,
			registration.AddEvents, []string{"referral-created", "test-created", "referral-updated", "related-referral-created", "related-referral-updated"}},
		{"elsewhere: refuse", &pcclient.Registration{WebhookURL: "https://prod.example.com/hook", WebhookEvents: all}, false, registration.Refuse, nil},
		{"elsewhere with overwrite: overwrite", &pcclient.Registration{WebhookURL: "https://prod.example.com/hook", WebhookEvents: all}, true, registration.Overwrite, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reg := registration.Decide(tc.current, ours, tc.overwrite)
			if got != tc.want {
				t.Fatalf("action %s, want %s", got, tc.want)
			}
			if !slices.Equal(reg.WebhookEvents, tc.wantEvents) {
				t.Errorf("events %v, want %v", reg.WebhookEvents, tc.wantEvents)
			}
			if tc.wantEvents != nil && reg.WebhookURL != ours {
				t.Errorf("writes URL %q", reg.WebhookURL)
			}
		})
	}
}

func client(t *testing.T, emu *pcemutest.Emulator) *pcclient.Client {
	t.Helper()
	ep := &auth.Endpoint{TokenURL: emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	c, err := pcclient.New(pcclient.Config{APIBaseURL: emu.URL, WebhookAPIBaseURL: emu.URL,
		Tokens: auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureAgainstPartnerCenter(t *testing.T) {
	emu := pcemutest.Start(t)
	c := client(t, emu)
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))

	// None → POST.
	if a, err := registration.Ensure(ctx, c, ours, false, log); err != nil || a != registration.Create {
		t.Fatalf("fresh tenant: %s %v", a, err)
	}
	reg, _, err := c.GetRegistration(ctx)
	if err != nil || reg.WebhookURL != ours || !slices.Equal(reg.WebhookEvents, registration.Events()) {
		t.Fatalf("after create: %+v %v", reg, err)
	}

	// Same → nothing written.
	emu.ResetCounters()
	if a, err := registration.Ensure(ctx, c, ours, false, log); err != nil || a != registration.Keep {
		t.Fatalf("second run: %s %v", a, err)
	}
	if n := emu.Counters()["webhooks.registration"]; n != 1 {
		t.Errorf("keep made %d webhook API calls, want only the GET", n)
	}

	// Elsewhere → refused, and the log says what it found.
	other := "https://prod.example.com/hook"
	if _, err := c.UpdateRegistration(ctx, pcclient.Registration{WebhookURL: other, WebhookEvents: registration.Events()}); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if a, err := registration.Ensure(ctx, c, ours, false, log); err != nil || a != registration.Refuse {
		t.Fatalf("elsewhere: %s %v", a, err)
	}
	if reg, _, _ := c.GetRegistration(ctx); reg.WebhookURL != other {
		t.Fatalf("a registration pointing elsewhere was replaced: %+v", reg)
	}
	if !strings.Contains(logs.String(), other) || !strings.Contains(logs.String(), "NOT replacing") {
		t.Errorf("log does not say what was found: %s", logs.String())
	}

	// Elsewhere with overwrite → PUT.
	if a, err := registration.Ensure(ctx, c, ours, true, log); err != nil || a != registration.Overwrite {
		t.Fatalf("overwrite: %s %v", a, err)
	}
	if reg, _, _ := c.GetRegistration(ctx); reg.WebhookURL != ours {
		t.Fatalf("after overwrite: %+v", reg)
	}
}
