package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/config"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/registration"
)

// WebhookAPI is Partner Center's webhook registration and validation API
// (pcclient.Client).
type WebhookAPI interface {
	registration.API
	SendValidationEvent(ctx context.Context) (string, error)
	GetValidationEvent(ctx context.Context, correlationID string) (pcclient.ValidationStatus, error)
}

// Lease serialises changes to the registration with the start-up
// registration, which runs under the same lease on one replica
// (store.Lease).
type Lease interface {
	Run(ctx context.Context, fn func(ctx context.Context) error) error
}

// Webhook serves the webhook routes: what the registration is and should
// be, registering on demand with the start-up code, and asking Partner
// Center for a validation event. Unlike the referral read, register and
// test change things at Partner Center, which is why poll-only installs
// refuse to register unless forced.
type Webhook struct {
	// API calls Partner Center.
	API WebhookAPI
	// URL is this install's callback (PC_WEBHOOK_URL); may be empty.
	URL string
	// Mode is config.ModeWebhook or config.ModePollOnly.
	Mode string
	// RegisterAtStart and OverwriteAtStart are PC_WEBHOOK_REGISTER and
	// PC_WEBHOOK_OVERWRITE, reported by GET /admin/webhook.
	RegisterAtStart, OverwriteAtStart bool
	// Lease, when set, is held while the registration is read and written.
	Lease Lease
	// LeaseWait bounds the wait for the lease (default 5s): the start-up
	// registration holds it for as long as it keeps failing.
	LeaseWait time.Duration
	// Logger receives what was done; nil discards it.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Routes adds GET /admin/webhook, POST /admin/webhook/register,
// POST /admin/webhook/test and GET /admin/webhook/test/{correlationId}.
func (wh *Webhook) Routes(r chi.Router) {
	r.Get("/admin/webhook", wh.show)
	r.Post("/admin/webhook/register", wh.register)
	r.Post("/admin/webhook/test", wh.test)
	r.Get("/admin/webhook/test/{correlationId}", wh.testStatus)
}

// Verdicts of GET /admin/webhook.
const (
	// VerdictRegistered: the registration points at our URL with every
	// referral event.
	VerdictRegistered = "registered"
	// VerdictMissing: the tenant has no registration.
	VerdictMissing = "missing"
	// VerdictDiffers: it points elsewhere, or here without every event.
	VerdictDiffers = "differs"
)

// RegistrationView is a webhook registration as the admin routes show it.
type RegistrationView struct {
	WebhookURL    string   `json:"webhookUrl"`
	WebhookEvents []string `json:"webhookEvents"`
}

// WebhookView is the answer of GET /admin/webhook.
type WebhookView struct {
	// Mode is webhook or poll-only; WebhooksEnabled is Mode == webhook
	// (notifications consumed).
	Mode            string `json:"mode"`
	WebhooksEnabled bool   `json:"webhooksEnabled"`
	// RegistersAtStart and OverwritesAtStart echo PC_WEBHOOK_REGISTER and
	// PC_WEBHOOK_OVERWRITE.
	RegistersAtStart  bool `json:"registersAtStart"`
	OverwritesAtStart bool `json:"overwritesAtStart"`
	// Verdict is registered, missing or differs; Detail says why in words.
	Verdict string `json:"verdict"`
	Detail  string `json:"detail"`
	// Current is Partner Center's registration, null when there is none.
	Current *RegistrationView `json:"current"`
	// Wanted is what this install registers.
	Wanted RegistrationView `json:"wanted"`
	// URLMatches says whether Current points at Wanted's URL;
	// MissingEvents lists the referral events Current lacks.
	URLMatches    bool     `json:"urlMatches"`
	MissingEvents []string `json:"missingEvents"`
}

// RegisterResult is the answer of POST /admin/webhook/register.
type RegisterResult struct {
	// Action is what the registration code decided: create, keep,
	// add-events or overwrite.
	Action string `json:"action"`
	// Outcome says it in words: created, unchanged, updated, overwritten.
	Outcome string `json:"outcome"`
	// Changed is false when the registration was already right.
	Changed bool `json:"changed"`
	// Webhook is the registration read back afterwards.
	Webhook WebhookView `json:"webhook"`
}

// TestResult is the answer of POST /admin/webhook/test.
type TestResult struct {
	CorrelationID string `json:"correlationId"`
	// RequestedAt is when the adapter asked (its clock), for measuring
	// the delivery against ingress's received_at.
	RequestedAt time.Time `json:"requestedAt"`
	// WebhookURL is where Partner Center sends the event.
	WebhookURL string `json:"webhookUrl"`
	// AddedTestEvent is set when test-created had to be added to the
	// registration first.
	AddedTestEvent bool `json:"addedTestEvent"`
	// Status and Results are Partner Center's validation status read
	// right after the request; StatusError says why when it could not be
	// read (the event was requested all the same).
	Status      string                      `json:"status"`
	Results     []pcclient.ValidationResult `json:"results"`
	StatusError string                      `json:"statusError,omitempty"`
}

func (wh *Webhook) log() *slog.Logger {
	if wh.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return wh.Logger
}

func (wh *Webhook) now() time.Time {
	if wh.Now == nil {
		return time.Now()
	}
	return wh.Now()
}

// show answers 200 with a WebhookView, or an error when Partner Center
// could not be asked.
func (wh *Webhook) show(w http.ResponseWriter, r *http.Request) {
	view, err := wh.view(r.Context())
	if err != nil {
		wh.upstreamError(w, r, "reading the webhook registration", err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// view reads the registration and judges it with registration.Decide, the
// start-up code's own rule.
func (wh *Webhook) view(ctx context.Context) (WebhookView, error) {
	cur, found, err := wh.API.GetRegistration(ctx)
	if err != nil {
		return WebhookView{}, err
	}
	v := WebhookView{
		Mode: wh.Mode, WebhooksEnabled: wh.Mode != config.ModePollOnly,
		RegistersAtStart: wh.RegisterAtStart, OverwritesAtStart: wh.OverwriteAtStart,
		Wanted:        RegistrationView{WebhookURL: wh.URL, WebhookEvents: registration.Events()},
		MissingEvents: []string{},
	}
	var current *pcclient.Registration
	if found {
		current = &cur
		v.Current = &RegistrationView{WebhookURL: cur.WebhookURL, WebhookEvents: cur.WebhookEvents}
		if v.Current.WebhookEvents == nil {
			v.Current.WebhookEvents = []string{}
		}
		v.URLMatches = wh.URL != "" && registration.SameURL(cur.WebhookURL, wh.URL)
		v.MissingEvents = append(v.MissingEvents, registration.MissingEvents(cur)...)
	}
	action, _ := registration.Decide(current, wh.URL, false)
	switch {
	case action == registration.Create:
		v.Verdict, v.Detail = VerdictMissing, "Partner Center has no webhook registration for this tenant"
	case action == registration.Keep && wh.URL != "":
		v.Verdict, v.Detail = VerdictRegistered, "Partner Center sends every referral event to this install's webhook URL"
	case action == registration.AddEvents:
		v.Verdict = VerdictDiffers
		v.Detail = "the registration points at this install but lacks " + strings.Join(v.MissingEvents, ", ")
	case wh.URL == "":
		v.Verdict = VerdictDiffers
		v.Detail = "PC_WEBHOOK_URL is not set, so this install has no callback of its own; the registration points at " + cur.WebhookURL
	default:
		v.Verdict = VerdictDiffers
		v.Detail = "the registration points at " + cur.WebhookURL + ", not at this install's " + wh.URL
	}
	if wh.Mode == config.ModePollOnly && v.Verdict != VerdictRegistered {
		v.Detail += " (expected in poll-only mode: this install relies on the sweep)"
	}
	return v, nil
}

// registerRequest is the body of POST /admin/webhook/register.
type registerRequest struct {
	// Overwrite replaces a registration that points elsewhere.
	Overwrite bool `json:"overwrite"`
	// Force registers even in poll-only mode.
	Force bool `json:"force"`
}

// register runs registration.Ensure, the start-up registration, under its
// lease: 200 with a RegisterResult, 409 when it refuses (poll-only without
// force, no PC_WEBHOOK_URL, a registration elsewhere without overwrite).
func (wh *Webhook) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := decodeBody(r, &req); err != nil {
		writeErr(w, http.StatusBadRequest, apiError{Code: "invalidRequest", Message: err.Error()})
		return
	}
	if wh.Mode == config.ModePollOnly && !req.Force {
		writeErr(w, http.StatusConflict, apiError{Code: "pollOnly", Message: "this partnercenter-adapter runs with PC_MODE=poll-only: " +
			"Partner Center allows one webhook registration per tenant, and a poll-only install (staging, a second environment) " +
			"must not take it from production. Pass force to register anyway."})
		return
	}
	if wh.URL == "" {
		writeErr(w, http.StatusConflict, apiError{Code: "noWebhookUrl", Message: "PC_WEBHOOK_URL is not set on the partnercenter-adapter, " +
			"so there is no callback URL to register; set it to ingress's public /webhooks/partnercenter URL"})
		return
	}
	log := wh.log().With("via", "admin", "overwrite", req.Overwrite, "force", req.Force)
	var action registration.Action
	err := wh.serialised(r.Context(), func(ctx context.Context) error {
		var err error
		action, err = registration.Ensure(ctx, wh.API, wh.URL, req.Overwrite, log)
		return err
	})
	if err != nil {
		wh.upstreamError(w, r, "registering the webhook", err)
		return
	}
	view, err := wh.view(r.Context())
	if err != nil {
		wh.upstreamError(w, r, "reading the webhook registration back", err)
		return
	}
	if action == registration.Refuse {
		writeJSON(w, http.StatusConflict, map[string]any{
			"error": apiError{Code: "registrationElsewhere", Message: fmt.Sprintf(
				"the registration points at %s, not at this install's %s, and Partner Center allows one per tenant; "+
					"left alone. Pass overwrite to take it over", registeredURL(view), wh.URL)},
			"webhook": view,
		})
		return
	}
	res := RegisterResult{Action: action.String(), Changed: action != registration.Keep, Webhook: view}
	switch action {
	case registration.Create:
		res.Outcome = "created"
	case registration.Keep:
		res.Outcome = "unchanged"
	case registration.AddEvents:
		res.Outcome = "updated"
	case registration.Overwrite:
		res.Outcome = "overwritten"
	}
	writeJSON(w, http.StatusOK, res)
}

func registeredURL(v WebhookView) string {
	if v.Current == nil {
		return "nothing"
	}
	return v.Current.WebhookURL
}

// test asks Partner Center for a validation event: the registration must
// point at this install (test-created is added when missing, under the
// lease), then POST validationEvents and one read of its status.
func (wh *Webhook) test(w http.ResponseWriter, r *http.Request) {
	if err := decodeBody(r, &struct{}{}); err != nil {
		writeErr(w, http.StatusBadRequest, apiError{Code: "invalidRequest", Message: err.Error()})
		return
	}
	if wh.URL == "" {
		writeErr(w, http.StatusConflict, apiError{Code: "noWebhookUrl", Message: "PC_WEBHOOK_URL is not set on the partnercenter-adapter, " +
			"so it cannot tell whether a test event would reach this install"})
		return
	}
	var added bool
	err := wh.serialised(r.Context(), func(ctx context.Context) error {
		var err error
		added, err = registration.EnsureTestEvent(ctx, wh.API, wh.URL, wh.log().With("via", "admin"))
		return err
	})
	var elsewhere *registration.ElsewhereError
	switch {
	case errors.Is(err, registration.ErrNotRegistered):
		writeErr(w, http.StatusConflict, apiError{Code: "notRegistered", Message: "Partner Center has no webhook registration for this tenant, " +
			"so it has nowhere to send a test event; register first (cosellctl webhook register)"})
		return
	case errors.As(err, &elsewhere):
		writeErr(w, http.StatusConflict, apiError{Code: "registrationElsewhere", Message: fmt.Sprintf(
			"the registration points at %s, not at this install's %s: a test event would go there, not to this install's ingress",
			elsewhere.URL, wh.URL)})
		return
	case err != nil:
		wh.upstreamError(w, r, "preparing the registration for a test event", err)
		return
	}
	requested := wh.now().UTC()
	id, err := wh.API.SendValidationEvent(r.Context())
	if err != nil {
		wh.upstreamError(w, r, "requesting a validation event", err)
		return
	}
	res := TestResult{CorrelationID: id, RequestedAt: requested, WebhookURL: wh.URL, AddedTestEvent: added, Results: []pcclient.ValidationResult{}}
	wh.log().InfoContext(r.Context(), "admin: validation event requested", "correlation_id", id, "added_test_event", added)
	st, err := wh.API.GetValidationEvent(r.Context(), id)
	if err != nil {
		// The event was requested; asking again would spend Partner
		// Center's two-a-minute allowance, so answer with what we have.
		res.StatusError = err.Error()
	} else {
		res.Status = st.Status
		if st.Results != nil {
			res.Results = st.Results
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// testStatus answers Partner Center's validation status of one event.
func (wh *Webhook) testStatus(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "correlationId")
	if id == "" || len(id) > maxIDLength || strings.ContainsAny(id, "/?#% \t") {
		writeErr(w, http.StatusBadRequest, apiError{Code: "invalidRequest", Message: "the correlation id is not valid"})
		return
	}
	st, err := wh.API.GetValidationEvent(r.Context(), id)
	if err != nil {
		if pcclient.IsNotFound(err) {
			writeErr(w, http.StatusNotFound, apiError{Code: "itemNotFound", Message: "Partner Center has no validation event " + id +
				" (its records are kept 7 days)", UpstreamStatus: http.StatusNotFound})
			return
		}
		wh.upstreamError(w, r, "reading a validation event", err)
		return
	}
	if st.Results == nil {
		st.Results = []pcclient.ValidationResult{}
	}
	writeJSON(w, http.StatusOK, st)
}

// errLeaseBusy is the cause when the lease was not free within LeaseWait.
var errLeaseBusy = errors.New("lease busy")

// serialised runs fn holding the registration lease, waiting for it at
// most LeaseWait. fn's own result is returned (Lease.Run turns a cancelled
// fn into nil, which would hide a failed request).
func (wh *Webhook) serialised(ctx context.Context, fn func(ctx context.Context) error) error {
	if wh.Lease == nil {
		return fn(ctx)
	}
	wait := wh.LeaseWait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu           sync.Mutex
		started, ran bool
		fnErr        error
	)
	timer := time.AfterFunc(wait, func() {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			cancel(errLeaseBusy)
		}
	})
	defer timer.Stop()
	runErr := wh.Lease.Run(ctx, func(ctx context.Context) error {
		mu.Lock()
		if ctx.Err() != nil {
			// The wait ran out just as the lease came.
			mu.Unlock()
			return context.Cause(ctx)
		}
		started = true
		mu.Unlock()
		err := fn(ctx)
		ran, fnErr = true, err
		return err
	})
	switch {
	case ran:
		return fnErr
	case errors.Is(context.Cause(ctx), errLeaseBusy):
		return errLeaseBusy
	case runErr != nil:
		return runErr
	default:
		return ctx.Err()
	}
}

// apiError is the error object of every admin answer: Partner Center's
// {code, message} (which cosellctl prints), plus, when the failure came
// from Partner Center, its HTTP status and Retry-After.
type apiError struct {
	Code              string `json:"code"`
	Message           string `json:"message"`
	UpstreamStatus    int    `json:"upstreamStatus,omitempty"`
	RetryAfterSeconds int    `json:"retryAfterSeconds,omitempty"`
}

func writeErr(w http.ResponseWriter, status int, e apiError) {
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// upstreamError answers a failure to get something done at Partner
// Center: 429 (with Retry-After) when it throttled us, 503 when the lease
// was busy, 504 when the request ran out of time, else 502, always with
// Partner Center's status and message. Messages come from Partner Center's
// error bodies and never carry tokens.
func (wh *Webhook) upstreamError(w http.ResponseWriter, r *http.Request, doing string, err error) {
	var (
		ae *pcclient.APIError
		oe *auth.OAuthError
		e  apiError
	)
	status := http.StatusBadGateway
	switch {
	case errors.Is(err, errLeaseBusy):
		status = http.StatusServiceUnavailable
		e = apiError{Code: "registrationBusy", Message: "another replica holds the webhook registration lease " +
			"(its start-up registration may still be retrying); try again shortly"}
	case errors.As(err, &ae):
		e = apiError{Message: doing + ": " + ae.Error(), UpstreamStatus: ae.Status}
		switch {
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			e.Code = "partnerCenterUnauthorized"
			e.Message += " (check the adapter's Partner Center credentials and that the account may manage webhooks)"
		case ae.Status == http.StatusTooManyRequests:
			status, e.Code = http.StatusTooManyRequests, "partnerCenterThrottled"
			if ae.RetryAfter > 0 {
				e.RetryAfterSeconds = int((ae.RetryAfter + time.Second - 1) / time.Second)
				w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
			}
		case ae.Status >= 500:
			e.Code = "partnerCenterUnavailable"
		default:
			e.Code = "partnerCenterRejected"
		}
	case errors.As(err, &oe):
		e = apiError{Code: "partnerCenterSignInFailed", Message: doing + ": " + oe.Error(), UpstreamStatus: oe.Status}
	case r.Context().Err() != nil || errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
		e = apiError{Code: "timeout", Message: doing + ": " + err.Error()}
	default:
		e = apiError{Code: "partnerCenterUnavailable", Message: doing + ": " + err.Error()}
	}
	wh.log().WarnContext(r.Context(), "admin: "+doing+" failed", "err", err, "status", status)
	writeErr(w, status, e)
}

// maxBody bounds an admin request body.
const maxBody = 4 << 10

// decodeBody reads an optional JSON object into v, refusing unknown keys
// so a mistyped option is not silently ignored.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("read the request body: %w", err)
	}
	if len(data) > maxBody {
		return errors.New("the request body is too large")
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the request body is not valid JSON for this route: %w", err)
	}
	return nil
}
