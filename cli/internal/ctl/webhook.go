package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cosell/cosell/cli/internal/opsdb"
	"github.com/cosell/cosell/cli/internal/svc"
)

// The webhook commands call the partnercenter-adapter's /admin/webhook
// routes: the adapter holds the Partner Center credentials and runs the
// same registration code as at its start. `webhook test --wait` then
// watches ingress.test_events for the event to arrive.

// WebhookRegistration is a webhook registration: where Partner Center
// sends which events.
type WebhookRegistration struct {
	WebhookURL    string   `json:"webhookUrl"`
	WebhookEvents []string `json:"webhookEvents"`
}

// WebhookView is the partnercenter-adapter's view of the registration
// (GET /admin/webhook).
type WebhookView struct {
	Mode              string               `json:"mode"`
	WebhooksEnabled   bool                 `json:"webhooksEnabled"`
	RegistersAtStart  bool                 `json:"registersAtStart"`
	OverwritesAtStart bool                 `json:"overwritesAtStart"`
	Verdict           string               `json:"verdict"`
	Detail            string               `json:"detail"`
	Current           *WebhookRegistration `json:"current"`
	Wanted            WebhookRegistration  `json:"wanted"`
	URLMatches        bool                 `json:"urlMatches"`
	MissingEvents     []string             `json:"missingEvents"`
}

// WebhookRegisterResult is the answer of POST /admin/webhook/register.
type WebhookRegisterResult struct {
	Action  string      `json:"action"`
	Outcome string      `json:"outcome"`
	Changed bool        `json:"changed"`
	Webhook WebhookView `json:"webhook"`
}

// ValidationResult is one delivery attempt of a validation event, as
// Partner Center reports it.
type ValidationResult struct {
	ResponseCode    string `json:"responseCode"`
	ResponseMessage string `json:"responseMessage,omitempty"`
	SystemError     bool   `json:"systemError"`
	DateTimeUTC     string `json:"dateTimeUtc,omitempty"`
}

// WebhookTestResult is what `webhook test` reports: the adapter's answer
// of POST /admin/webhook/test, Partner Center's latest status and, with
// --wait, the delivery ingress recorded.
type WebhookTestResult struct {
	CorrelationID  string             `json:"correlationId"`
	RequestedAt    time.Time          `json:"requestedAt"`
	WebhookURL     string             `json:"webhookUrl"`
	AddedTestEvent bool               `json:"addedTestEvent"`
	Status         string             `json:"status"`
	Results        []ValidationResult `json:"results"`
	StatusError    string             `json:"statusError,omitempty"`
	// Delivery is set when ingress recorded the event within --wait.
	Delivery *WebhookDelivery `json:"delivery,omitempty"`
}

// WebhookDelivery is the test event as ingress recorded it.
type WebhookDelivery struct {
	opsdb.TestEvent
	// DeliveredInMs is from the adapter's request to ingress's receipt
	// (two servers' clocks; 0 if they disagree the wrong way).
	DeliveredInMs int64 `json:"deliveredInMs"`
}

func runWebhookShow(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "",
		`Shows the tenant's Partner Center webhook registration (read by the
partnercenter-adapter with its credentials), what this install registers (its
PC_WEBHOOK_URL and the four referral events) and a verdict:

  registered  the registration points at this install with every referral event
  missing     Partner Center has no registration for the tenant
  differs     it points elsewhere, or here without every referral event

and the adapter's mode (webhook, or poll-only: the sweep alone). Exits 0 for
any verdict, 1 when the adapter or Partner Center could not be asked.`)
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	var v WebhookView
	if err := e.pcAdmin(ctx, http.MethodGet, "/admin/webhook", nil, &v); err != nil {
		return err
	}
	if e.opts.json {
		return writeJSON(e.out, v)
	}
	return printWebhookView(e, v)
}

func printWebhookView(e *env, v WebhookView) error {
	mode := v.Mode + " (notifications consumed"
	if !v.WebhooksEnabled {
		mode = v.Mode + " (no notifications: the sweep alone"
	}
	mode += fmt.Sprintf("; registers at start: %s; overwrites at start: %s)", yesNo(v.RegistersAtStart), yesNo(v.OverwritesAtStart))
	cur, curEvents := "none", ""
	if v.Current != nil {
		cur, curEvents = v.Current.WebhookURL, strings.Join(v.Current.WebhookEvents, ", ")
	}
	return kv(e.out,
		"Verdict", strings.ToUpper(v.Verdict)+": "+v.Detail,
		"Mode", mode,
		"Registered URL", cur,
		"Registered events", curEvents,
		"This install's URL", orUnset(v.Wanted.WebhookURL, "not set (PC_WEBHOOK_URL)"),
		"Its events", strings.Join(v.Wanted.WebhookEvents, ", "),
		"Missing events", strings.Join(v.MissingEvents, ", "),
	)
}

func runWebhookRegister(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "[--overwrite] [--force]",
		`Registers this install's webhook with Partner Center by running the
partnercenter-adapter's own start-up registration (under the same lease, so
replicas never write at once): no registration → created; ours with every
referral event → unchanged; ours lacking events → updated; pointing elsewhere →
refused (exit 1) unless --overwrite. Partner Center allows ONE registration
per tenant: overwriting one that points elsewhere (production, when this is
staging) moves every notification here.

A poll-only adapter (PC_MODE=poll-only) refuses, so a second environment never
takes production's registration, unless --force.`)
	overwrite := fs.Bool("overwrite", false, "replace a registration that points at another URL")
	force := fs.Bool("force", false, "register even though the adapter runs in poll-only mode")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	body, err := json.Marshal(map[string]bool{"overwrite": *overwrite, "force": *force})
	if err != nil {
		return err
	}
	var res WebhookRegisterResult
	if err := e.pcAdmin(ctx, http.MethodPost, "/admin/webhook/register", body, &res); err != nil {
		var se *svc.StatusError
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			switch {
			case strings.HasPrefix(se.Message, "registrationElsewhere:"):
				return fmt.Errorf("%w\nTo take it over: cosellctl webhook register --overwrite", err)
			case strings.HasPrefix(se.Message, "pollOnly:"):
				return fmt.Errorf("%w\nTo register anyway: cosellctl webhook register --force", err)
			}
		}
		return err
	}
	if e.opts.json {
		return writeJSON(e.out, res)
	}
	url := res.Webhook.Wanted.WebhookURL
	var line string
	switch res.Outcome {
	case "created":
		line = "created: Partner Center now sends the referral events to " + url
	case "unchanged":
		line = "unchanged: the registration already points at " + url + " with every referral event"
	case "updated":
		line = "updated: added the missing referral events to the registration of " + url
	case "overwritten":
		line = "overwritten: the registration pointed elsewhere and now points at " + url
	default:
		line = res.Outcome + " (" + res.Action + ")"
	}
	fmt.Fprintf(e.out, "Webhook registration %s\n\n", line)
	return printWebhookView(e, res.Webhook)
}

func runWebhookTest(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "[--wait DURATION]",
		`Asks Partner Center, through the partnercenter-adapter, to send a validation
(test-created) event to the registered webhook URL, and prints its correlation
id and Partner Center's delivery status. The registration must point at this
install; test-created is added to it when missing (Partner Center sends test
events only to registrations listing it). Partner Center allows two test
events a minute.

With --wait, it then waits until ingress has verified and recorded the event in
ingress.test_events (read with --database-url) and prints how long delivery
took: proof that Partner Center reaches ingress and that its signatures
verify. Exits 1 if the event has not arrived within DURATION.`)
	wait := fs.Duration("wait", 0, "wait this long for ingress to record the event, e.g. 30s (0: do not wait)")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	if *wait < 0 {
		return usagef("--wait %s: want a positive duration, e.g. 30s", *wait)
	}
	var db *opsdb.DB
	if *wait > 0 {
		// Before asking: a test event is precious (two a minute).
		if db, err = e.openDB(ctx); err != nil {
			return fmt.Errorf("--wait reads ingress.test_events: %w", err)
		}
	}
	var res WebhookTestResult
	if err := e.pcAdmin(ctx, http.MethodPost, "/admin/webhook/test", []byte("{}"), &res); err != nil {
		return err
	}
	if res.Results == nil {
		res.Results = []ValidationResult{}
	}
	if *wait == 0 {
		if e.opts.json {
			return writeJSON(e.out, res)
		}
		return printTestResult(e, res)
	}
	if !e.opts.json {
		if err := printTestResult(e, res); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "\nWaiting up to %s for ingress to record it...\n", *wait)
	}
	ev, waitErr := waitTestEvent(ctx, db, res.CorrelationID, *wait)
	// Partner Center's status now says how the delivery went (best effort:
	// the wait's outcome is what matters).
	var st struct {
		Status  string             `json:"status"`
		Results []ValidationResult `json:"results"`
	}
	if err := e.pcAdmin(ctx, http.MethodGet, "/admin/webhook/test/"+res.CorrelationID, nil, &st); err == nil {
		res.Status, res.Results, res.StatusError = st.Status, st.Results, ""
	}
	if waitErr == nil {
		res.Delivery = &WebhookDelivery{TestEvent: ev, DeliveredInMs: max(0, ev.ReceivedAt.Sub(res.RequestedAt).Milliseconds())}
	}
	if e.opts.json {
		if err := writeJSON(e.out, res); err != nil {
			return err
		}
	} else if err := printDelivery(e, res); err != nil {
		return err
	}
	if waitErr != nil {
		if errors.Is(waitErr, opsdb.ErrNotFound) {
			return fmt.Errorf("no test event %s reached ingress within %s (Partner Center's status: %s). "+
				"Check that %s reaches ingress and ingress's log for signature failures (WEBHOOK_TRUSTED_CA_FILE, WEBHOOK_CERT_HOSTS)",
				res.CorrelationID, *wait, statusText(res), res.WebhookURL)
		}
		return waitErr
	}
	return nil
}

// waitTestEvent polls ingress.test_events until the event shows up or
// wait has passed (opsdb.ErrNotFound).
func waitTestEvent(ctx context.Context, db *opsdb.DB, correlationID string, wait time.Duration) (opsdb.TestEvent, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ev, err := db.TestEventFor(wctx, correlationID)
		if err == nil {
			return ev, nil
		}
		if !errors.Is(err, opsdb.ErrNotFound) && wctx.Err() == nil {
			return opsdb.TestEvent{}, err
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return opsdb.TestEvent{}, ctx.Err()
			}
			return opsdb.TestEvent{}, fmt.Errorf("waited %s: %w", wait, opsdb.ErrNotFound)
		case <-tick.C:
		}
	}
}

func printTestResult(e *env, res WebhookTestResult) error {
	pairs := []string{
		"Correlation id", res.CorrelationID,
		"Requested at", ts(res.RequestedAt),
		"Sent to", res.WebhookURL,
		"Partner Center", statusText(res),
	}
	if res.AddedTestEvent {
		pairs = append(pairs, "Note", "added test-created to the registration (Partner Center sends test events only to registrations listing it)")
	}
	return kv(e.out, pairs...)
}

func printDelivery(e *env, res WebhookTestResult) error {
	if res.Delivery == nil {
		return kv(e.out, "Delivered", "NO", "Partner Center", statusText(res))
	}
	d := res.Delivery
	took := (time.Duration(d.DeliveredInMs) * time.Millisecond).String()
	return kv(e.out,
		"Delivered", fmt.Sprintf("yes, in %s: ingress verified the signature and recorded it at %s", took, ts(d.ReceivedAt)),
		"Deliveries", fmt.Sprint(d.Deliveries),
		"Trace", d.TraceID,
		"Partner Center", statusText(res),
	)
}

// statusText summarises Partner Center's validation status and attempts.
func statusText(res WebhookTestResult) string {
	if res.Status == "" {
		if res.StatusError != "" {
			return "unknown: " + res.StatusError
		}
		return "unknown"
	}
	if len(res.Results) == 0 {
		return res.Status + " (no delivery attempt yet)"
	}
	last := res.Results[len(res.Results)-1]
	code := last.ResponseCode
	if last.SystemError && last.ResponseMessage != "" {
		code = strings.TrimSpace(code + " " + last.ResponseMessage)
	}
	noun := "attempts"
	if len(res.Results) == 1 {
		noun = "attempt"
	}
	return fmt.Sprintf("%s (%d %s, last: %s)", res.Status, len(res.Results), noun, code)
}

// pcAdmin calls one of the partnercenter-adapter's admin routes and
// decodes its answer into out, explaining what an operator can do about a
// failure: an unreachable adapter names the URL and how to change it, an
// adapter without the route is probably older.
func (e *env) pcAdmin(ctx context.Context, method, path string, body []byte, out any) error {
	c := e.pcAdapter()
	var (
		data json.RawMessage
		err  error
	)
	if method == http.MethodGet {
		data, err = c.GetJSON(ctx, path)
	} else {
		data, err = c.PostJSON(ctx, path, body)
	}
	var se *svc.StatusError
	switch {
	case err == nil:
	case errors.As(err, &se):
		if se.Status == http.StatusNotFound && !strings.Contains(se.Message, "itemNotFound") {
			return fmt.Errorf("%s at %s has no %s route: is it older than this cosellctl? (%w)", c.Name, c.BaseURL, path, err)
		}
		return err
	case ctx.Err() != nil:
		return err
	default:
		return fmt.Errorf("%w (set --partnercenter-adapter-url or COSELL_PARTNERCENTER_ADAPTER_URL to the adapter's HTTP address)", err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s at %s: unexpected answer to %s %s: %w", c.Name, c.BaseURL, method, path, err)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orUnset(s, unset string) string {
	if s == "" {
		return unset
	}
	return s
}
