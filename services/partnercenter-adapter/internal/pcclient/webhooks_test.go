package pcclient_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
)

func TestValidationEvents(t *testing.T) {
	emu := pcemutest.Start(t)
	c := newClient(t, emu, nil)
	ctx := context.Background()
	if _, err := c.SendValidationEvent(ctx); err == nil {
		t.Fatal("a validation event without a registration was accepted")
	}
	reg := pcclient.Registration{WebhookURL: "http://127.0.0.1:1/webhooks/partnercenter", WebhookEvents: []string{"referral-updated", "test-created"}}
	if _, err := c.CreateRegistration(ctx, reg); err != nil {
		t.Fatal(err)
	}
	id, err := c.SendValidationEvent(ctx)
	if err != nil || id == "" {
		t.Fatalf("SendValidationEvent = %q, %v", id, err)
	}
	st, err := c.GetValidationEvent(ctx, id)
	if err != nil || st.CorrelationID != id || st.Status == "" || st.CallbackURL != reg.WebhookURL {
		t.Fatalf("GetValidationEvent = %+v, %v", st, err)
	}
	if _, err := c.GetValidationEvent(ctx, "9d4e3c1a-0000-4000-8000-000000000404"); !pcclient.IsNotFound(err) {
		t.Errorf("unknown correlation id: %v, want a 404", err)
	}

	// Two a minute: the third is refused at once, and only that operation
	// is held back, not the adapter's other calls.
	if _, err := c.SendValidationEvent(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.SendValidationEvent(ctx)
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests || ae.RetryAfter <= 0 {
		t.Fatalf("third validation event in a minute: %v, want a 429 with Retry-After", err)
	}
	if _, _, err := c.GetRegistration(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the validation throttle held up another call for %s", d)
	}
}
