// Package registration keeps the tenant's Partner Center webhook
// registration pointing at our ingress for the four referral events.
// Partner Center allows one registration per tenant, so a registration that
// points elsewhere (production, when this is staging) is never replaced
// unless the operator says so.
package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
)

// Events are the referral events the adapter needs.
func Events() []string {
	return []string{"referral-created", "referral-updated", "related-referral-created", "related-referral-updated"}
}

// API is the webhook registration API (pcclient.Client).
type API interface {
	GetRegistration(ctx context.Context) (pcclient.Registration, bool, error)
	CreateRegistration(ctx context.Context, reg pcclient.Registration) (pcclient.Registration, error)
	UpdateRegistration(ctx context.Context, reg pcclient.Registration) (pcclient.Registration, error)
}

// Action is what Ensure does about the current registration.
type Action int

// Actions, in the order Decide considers them.
const (
	// Create: there is no registration; POST ours.
	Create Action = iota + 1
	// Keep: the registration already points at our URL with our events.
	Keep
	// AddEvents: it points at our URL but lacks some of our events; PUT
	// it with the union of events.
	AddEvents
	// Refuse: it points elsewhere and overwriting is not allowed.
	Refuse
	// Overwrite: it points elsewhere and overwriting is allowed; PUT ours.
	Overwrite
)

// String names the action in logs.
func (a Action) String() string {
	switch a {
	case Create:
		return "create"
	case Keep:
		return "keep"
	case AddEvents:
		return "add-events"
	case Refuse:
		return "refuse"
	case Overwrite:
		return "overwrite"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decide chooses the action for the current registration (nil when there
// is none), given the URL we want and whether overwriting is allowed, and
// returns the registration to write for Create, AddEvents and Overwrite.
func Decide(current *pcclient.Registration, wantURL string, overwrite bool) (Action, pcclient.Registration) {
	want := pcclient.Registration{WebhookURL: wantURL, WebhookEvents: Events(), SignatureTokenToMsSignatureHeader: true}
	switch {
	case current == nil:
		return Create, want
	case !SameURL(current.WebhookURL, wantURL):
		if overwrite {
			return Overwrite, want
		}
		return Refuse, pcclient.Registration{}
	}
	missing := missingEvents(current.WebhookEvents, Events())
	if len(missing) == 0 {
		return Keep, pcclient.Registration{}
	}
	// Our URL: keep events someone added on purpose (test-created) and
	// the signature header choice, add ours.
	upd := pcclient.Registration{
		WebhookURL:                        wantURL,
		WebhookEvents:                     append(slices.Clone(current.WebhookEvents), missing...),
		SignatureTokenToMsSignatureHeader: current.SignatureTokenToMsSignatureHeader,
	}
	return AddEvents, upd
}

// MissingEvents lists the referral events (Events) that reg lacks.
func MissingEvents(reg pcclient.Registration) []string {
	return missingEvents(reg.WebhookEvents, Events())
}

// missingEvents lists the events of want that have lacks, in want's order.
func missingEvents(have, want []string) []string {
	var missing []string
	for _, e := range want {
		if !slices.Contains(have, e) {
			missing = append(missing, e)
		}
	}
	return missing
}

// SameURL compares webhook URLs the way a server would route them: scheme
// and host case-insensitively, a trailing slash ignored.
func SameURL(a, b string) bool {
	ua, errA := url.Parse(strings.TrimSpace(a))
	ub, errB := url.Parse(strings.TrimSpace(b))
	if errA != nil || errB != nil {
		return strings.TrimSpace(a) == strings.TrimSpace(b)
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		strings.TrimRight(ua.Path, "/") == strings.TrimRight(ub.Path, "/") && ua.RawQuery == ub.RawQuery
}

// Ensure reads the registration, decides, and writes when needed. It says
// in the log what it found and what it did. Refuse is not an error: the
// adapter keeps running on the sweep, and the log tells the operator to set
// PC_WEBHOOK_OVERWRITE or use poll-only mode.
func Ensure(ctx context.Context, api API, wantURL string, overwrite bool, log *slog.Logger) (Action, error) {
	cur, found, err := api.GetRegistration(ctx)
	if err != nil {
		return 0, fmt.Errorf("read webhook registration: %w", err)
	}
	var current *pcclient.Registration
	if found {
		current = &cur
	}
	action, reg := Decide(current, wantURL, overwrite)
	foundAttr := slog.Group("found", "exists", found, "webhook_url", cur.WebhookURL, "events", cur.WebhookEvents)
	switch action {
	case Create:
		if _, err := api.CreateRegistration(ctx, reg); err != nil {
			return action, fmt.Errorf("create webhook registration: %w", err)
		}
		log.InfoContext(ctx, "webhook registration created", foundAttr, "webhook_url", reg.WebhookURL, "events", reg.WebhookEvents)
	case Keep:
		log.InfoContext(ctx, "webhook registration already points here with every referral event; nothing to do", foundAttr)
	case AddEvents:
		if _, err := api.UpdateRegistration(ctx, reg); err != nil {
			return action, fmt.Errorf("update webhook registration: %w", err)
		}
		log.InfoContext(ctx, "webhook registration points here but lacked referral events; updated", foundAttr, "events", reg.WebhookEvents)
	case Refuse:
		log.ErrorContext(ctx, "webhook registration points elsewhere; NOT replacing it (Partner Center allows one per tenant). "+
			"Set PC_WEBHOOK_OVERWRITE=true to take it over, or PC_MODE=poll-only to run beside it on the sweep alone",
			foundAttr, "wanted_url", wantURL)
	case Overwrite:
		if _, err := api.UpdateRegistration(ctx, reg); err != nil {
			return action, fmt.Errorf("overwrite webhook registration: %w", err)
		}
		log.WarnContext(ctx, "webhook registration pointed elsewhere; overwritten as PC_WEBHOOK_OVERWRITE allows", foundAttr,
			"webhook_url", reg.WebhookURL, "events", reg.WebhookEvents)
	}
	return action, nil
}

// EnsureWithRetry runs Ensure until it succeeds or ctx ends, backing off
// between failures (Partner Center or the network may be down at start).
func EnsureWithRetry(ctx context.Context, api API, wantURL string, overwrite bool, log *slog.Logger) (Action, error) {
	delay := time.Second
	for {
		action, err := Ensure(ctx, api, wantURL, overwrite, log)
		if err == nil {
			return action, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		log.WarnContext(ctx, "webhook registration failed; retrying", "err", err, "retry_in", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, time.Minute)
	}
}

// TestEvent is the event of a validation request: Partner Center sends one
// only to a registration that lists it.
const TestEvent = "test-created"

// ErrNotRegistered means the tenant has no webhook registration.
var ErrNotRegistered = errors.New("no webhook registration")

// ElsewhereError means the registration points at another URL than ours.
type ElsewhereError struct {
	// URL is where the registration points.
	URL string
}

// Error implements error.
func (e *ElsewhereError) Error() string {
	return "the webhook registration points at " + e.URL
}

// EnsureTestEvent makes the registration, which must point at wantURL,
// list test-created, so Partner Center accepts validation events for it.
// When the event is missing it PUTs the registration with it added, keeping
// the events and header choice already there (as Decide's AddEvents does),
// and reports added. It never touches a registration that points
// elsewhere (*ElsewhereError) and creates none (ErrNotRegistered): a test
// event is no reason to take the tenant's one registration.
func EnsureTestEvent(ctx context.Context, api API, wantURL string, log *slog.Logger) (added bool, err error) {
	cur, found, err := api.GetRegistration(ctx)
	if err != nil {
		return false, fmt.Errorf("read webhook registration: %w", err)
	}
	switch {
	case !found:
		return false, ErrNotRegistered
	case !SameURL(cur.WebhookURL, wantURL):
		return false, &ElsewhereError{URL: cur.WebhookURL}
	case slices.Contains(cur.WebhookEvents, TestEvent):
		return false, nil
	}
	upd := pcclient.Registration{
		WebhookURL:                        cur.WebhookURL,
		WebhookEvents:                     append(slices.Clone(cur.WebhookEvents), TestEvent),
		SignatureTokenToMsSignatureHeader: cur.SignatureTokenToMsSignatureHeader,
	}
	if _, err := api.UpdateRegistration(ctx, upd); err != nil {
		return false, fmt.Errorf("add %s to the webhook registration: %w", TestEvent, err)
	}
	log.InfoContext(ctx, "webhook registration lacked "+TestEvent+"; added it so Partner Center accepts validation events",
		"webhook_url", upd.WebhookURL, "events", upd.WebhookEvents)
	return true, nil
}
