package pcclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// registrationPath is the webhook registration resource under the webhook
// API base.
const registrationPath = "/webhooks/v1/registration"

// Registration is the tenant's one webhook registration.
type Registration struct {
	// SubscriberID is Partner Center's id of the registration (set on
	// answers only).
	SubscriberID string `json:"SubscriberId,omitempty"`
	// WebhookURL is where Partner Center POSTs notifications.
	WebhookURL string `json:"WebhookUrl"`
	// WebhookEvents are the events delivered.
	WebhookEvents []string `json:"WebhookEvents"`
	// SignatureTokenToMsSignatureHeader puts the signature in
	// x-ms-signature instead of Authorization.
	SignatureTokenToMsSignatureHeader bool `json:"SignatureTokenToMsSignatureHeader"`
}

// GetRegistration reads the tenant's registration; found is false when
// there is none (404).
func (c *Client) GetRegistration(ctx context.Context) (reg Registration, found bool, err error) {
	resp, err := c.do(ctx, request{
		op: "GetRegistration", resource: ResourceWebhooks, method: http.MethodGet,
		url: c.hookBase.JoinPath(registrationPath).String(), ok: []int{http.StatusOK},
	})
	if IsNotFound(err) {
		return Registration{}, false, nil
	}
	if err != nil {
		return Registration{}, false, err
	}
	if err := json.Unmarshal(resp.body, &reg); err != nil {
		return Registration{}, false, fmt.Errorf("partner center GetRegistration: decode: %w", err)
	}
	return reg, true, nil
}

// CreateRegistration registers the webhook (POST); Partner Center answers
// 409 when a registration exists.
func (c *Client) CreateRegistration(ctx context.Context, reg Registration) (Registration, error) {
	return c.writeRegistration(ctx, "CreateRegistration", http.MethodPost, reg)
}

// UpdateRegistration replaces the registration (PUT).
func (c *Client) UpdateRegistration(ctx context.Context, reg Registration) (Registration, error) {
	return c.writeRegistration(ctx, "UpdateRegistration", http.MethodPut, reg)
}

func (c *Client) writeRegistration(ctx context.Context, op, method string, reg Registration) (Registration, error) {
	reg.SubscriberID = ""
	body, err := json.Marshal(reg)
	if err != nil {
		return Registration{}, fmt.Errorf("partner center %s: encode: %w", op, err)
	}
	resp, err := c.do(ctx, request{
		op: op, resource: ResourceWebhooks, method: method, body: body,
		url: c.hookBase.JoinPath(registrationPath).String(), ok: []int{http.StatusOK, http.StatusCreated},
	})
	if err != nil {
		return Registration{}, err
	}
	var out Registration
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return Registration{}, fmt.Errorf("partner center %s: decode: %w", op, err)
	}
	return out, nil
}

// validationEventsPath is where test (validation) events are requested and
// their delivery status read.
const validationEventsPath = registrationPath + "/validationEvents"

// ValidationStatus is Partner Center's record of one validation event: how
// each delivery attempt to the registered URL went.
type ValidationStatus struct {
	CorrelationID string `json:"correlationId"`
	PartnerID     string `json:"partnerId,omitempty"`
	// Status is "completed" once delivered; the emulator also reports
	// "pending" and "failed".
	Status      string             `json:"status"`
	CallbackURL string             `json:"callbackUrl,omitempty"`
	Results     []ValidationResult `json:"results"`
}

// ValidationResult is one delivery attempt of a validation event.
type ValidationResult struct {
	// ResponseCode is the receiver's answer as an HTTP reason name ("OK").
	ResponseCode    string `json:"responseCode"`
	ResponseMessage string `json:"responseMessage,omitempty"`
	// SystemError is set when no HTTP answer came back.
	SystemError bool   `json:"systemError"`
	DateTimeUTC string `json:"dateTimeUtc,omitempty"`
}

// SendValidationEvent asks Partner Center to send a test-created event to
// the registered URL and returns the event's correlation id. The
// registration must list test-created. It is never repeated blindly:
// Partner Center allows two validation events a minute, so a retry after a
// lost answer would spend the second one. Its 429 (that allowance used up)
// comes back at once and does not hold up the adapter's other calls.
func (c *Client) SendValidationEvent(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, request{
		op: "SendValidationEvent", resource: ResourceWebhooks, method: http.MethodPost, noReplay: true, ownLimit: true,
		url: c.hookBase.JoinPath(validationEventsPath).String(), ok: []int{http.StatusOK, http.StatusCreated, http.StatusAccepted},
	})
	if err != nil {
		return "", err
	}
	var out struct {
		CorrelationID string `json:"correlationId"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return "", fmt.Errorf("partner center SendValidationEvent: decode: %w", err)
	}
	if out.CorrelationID == "" {
		return "", fmt.Errorf("partner center SendValidationEvent: the answer has no correlationId")
	}
	return out.CorrelationID, nil
}

// GetValidationEvent reads the delivery status of a validation event; a
// 404 (unknown or expired id) is an *APIError for which IsNotFound holds.
func (c *Client) GetValidationEvent(ctx context.Context, correlationID string) (ValidationStatus, error) {
	resp, err := c.do(ctx, request{
		op: "GetValidationEvent", resource: ResourceWebhooks, method: http.MethodGet,
		url: c.hookBase.JoinPath(validationEventsPath, correlationID).String(), ok: []int{http.StatusOK},
	})
	if err != nil {
		return ValidationStatus{}, err
	}
	var out ValidationStatus
	if err := json.Unmarshal(resp.body, &out); err != nil {
		return ValidationStatus{}, fmt.Errorf("partner center GetValidationEvent: decode: %w", err)
	}
	return out, nil
}
