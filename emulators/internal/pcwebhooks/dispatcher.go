// Package pcwebhooks emulates Partner Center webhooks: the registration API
// (/webhooks/v1/registration and its events and validationEvents resources),
// signed delivery of {EventName, ResourceUri, ...} notifications with up to
// ten attempts before an event is parked, the certificate receivers download
// to check signatures, a delivery log, and a control API that injects the
// delivery chaos (loss, duplicates, reordering, delay) a receiver must
// survive in production. It exists so cosell's ingress and Partner Center
// adapter are tested against the documented contract, failures included.
package pcwebhooks

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cosell/cosell/emulators/internal/emucore"
)

// Event names the emulator supports: the referral events cosell registers
// for, plus test-created, which validationEvents sends.
const (
	EventReferralCreated        = "referral-created"
	EventReferralUpdated        = "referral-updated"
	EventRelatedReferralCreated = "related-referral-created"
	EventRelatedReferralUpdated = "related-referral-updated"
	EventTestCreated            = "test-created"
)

// SupportedEvents returns the event names a registration may list, in the
// order GET /registration/events returns them.
func SupportedEvents() []string {
	return []string{
		EventReferralCreated,
		EventReferralUpdated,
		EventRelatedReferralCreated,
		EventRelatedReferralUpdated,
		EventTestCreated,
	}
}

func isSupportedEvent(name string) bool {
	for _, e := range SupportedEvents() {
		if e == name {
			return true
		}
	}
	return false
}

// DefaultPartnerID is the partner tenant id reported in validation-event
// status when Config.PartnerID is empty.
const DefaultPartnerID = "4d3cf487-70f1-4af4-a6a7-3e9b1b8e1c0a"

// Config configures a Dispatcher. Zero values pick defaults suited to a
// local emulator: short backoff so a demo heals in seconds, not hours.
type Config struct {
	// PublicBaseURL is how receivers reach the emulator, e.g.
	// http://127.0.0.1:8081. It prefixes x-ms-certificate-url and the
	// ResourceUri of test events.
	PublicBaseURL string
	// CADir holds CACertFile and CAKeyFile. They are read when present and
	// generated and written there otherwise; "" keeps the CA in memory.
	CADir string
	// Logger receives JSON logs; nil discards them.
	Logger *slog.Logger
	// Client makes delivery requests; nil means a client with a 10s timeout
	// that does not follow redirects (a 3xx is a failed attempt).
	Client *http.Client
	// PartnerID is reported as partnerId in validation-event status.
	PartnerID string
	// MaxAttempts is how many times an event is tried before it is parked
	// (default 10, as Partner Center documents).
	MaxAttempts int
	// BackoffBase is the delay before the second attempt; each further
	// attempt doubles it, up to BackoffMax (defaults 100ms and 5s). The
	// actual delay is drawn uniformly from [d/2, d].
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Workers bounds concurrent deliveries (default 4), so a slow receiver
	// delays events but never the API requests that raise them.
	Workers int
	// MaxLogEntries bounds the delivery log (default 10000). Only delivered
	// and dropped entries are evicted, oldest first; pending and parked
	// entries stay until they settle or Reset.
	MaxLogEntries int
	// BacklogWarn is the queue length at which a warning is logged (again
	// at every doubling); the queue itself is unbounded (default 1000).
	BacklogWarn int
	// ValidationEventsPerMinute throttles POST validationEvents as Partner
	// Center does (default 2); a negative value disables the limit.
	ValidationEventsPerMinute int
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PartnerID == "" {
		c.PartnerID = DefaultPartnerID
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 100 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = c.BackoffBase
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.MaxLogEntries <= 0 {
		c.MaxLogEntries = 10000
	}
	if c.BacklogWarn <= 0 {
		c.BacklogWarn = 1000
	}
	if c.ValidationEventsPerMinute == 0 {
		c.ValidationEventsPerMinute = 2
	}
	c.PublicBaseURL = strings.TrimRight(c.PublicBaseURL, "/")
	return c
}

// Dispatcher owns the webhook registration of the emulated partner tenant
// and delivers its events. All methods are safe for concurrent use.
type Dispatcher struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	ownTr   *http.Transport // closed on Close when the client is ours
	auth    *authority
	certURL string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	faults emucore.Faults
	stats  emucore.Counters

	mu          sync.Mutex
	closed      bool
	gen         uint64 // bumped by Reset; work from older generations is discarded
	reg         *registration
	ready       []*delivery
	delayed     deliveryHeap
	held        map[int][]*delivery // reorder fault id -> events it holds
	reorderMode map[int]string      // reorder fault id -> "reverse" or "shuffle"
	entries     map[string]*delivery
	order       []*delivery // log in creation order
	byCorr      map[string]*delivery
	validations []time.Time // recent validationEvents POSTs, for the throttle
	warnAt      int
}

// New loads or creates the CA, issues the signing certificate and starts
// the delivery workers. Close stops them.
func New(cfg Config) (*Dispatcher, error) {
	cfg = cfg.withDefaults()
	if cfg.PublicBaseURL == "" {
		return nil, errors.New("pcwebhooks: PublicBaseURL is required")
	}
	auth, created, err := newAuthority(cfg.CADir)
	if err != nil {
		return nil, fmt.Errorf("pcwebhooks: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "pcwebhooks"),
		client:      cfg.Client,
		auth:        auth,
		ctx:         ctx,
		cancel:      cancel,
		wake:        make(chan struct{}, 1),
		held:        map[int][]*delivery{},
		reorderMode: map[int]string{},
		entries:     map[string]*delivery{},
		byCorr:      map[string]*delivery{},
		warnAt:      cfg.BacklogWarn,
	}
	d.certURL = cfg.PublicBaseURL + d.CertificatePath()
	if d.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Workers
		d.ownTr = tr
		d.client = &http.Client{
			Transport: tr,
			Timeout:   10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	for range cfg.Workers {
		d.wg.Add(1)
		go d.worker()
	}
	d.log.Info("webhook dispatcher started",
		"ca_dir", cfg.CADir, "ca_created", created,
		"ca_subject", auth.caCert.Subject.String(),
		"certificate_url", d.certURL,
		"max_attempts", cfg.MaxAttempts, "workers", cfg.Workers,
		"backoff_base", cfg.BackoffBase.String(), "backoff_max", cfg.BackoffMax.String())
	return d, nil
}

// Close stops the workers, abandoning in-flight attempts, and waits for
// them until ctx ends. Queued events are dropped; Notify becomes a no-op.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("pcwebhooks: waiting for delivery workers: %w", ctx.Err())
	}
	if d.ownTr != nil {
		d.ownTr.CloseIdleConnections()
	}
	return nil
}

// Reset forgets the registration, every queued, held or parked event, the
// delivery log, the faults and the validation throttle. Attempts in flight
// finish but are neither recorded nor retried.
func (d *Dispatcher) Reset() {
	d.faults.Clear()
	d.stats.Reset()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	d.reg = nil
	d.ready = nil
	d.delayed = nil
	d.held = map[int][]*delivery{}
	d.reorderMode = map[int]string{}
	d.entries = map[string]*delivery{}
	d.order = nil
	d.byCorr = map[string]*delivery{}
	d.validations = nil
	d.warnAt = d.cfg.BacklogWarn
}

// Notify queues eventName for resourceURI if the tenant is registered for
// it, and returns at once: delivery happens on the worker pool. changed is
// the resource's change time (ResourceChangeUtcDate).
func (d *Dispatcher) Notify(eventName, resourceURI string, changed time.Time) {
	if !isSupportedEvent(eventName) {
		d.log.Warn("notify with unsupported event ignored", "event", eventName)
		return
	}
	body, err := encodeEvent(eventName, resourceURI, changed)
	if err != nil {
		d.log.Error("encoding event", "event", eventName, "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.reg == nil || !d.reg.wants(eventName) {
		return
	}
	d.stats.Inc("notified")
	d.dispatchLocked(eventName, resourceURI, "", body)
}

// CertificatePath is the path, relative to PublicBaseURL, at which the
// server mounts CertificateHandler without authentication. It mirrors the
// path of the real certificate URL so receivers' path allow-lists apply.
func (d *Dispatcher) CertificatePath() string {
	return "/cert/" + LeafCommonName + ".cer"
}

// CertificateURL is the absolute URL sent in x-ms-certificate-url.
func (d *Dispatcher) CertificateURL() string { return d.certURL }

// CACertificate returns the emulator's CA, which receivers must trust.
func (d *Dispatcher) CACertificate() *x509.Certificate { return d.auth.caCert }

// CAPool returns a pool holding only the emulator's CA, for tests that
// verify deliveries.
func (d *Dispatcher) CAPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(d.auth.caCert)
	return p
}

// SigningCertificate returns the certificate deliveries are signed with.
func (d *Dispatcher) SigningCertificate() *x509.Certificate { return d.auth.leaf }

// newGUID returns a random (version 4) GUID in the lower-case 8-4-4-4-12
// form Partner Center uses for ids.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
