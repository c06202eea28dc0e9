package stack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// WebhookFault is a Partner Center webhook delivery fault (see
// emulators/docs/pcwebhooks.md §3): drop, duplicate, delay, reorder, or a
// signature-tampering kind (badSignature, missingSignature, wrongOrg,
// untrustedCert, foreignCertHost).
type WebhookFault struct {
	Kind    string  `json:"kind"`
	Event   string  `json:"event,omitempty"`
	Count   int     `json:"count,omitempty"`
	Rate    float64 `json:"rate,omitempty"`
	Latency string  `json:"latency,omitempty"`
	Order   string  `json:"order,omitempty"`
}

// WebhookAttempt is one delivery try as the emulator logged it.
type WebhookAttempt struct {
	Number          int       `json:"number"`
	At              time.Time `json:"at"`
	StatusCode      int       `json:"statusCode"`
	ResponseMessage string    `json:"responseMessage"`
	Error           string    `json:"error"`
}

// WebhookDelivery is one entry of the emulator's delivery log.
type WebhookDelivery struct {
	ID          string           `json:"id"`
	EventName   string           `json:"eventName"`
	ResourceURI string           `json:"resourceUri"`
	Status      string           `json:"status"` // pending, held, delivered, parked, dropped
	Parked      bool             `json:"parked"`
	DuplicateOf string           `json:"duplicateOf"`
	Faults      []string         `json:"faults"`
	Attempts    []WebhookAttempt `json:"attempts"`
	CertURL     string           `json:"certificateUrl"`
}

// ReferralID is the last path segment of the delivery's ResourceUri.
func (d WebhookDelivery) ReferralID() string {
	return d.ResourceURI[strings.LastIndex(d.ResourceURI, "/")+1:]
}

// AddWebhookFault installs a delivery fault and returns its id.
func (p *PartnerCenter) AddWebhookFault(ctx context.Context, f WebhookFault) (int, error) {
	var out struct {
		ID int `json:"id"`
	}
	err := doJSON(ctx, p.c, http.MethodPost, p.BaseURL+"/_emulator/webhooks/faults", nil, f, &out, http.StatusCreated)
	return out.ID, err
}

// DeleteWebhookFault removes one delivery fault and releases the events it holds.
func (p *PartnerCenter) DeleteWebhookFault(ctx context.Context, id int) error {
	return doJSON(ctx, p.c, http.MethodDelete, fmt.Sprintf("%s/_emulator/webhooks/faults/%d", p.BaseURL, id), nil, nil, nil, http.StatusNoContent)
}

// ClearWebhookFaults removes every delivery fault and releases held events.
func (p *PartnerCenter) ClearWebhookFaults(ctx context.Context) error {
	return doJSON(ctx, p.c, http.MethodDelete, p.BaseURL+"/_emulator/webhooks/faults", nil, nil, nil, http.StatusNoContent)
}

// WebhookDeliveries returns the delivery log (oldest first), optionally
// only one event name.
func (p *PartnerCenter) WebhookDeliveries(ctx context.Context, event string) ([]WebhookDelivery, error) {
	u := p.BaseURL + "/_emulator/webhooks/deliveries"
	if event != "" {
		u += "?event=" + url.QueryEscape(event)
	}
	var out []WebhookDelivery
	err := doJSON(ctx, p.c, http.MethodGet, u, nil, nil, &out, http.StatusOK)
	return out, err
}

// DeliveriesFor returns the log entries whose ResourceUri names referralID.
func (p *PartnerCenter) DeliveriesFor(ctx context.Context, referralID string) ([]WebhookDelivery, error) {
	all, err := p.WebhookDeliveries(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []WebhookDelivery
	for _, d := range all {
		if d.ReferralID() == referralID {
			out = append(out, d)
		}
	}
	return out, nil
}

// WebhookRegistration is the registration the emulator holds.
type WebhookRegistration struct {
	WebhookURL    string   `json:"WebhookUrl"`
	WebhookEvents []string `json:"WebhookEvents"`
}

// errNoRegistration is returned while nobody registered a webhook.
var errNoRegistration = errors.New("no webhook registration")

// Registration returns the current webhook registration.
func (p *PartnerCenter) Registration(ctx context.Context) (WebhookRegistration, error) {
	var out WebhookRegistration
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.BaseURL+"/_emulator/webhooks/registration", nil)
	if err != nil {
		return out, err
	}
	resp, err := p.c.Do(req)
	if err != nil {
		return out, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return out, errNoRegistration
	}
	return out, doJSON(ctx, p.c, http.MethodGet, p.BaseURL+"/_emulator/webhooks/registration", nil, nil, &out, http.StatusOK)
}

// WaitRegistered polls until the webhook registration points at url and
// lists the referral events (the partnercenter-adapter registers it at
// start-up, possibly after it reports ready).
func (p *PartnerCenter) WaitRegistered(ctx context.Context, url string) error {
	var last WebhookRegistration
	var lastErr error
	for {
		last, lastErr = p.Registration(ctx)
		if lastErr == nil && last.WebhookURL == url && containsAll(last.WebhookEvents, "referral-created", "referral-updated") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook not registered for %s with the referral events (last: %+v, %v): %w", url, last, lastErr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}
