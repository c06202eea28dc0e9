package pcwebhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/emucore"
)

// registration is the tenant's single webhook registration.
type registration struct {
	subscriberID string
	url          string
	events       []string
	msHeader     bool
	properties   map[string]string
	modified     time.Time
}

func (r *registration) wants(event string) bool { return slices.Contains(r.events, event) }

// Registration is the full registration as the control API shows it. The
// public GET returns only WebhookUrl and WebhookEvents, as documented.
type Registration struct {
	SubscriberID                      string            `json:"SubscriberId"`
	WebhookURL                        string            `json:"WebhookUrl"`
	WebhookEvents                     []string          `json:"WebhookEvents"`
	SignatureTokenToMsSignatureHeader bool              `json:"SignatureTokenToMsSignatureHeader"`
	Properties                        map[string]string `json:"Properties,omitempty"`
	LastModifiedTimestamp             time.Time         `json:"LastModifiedTimestamp"`
}

func (r *registration) view() Registration {
	return Registration{
		SubscriberID:                      r.subscriberID,
		WebhookURL:                        r.url,
		WebhookEvents:                     slices.Clone(r.events),
		SignatureTokenToMsSignatureHeader: r.msHeader,
		Properties:                        r.properties,
		LastModifiedTimestamp:             r.modified,
	}
}

// Registration returns the current registration, if any.
func (d *Dispatcher) Registration() (Registration, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reg == nil {
		return Registration{}, false
	}
	return d.reg.view(), true
}

// registrationInput is the POST/PUT body. encoding/json matches keys
// case-insensitively, which is what the service does (docs send
// PascalCase, the swagger camelCase). Unknown keys are ignored.
type registrationInput struct {
	WebhookURL                        *string           `json:"WebhookUrl"`
	WebhookEvents                     []string          `json:"WebhookEvents"`
	SignatureTokenToMsSignatureHeader *bool             `json:"SignatureTokenToMsSignatureHeader"`
	Properties                        map[string]string `json:"Properties"`
}

// apiError is the error body of api.partnercenter.microsoft.com (the CSP
// REST format: code, description, data, source), which the webhook API
// shares; the Referrals API's {"error":{...}} shape belongs to the other host.
// Webhook-specific error codes are undocumented, so code is the HTTP status,
// as a number like the rest of the emulator's CSP-shaped errors.
type apiError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
	Data        []any  `json:"data"`
	Source      string `json:"source"`
}

func writeAPIError(w http.ResponseWriter, status int, format string, args ...any) {
	emucore.WriteJSON(w, status, apiError{
		Code:        status,
		Description: fmt.Sprintf(format, args...),
		Data:        []any{},
		Source:      "PartnerFD",
	})
}

// Routes serves the registration API. The server mounts it under
// /webhooks/v1 (chi Mount or http.StripPrefix) behind its bearer check.
func (d *Dispatcher) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(correlationHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusNotFound, "No HTTP resource was found that matches the request URI.")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, http.StatusMethodNotAllowed, "The requested resource does not support http method '%s'.", r.Method)
	})
	r.Get("/registration", d.handleGetRegistration)
	r.Post("/registration", d.handleWriteRegistration)
	r.Put("/registration", d.handleWriteRegistration)
	r.Get("/registration/events", d.handleEvents)
	r.Post("/registration/validationEvents", d.handlePostValidation)
	r.Get("/registration/validationEvents/{correlationId}", d.handleGetValidation)
	return r
}

// correlationHeaders echoes MS-CorrelationId and MS-RequestId (or mints
// them), as the documented responses carry both.
func correlationHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"MS-CorrelationId", "MS-RequestId"} {
			v := r.Header.Get(h)
			if v == "" {
				v = newGUID()
			}
			w.Header().Set(h, v)
		}
		next.ServeHTTP(w, r)
	})
}

func (d *Dispatcher) handleGetRegistration(w http.ResponseWriter, _ *http.Request) {
	reg, ok := d.Registration()
	if !ok {
		writeAPIError(w, http.StatusNotFound, "No webhook registration exists for this partner.")
		return
	}
	emucore.WriteJSON(w, http.StatusOK, struct {
		WebhookURL    string   `json:"WebhookUrl"`
		WebhookEvents []string `json:"WebhookEvents"`
	}{reg.WebhookURL, reg.WebhookEvents})
}

// maxRegistrationBody bounds the registration request body.
const maxRegistrationBody = 64 << 10

func (d *Dispatcher) handleWriteRegistration(w http.ResponseWriter, r *http.Request) {
	in, err := decodeRegistration(w, r)
	if err != nil {
		status := http.StatusBadRequest
		var se statusError
		if errors.As(err, &se) {
			status = se.status
		}
		writeAPIError(w, status, "%s", err.Error())
		return
	}
	d.mu.Lock()
	var status int
	var msg string
	switch {
	case r.Method == http.MethodPost && d.reg != nil:
		status, msg = http.StatusConflict, "Registration already exists, use the PUT method to update a registration."
	case r.Method == http.MethodPut && d.reg == nil:
		status, msg = http.StatusNotFound, "No webhook registration exists for this partner; use the POST method to create one."
	default:
		id := newGUID()
		if d.reg != nil {
			id = d.reg.subscriberID
		}
		in.subscriberID = id
		in.modified = time.Now().UTC()
		d.reg = in
	}
	d.mu.Unlock()
	if status != 0 {
		writeAPIError(w, status, "%s", msg)
		return
	}
	d.log.Info("webhook registration saved", "method", r.Method, "url", in.url, "events", in.events,
		"signature_header", map[bool]string{true: "x-ms-signature", false: "Authorization"}[in.msHeader])
	emucore.WriteJSON(w, http.StatusOK, struct {
		SubscriberID  string   `json:"SubscriberId"`
		WebhookURL    string   `json:"WebhookUrl"`
		WebhookEvents []string `json:"WebhookEvents"`
	}{in.subscriberID, in.url, slices.Clone(in.events)})
}

// statusError carries a non-400 status out of request decoding.
type statusError struct {
	status int
	msg    string
}

func (e statusError) Error() string { return e.msg }

// badRequest is a 400 whose message is shown to the API caller as is.
func badRequest(format string, args ...any) error {
	return statusError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// decodeRegistration reads and validates a POST/PUT body.
func decodeRegistration(w http.ResponseWriter, r *http.Request) (*registration, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return nil, statusError{http.StatusUnsupportedMediaType, fmt.Sprintf("The request entity's media type '%s' is not supported for this resource.", ct)}
		}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, statusError{http.StatusRequestEntityTooLarge, "The request body is too large."}
		}
		return nil, badRequest("Reading the request body failed: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, badRequest("The registration body is required.")
	}
	var in registrationInput
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&in); err != nil {
		return nil, badRequest("The registration body is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, badRequest("The registration body has trailing data after the JSON object.")
	}
	if in.WebhookURL == nil || strings.TrimSpace(*in.WebhookURL) == "" {
		return nil, badRequest("WebhookUrl is required.")
	}
	u, err := url.Parse(strings.TrimSpace(*in.WebhookURL))
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, badRequest("WebhookUrl %q must be an absolute http or https URL.", *in.WebhookURL)
	}
	if u.Fragment != "" {
		return nil, badRequest("WebhookUrl %q must not have a fragment.", *in.WebhookURL)
	}
	if len(in.WebhookEvents) == 0 {
		return nil, badRequest("WebhookEvents must list at least one event.")
	}
	var events []string
	for _, e := range in.WebhookEvents {
		if !isSupportedEvent(e) {
			return nil, badRequest("WebhookEvents: unknown event %q; GET /webhooks/v1/registration/events lists the supported events.", e)
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	reg := &registration{url: u.String(), events: events, properties: in.Properties}
	if in.SignatureTokenToMsSignatureHeader != nil {
		reg.msHeader = *in.SignatureTokenToMsSignatureHeader
	}
	return reg, nil
}

func (d *Dispatcher) handleEvents(w http.ResponseWriter, _ *http.Request) {
	emucore.WriteJSON(w, http.StatusOK, SupportedEvents())
}

// validationResult is one attempt in the validation-event status.
type validationResult struct {
	ResponseCode    string `json:"responseCode"`
	ResponseMessage string `json:"responseMessage"`
	SystemError     bool   `json:"systemError"`
	DateTimeUtc     string `json:"dateTimeUtc"`
}

// validationStatus is the documented GET validationEvents/{id} body.
type validationStatus struct {
	CorrelationID string             `json:"correlationId"`
	PartnerID     string             `json:"partnerId"`
	Status        string             `json:"status"`
	CallbackURL   string             `json:"callbackUrl"`
	Results       []validationResult `json:"results"`
}

// validationDateLayout matches the documented dateTimeUtc: seven
// fractional digits and no zone designator.
const validationDateLayout = "2006-01-02T15:04:05.0000000"

func (d *Dispatcher) handlePostValidation(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	if d.reg == nil {
		d.mu.Unlock()
		writeAPIError(w, http.StatusNotFound, "No webhook registration exists for this partner.")
		return
	}
	if !d.reg.wants(EventTestCreated) {
		d.mu.Unlock()
		writeAPIError(w, http.StatusBadRequest, "The registration does not include the %s event; add it with PUT before sending validation events.", EventTestCreated)
		return
	}
	now := time.Now()
	if limit := d.cfg.ValidationEventsPerMinute; limit > 0 {
		recent := d.validations[:0]
		for _, t := range d.validations {
			if now.Sub(t) < time.Minute {
				recent = append(recent, t)
			}
		}
		d.validations = recent
		if len(recent) >= limit {
			retry := int(time.Minute-now.Sub(recent[0]))/int(time.Second) + 1
			d.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(retry))
			writeAPIError(w, http.StatusTooManyRequests, "Validation events are limited to %d per minute.", limit)
			return
		}
		d.validations = append(d.validations, now)
	}
	cid := newGUID()
	uri := d.cfg.PublicBaseURL + "/webhooks/v1/registration/validationEvents/" + cid
	body, err := encodeEvent(EventTestCreated, uri, now)
	if err != nil {
		d.mu.Unlock()
		writeAPIError(w, http.StatusInternalServerError, "Encoding the test event failed.")
		return
	}
	d.stats.Inc("validation_events")
	d.dispatchLocked(EventTestCreated, uri, cid, body)
	d.mu.Unlock()
	emucore.WriteJSON(w, http.StatusOK, map[string]string{"correlationId": cid})
}

func (d *Dispatcher) handleGetValidation(w http.ResponseWriter, r *http.Request) {
	cid := chi.URLParam(r, "correlationId")
	d.mu.Lock()
	e, ok := d.byCorr[strings.ToLower(cid)]
	var snap Delivery
	if ok {
		snap = e.snapshot()
	}
	d.mu.Unlock()
	if !ok {
		writeAPIError(w, http.StatusNotFound, "No validation event with correlation id %s was found.", cid)
		return
	}
	st := validationStatus{
		CorrelationID: snap.CorrelationID,
		PartnerID:     d.cfg.PartnerID,
		Status:        validationState(snap.Status),
		CallbackURL:   snap.URL,
		Results:       []validationResult{},
	}
	for _, a := range snap.Attempts {
		msg := a.ResponseMessage
		if a.Error != "" {
			msg = a.Error
		}
		st.Results = append(st.Results, validationResult{
			ResponseCode:    a.ResponseCode,
			ResponseMessage: msg,
			SystemError:     a.StatusCode == 0,
			DateTimeUtc:     a.At.UTC().Format(validationDateLayout),
		})
	}
	emucore.WriteJSON(w, http.StatusOK, st)
}

// validationState maps a delivery status onto the validation status
// values: only "completed" is documented; "pending" and "failed" are the
// emulator's choice for the other outcomes.
func validationState(status string) string {
	switch status {
	case StatusDelivered:
		return "completed"
	case StatusParked, StatusDropped:
		return "failed"
	default:
		return "pending"
	}
}
