package pcwebhooks

import (
	"bytes"
	"container/heap"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Delivery states as shown in the delivery log.
const (
	StatusPending   = "pending"   // queued, waiting for an attempt or a retry
	StatusHeld      = "held"      // held back by a reorder fault
	StatusDelivered = "delivered" // a 2xx answer was received
	StatusParked    = "parked"    // every attempt failed; redeliver to retry
	StatusDropped   = "dropped"   // lost on purpose by a drop fault
)

// Names of the headers a delivery carries.
const (
	HeaderSignature          = "X-Ms-Signature"
	HeaderCertificateURL     = "X-Ms-Certificate-Url"
	HeaderSignatureAlgorithm = "X-Ms-Signature-Algorithm"
	// SignatureAlgorithm is the only algorithm Partner Center documents.
	SignatureAlgorithm = "rsa-sha256"
)

// eventBody is the notification Partner Center POSTs. Field order and
// PascalCase names follow the documented example; AuditUri is null in all
// referral examples.
type eventBody struct {
	EventName             string  `json:"EventName"`
	ResourceURI           string  `json:"ResourceUri"`
	ResourceName          string  `json:"ResourceName"`
	AuditURI              *string `json:"AuditUri"`
	ResourceChangeUtcDate string  `json:"ResourceChangeUtcDate"`
}

// changeDateLayout renders ResourceChangeUtcDate as in the documented
// examples: seven fractional digits and an explicit +00:00 offset.
const changeDateLayout = "2006-01-02T15:04:05.0000000+00:00"

// encodeEvent builds the exact bytes that are signed and sent.
func encodeEvent(eventName, resourceURI string, changed time.Time) ([]byte, error) {
	name := "referral"
	if eventName == EventTestCreated {
		name = "test"
	}
	b, err := json.Marshal(eventBody{
		EventName:             eventName,
		ResourceURI:           resourceURI,
		ResourceName:          name,
		ResourceChangeUtcDate: changed.UTC().Format(changeDateLayout),
	})
	if err != nil {
		return nil, fmt.Errorf("encoding %s event: %w", eventName, err)
	}
	return b, nil
}

// Attempt is one delivery try in the log.
type Attempt struct {
	Number int       `json:"number"`
	At     time.Time `json:"at"`
	// StatusCode is the receiver's HTTP status, 0 when none came back.
	StatusCode int `json:"statusCode"`
	// ResponseCode is the status as Partner Center's validation status
	// shows it (the .NET HttpStatusCode name, e.g. "OK").
	ResponseCode string `json:"responseCode"`
	// ResponseMessage is the start of the receiver's response body.
	ResponseMessage string `json:"responseMessage"`
	// Error describes a transport failure (timeout, refused connection).
	Error      string  `json:"error,omitempty"`
	DurationMS float64 `json:"durationMs"`
}

// Delivery is a snapshot of one event's delivery log entry.
type Delivery struct {
	ID            string          `json:"id"`
	EventName     string          `json:"eventName"`
	ResourceURI   string          `json:"resourceUri"`
	CorrelationID string          `json:"correlationId,omitempty"`
	URL           string          `json:"url"`
	SignatureIn   string          `json:"signatureHeader"`
	CertURL       string          `json:"certificateUrl,omitempty"`
	Body          json.RawMessage `json:"body"`
	Status        string          `json:"status"`
	Parked        bool            `json:"parked"`
	DuplicateOf   string          `json:"duplicateOf,omitempty"`
	Faults        []string        `json:"faults,omitempty"`
	Attempts      []Attempt       `json:"attempts"`
	CreatedAt     time.Time       `json:"createdAt"`
	DeliveredAt   *time.Time      `json:"deliveredAt,omitempty"`
	NextAttemptAt *time.Time      `json:"nextAttemptAt,omitempty"`
}

// delivery is the mutable log entry and queue item; every field is guarded
// by Dispatcher.mu.
type delivery struct {
	gen           uint64
	id            string
	eventName     string
	resourceURI   string
	correlationID string
	url           string
	msHeader      bool // signature in x-ms-signature instead of Authorization
	body          []byte
	signature     string // base64, computed on the first attempt
	certURL       string // x-ms-certificate-url, fixed with the signature
	tamper        string // signature-tampering fault kind, "" for none
	status        string
	duplicateOf   string
	faults        []string
	attempts      []Attempt
	round         int // attempts since the last (re)delivery began
	created       time.Time
	delivered     time.Time
	due           time.Time
	delay         time.Duration // extra latency applied when next queued
	then          *delivery     // queued after this one's next attempt (reorder chains)
	inFlight      bool
	heapIndex     int
}

func (e *delivery) snapshot() Delivery {
	out := Delivery{
		ID:            e.id,
		EventName:     e.eventName,
		ResourceURI:   e.resourceURI,
		CorrelationID: e.correlationID,
		URL:           e.url,
		SignatureIn:   "Authorization",
		CertURL:       e.certURL,
		Body:          json.RawMessage(append([]byte(nil), e.body...)),
		Status:        e.status,
		Parked:        e.status == StatusParked,
		DuplicateOf:   e.duplicateOf,
		Faults:        append([]string(nil), e.faults...),
		Attempts:      append([]Attempt{}, e.attempts...),
		CreatedAt:     e.created,
	}
	if e.msHeader {
		out.SignatureIn = "x-ms-signature"
	}
	if !e.delivered.IsZero() {
		t := e.delivered
		out.DeliveredAt = &t
	}
	if e.status == StatusPending && !e.due.IsZero() && !e.inFlight {
		t := e.due
		out.NextAttemptAt = &t
	}
	return out
}

// deliveryHeap orders delayed deliveries by due time.
type deliveryHeap []*delivery

func (h deliveryHeap) Len() int           { return len(h) }
func (h deliveryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h deliveryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}
func (h *deliveryHeap) Push(x any) {
	e := x.(*delivery)
	e.heapIndex = len(*h)
	*h = append(*h, e)
}
func (h *deliveryHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	e.heapIndex = -1
	*h = old[:n-1]
	return e
}

// dispatchLocked logs a new event for the current registration and runs it
// through the chaos faults before queueing it. It returns the primary entry.
func (d *Dispatcher) dispatchLocked(eventName, resourceURI, correlationID string, body []byte) *delivery {
	primary := d.newEntryLocked(eventName, resourceURI, correlationID, body, "")
	if d.faults.Match(eventName, FaultDrop) != nil {
		primary.status = StatusDropped
		primary.faults = append(primary.faults, FaultDrop)
		d.stats.Inc("dropped")
		d.log.Info("webhook event dropped by fault", "delivery_id", primary.id, "event", eventName)
		return primary
	}
	batch := []*delivery{primary}
	if d.faults.Match(eventName, FaultDuplicate) != nil {
		primary.faults = append(primary.faults, FaultDuplicate)
		dup := d.newEntryLocked(eventName, resourceURI, correlationID, body, primary.id)
		dup.faults = append(dup.faults, FaultDuplicate)
		batch = append(batch, dup)
		d.stats.Inc("duplicated")
	}
	for _, kind := range tamperKinds() {
		if d.faults.Match(eventName, kind) != nil {
			for _, e := range batch {
				e.tamper = kind
				e.faults = append(e.faults, kind)
			}
			break
		}
	}
	if f := d.faults.Match(eventName, FaultDelay); f != nil {
		for _, e := range batch {
			e.delay = time.Duration(f.Latency)
			e.faults = append(e.faults, FaultDelay)
		}
	}
	if f := d.faults.Match(eventName, FaultReorder); f != nil {
		for _, e := range batch {
			e.status = StatusHeld
			e.faults = append(e.faults, FaultReorder)
		}
		d.held[f.ID] = append(d.held[f.ID], batch...)
		if f.Remaining <= 0 {
			d.releaseLocked(f.ID)
		}
		return primary
	}
	for _, e := range batch {
		d.enqueueLocked(e)
	}
	return primary
}

func (d *Dispatcher) newEntryLocked(eventName, resourceURI, correlationID string, body []byte, duplicateOf string) *delivery {
	e := &delivery{
		gen:           d.gen,
		id:            newGUID(),
		eventName:     eventName,
		resourceURI:   resourceURI,
		correlationID: correlationID,
		url:           d.reg.url,
		msHeader:      d.reg.msHeader,
		body:          body,
		status:        StatusPending,
		duplicateOf:   duplicateOf,
		created:       time.Now().UTC(),
		heapIndex:     -1,
	}
	d.entries[e.id] = e
	d.order = append(d.order, e)
	if correlationID != "" && duplicateOf == "" {
		d.byCorr[correlationID] = e
	}
	d.trimLogLocked()
	return e
}

// trimLogLocked evicts the oldest settled entries once the log is 10% over
// its bound, so eviction is amortised rather than done on every insert.
func (d *Dispatcher) trimLogLocked() {
	limit := d.cfg.MaxLogEntries
	if len(d.order) <= limit+limit/10 {
		return
	}
	excess := len(d.order) - limit
	kept := d.order[:0]
	for _, e := range d.order {
		settled := e.status == StatusDelivered || e.status == StatusDropped
		if excess > 0 && settled {
			excess--
			delete(d.entries, e.id)
			if d.byCorr[e.correlationID] == e {
				delete(d.byCorr, e.correlationID)
			}
			continue
		}
		kept = append(kept, e)
	}
	for i := len(kept); i < len(d.order); i++ {
		d.order[i] = nil
	}
	d.order = kept
}

// enqueueLocked puts e on the ready queue, or on the delay heap when a
// delay fault or a backoff applies, and wakes a worker.
func (d *Dispatcher) enqueueLocked(e *delivery) {
	e.status = StatusPending
	now := time.Now()
	if e.delay > 0 {
		e.due = now.Add(e.delay)
		e.delay = 0
	}
	if e.due.After(now) {
		heap.Push(&d.delayed, e)
	} else {
		e.due = time.Time{}
		d.ready = append(d.ready, e)
	}
	if n := len(d.ready) + len(d.delayed); n >= d.warnAt {
		d.log.Warn("webhook delivery backlog growing; the queue is unbounded and keeps every event",
			"backlog", n, "workers", d.cfg.Workers)
		d.warnAt *= 2
	}
	d.signal()
}

// signal wakes one idle worker; a worker that finds more work wakes the next.
func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// worker delivers queued events until Close.
func (d *Dispatcher) worker() {
	defer d.wg.Done()
	for {
		e, ok := d.next()
		if !ok {
			return
		}
		d.attempt(e)
	}
}

// next blocks until a delivery is due or the dispatcher closes.
func (d *Dispatcher) next() (*delivery, bool) {
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, false
		}
		now := time.Now()
		for len(d.delayed) > 0 && !d.delayed[0].due.After(now) {
			e := heap.Pop(&d.delayed).(*delivery)
			d.ready = append(d.ready, e)
		}
		if len(d.ready) > 0 {
			e := d.ready[0]
			d.ready[0] = nil
			d.ready = d.ready[1:]
			e.inFlight = true
			more := len(d.ready) > 0
			d.mu.Unlock()
			if more {
				d.signal()
			}
			return e, true
		}
		var timer *time.Timer
		var due <-chan time.Time
		if len(d.delayed) > 0 {
			timer = time.NewTimer(d.delayed[0].due.Sub(now))
			due = timer.C
		}
		d.mu.Unlock()
		select {
		case <-d.ctx.Done():
		case <-d.wake:
		case <-due:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// attempt makes one delivery try and records it: delivered on 2xx, else a
// retry after backoff, or parked once the round's attempts are used up.
func (d *Dispatcher) attempt(e *delivery) {
	d.mu.Lock()
	if e.gen != d.gen {
		d.mu.Unlock()
		return
	}
	url, body, msHeader, tamper := e.url, e.body, e.msHeader, e.tamper
	sig, certURL := e.signature, e.certURL
	d.mu.Unlock()

	// Signing happens outside the lock: it costs an RSA operation (and, for
	// the first wrongOrg/untrustedCert fault, a key generation). Attempts of
	// one delivery never overlap, so caching the result afterwards is safe.
	if sig == "" {
		var err error
		sig, certURL, err = d.credentials(tamper, body)
		if err != nil {
			// Signing with an in-memory RSA key fails only on a broken key,
			// which New would already have rejected; park rather than spin.
			d.mu.Lock()
			e.inFlight = false
			if e.gen == d.gen {
				e.status = StatusParked
			}
			d.mu.Unlock()
			d.log.Error("signing webhook event", "delivery_id", e.id, "err", err)
			return
		}
		d.mu.Lock()
		e.signature, e.certURL = sig, certURL
		d.mu.Unlock()
	}
	if tamper == FaultMissingSignature {
		sig = ""
	}

	start := time.Now()
	status, message, err := d.post(url, body, sig, certURL, msHeader)
	elapsed := time.Since(start)

	d.mu.Lock()
	defer d.mu.Unlock()
	e.inFlight = false
	if e.gen != d.gen {
		return
	}
	e.round++
	a := Attempt{
		Number:          len(e.attempts) + 1,
		At:              start.UTC(),
		StatusCode:      status,
		ResponseCode:    responseCode(status),
		ResponseMessage: message,
		DurationMS:      float64(elapsed.Microseconds()) / 1000,
	}
	if err != nil {
		a.Error = err.Error()
	}
	e.attempts = append(e.attempts, a)
	d.stats.Inc("attempts")
	// Plain attributes rather than d.log.With: With makes the handler
	// pre-render them on every attempt, even when the level is disabled.
	attrs := func(extra ...any) []any {
		return append([]any{"delivery_id", e.id, "event", e.eventName, "attempt", a.Number, "status", status}, extra...)
	}
	switch {
	case err == nil && status >= 200 && status < 300:
		e.status = StatusDelivered
		e.delivered = time.Now().UTC()
		d.stats.Inc("delivered")
		if d.log.Enabled(d.ctx, slog.LevelDebug) {
			d.log.Debug("webhook delivered", attrs()...)
		}
	case e.round >= d.cfg.MaxAttempts:
		e.status = StatusParked
		d.stats.Inc("parked")
		d.log.Warn("webhook event parked after failed attempts", attrs("err", err)...)
	default:
		d.stats.Inc("failed_attempts")
		e.due = time.Now().Add(backoff(d.cfg.BackoffBase, d.cfg.BackoffMax, e.round))
		d.log.Info("webhook attempt failed; will retry", attrs("retry_at", e.due, "err", err)...)
		d.enqueueLocked(e)
	}
	if next := e.then; next != nil {
		e.then = nil
		d.enqueueLocked(next)
	}
}

// credentials returns the base64 signature of body and the certificate
// URL to send with it, applying a signature-tampering fault if any.
func (d *Dispatcher) credentials(tamper string, body []byte) (string, string, error) {
	certURL, s := d.certURL, d.auth.leafSigner
	switch tamper {
	case FaultWrongOrg, FaultUntrustedCert:
		name := variantWrongOrg
		if tamper == FaultUntrustedCert {
			name = variantUntrusted
		}
		v, err := d.auth.variant(name)
		if err != nil {
			return "", "", err
		}
		s, certURL = v.signer, certURL+"?variant="+name
	case FaultForeignCertHost:
		// .invalid never resolves (RFC 2606): a receiver that fetches
		// before checking the host fails too, just later.
		certURL = "http://certs.invalid" + d.CertificatePath()
	}
	sig, err := signBase64(s, body)
	if err != nil {
		return "", "", err
	}
	if tamper == FaultBadSignature {
		raw, _ := base64.StdEncoding.DecodeString(sig) // just encoded, cannot fail
		raw[len(raw)/2] ^= 0x01
		sig = base64.StdEncoding.EncodeToString(raw)
	}
	return sig, certURL, nil
}

// maxResponseMessage bounds how much of a receiver's answer is kept.
const maxResponseMessage = 512

// post sends one signed delivery and reports the receiver's status and the
// start of its body; err is set when no HTTP answer came back.
func (d *Dispatcher) post(url string, body []byte, sig, certURL string, msHeader bool) (int, string, error) {
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case sig == "": // missingSignature fault
	case msHeader:
		req.Header.Set(HeaderSignature, "Signature "+sig)
	default:
		req.Header.Set("Authorization", "Signature "+sig)
	}
	req.Header.Set(HeaderCertificateURL, certURL)
	req.Header.Set(HeaderSignatureAlgorithm, SignatureAlgorithm)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseMessage))
	// Drain a little more so the connection can be reused; give up on
	// receivers that stream large bodies.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(msg), nil
}

// backoff returns the wait after the n-th failed attempt of a round:
// base·2^(n-1) capped at max, with "equal jitter" (uniform in [d/2, d]) so
// retries of events that failed together spread out.
func backoff(base, max time.Duration, n int) time.Duration {
	d := max
	if n-1 < 62 {
		if v := base << (n - 1); v > 0 && v < max && v>>(n-1) == base {
			d = v
		}
	}
	half := d / 2
	return half + mrand.N(d-half+1)
}

// responseCode renders an HTTP status as the .NET HttpStatusCode name
// Partner Center shows in validation results ("OK", "NotFound", ...).
func responseCode(status int) string {
	if status == 0 {
		return ""
	}
	var b []byte
	for _, r := range http.StatusText(status) {
		if ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') {
			b = append(b, byte(r))
		}
	}
	if len(b) == 0 {
		return strconv.Itoa(status)
	}
	return string(b)
}

// Errors returned by Redeliver.
var (
	ErrDeliveryNotFound = errors.New("delivery not found")
	ErrNotParked        = errors.New("delivery is not parked")
)

// Deliveries returns the delivery log, oldest first.
func (d *Dispatcher) Deliveries() []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Delivery, 0, len(d.order))
	for _, e := range d.order {
		out = append(out, e.snapshot())
	}
	return out
}

// Delivery returns one log entry by id.
func (d *Dispatcher) Delivery(id string) (Delivery, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	if !ok {
		return Delivery{}, false
	}
	return e.snapshot(), true
}

// Parked returns the events that used up their attempts, oldest first.
func (d *Dispatcher) Parked() []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Delivery
	for _, e := range d.order {
		if e.status == StatusParked {
			out = append(out, e.snapshot())
		}
	}
	return out
}

// Redeliver starts a new round of up to MaxAttempts for a parked event,
// keeping its attempt history, to the URL it was originally sent to.
func (d *Dispatcher) Redeliver(id string) (Delivery, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	if !ok {
		return Delivery{}, fmt.Errorf("redeliver %s: %w", id, ErrDeliveryNotFound)
	}
	if e.status != StatusParked {
		return Delivery{}, fmt.Errorf("redeliver %s (status %s): %w", id, e.status, ErrNotParked)
	}
	e.round = 0
	e.due = time.Time{}
	d.stats.Inc("redelivered")
	d.enqueueLocked(e)
	return e.snapshot(), nil
}
