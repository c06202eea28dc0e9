// Package partnercenter emulates the Microsoft Partner Center services
// cosell talks to: the Entra ID v1 token endpoint (password, refresh-token
// and device-code grants), the Referrals API (/v1.0/engagements/referrals
// with OData queries, eTags, JSON Patch and the status transition table),
// the webhook registration API and signed event delivery (through
// pcwebhooks), and a control API under /_emulator/ that plays the Microsoft
// seller and injects faults. It follows the public contract in
// shared/reference/partnercenter-api.md so adapters tested against it
// behave the same against the real service.
package partnercenter

import (
	"context"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/emucore"
	"github.com/cosell/cosell/emulators/internal/pcwebhooks"
)

// MicrosoftOrganizationID is the organisation id Partner Center uses for
// Microsoft itself (inviteContext.invitedBy.organizationId of a referral a
// Microsoft seller sends).
const MicrosoftOrganizationID = "msft"

// Config configures a Server. Zero values take the defaults of
// DefaultConfig; only PublicURL has no sensible default outside main.
type Config struct {
	// PublicURL is the base URL clients use to reach the emulator (e.g.
	// http://127.0.0.1:8081). It prefixes links, @odata.nextLink, webhook
	// ResourceUri values and the certificate URL.
	PublicURL string
	// TenantID is the partner's Entra tenant (tid claim).
	TenantID string
	// ClientID and ClientSecret identify the one registered application.
	ClientID     string
	ClientSecret string
	// Username and Password are the one Partner Center user (a Referrals
	// admin) the password grant accepts; the device-code flow signs in
	// as the same user.
	Username string
	Password string
	// UserObjectID is the oid claim of that user.
	UserObjectID string
	// OrganizationID, OrganizationName and MPNID describe the partner
	// organisation that owns the referrals the API creates.
	OrganizationID   string
	OrganizationName string
	MPNID            string
	// CADir is where the webhook-signing CA is read from or written to
	// ("" keeps it in memory).
	CADir string
	// AccessTokenLifetime, RefreshTokenLifetime and DeviceCodeLifetime
	// bound the credentials the token endpoint issues; DeviceCodeInterval
	// is the polling interval it advertises.
	AccessTokenLifetime  time.Duration
	RefreshTokenLifetime time.Duration
	DeviceCodeLifetime   time.Duration
	DeviceCodeInterval   time.Duration
	// PageSize is the server-driven page size of the list operation.
	PageSize int
	// ClosedWriteStatus is the HTTP status of a write to a closed
	// referral (400 or 409; the real value is undocumented).
	ClosedWriteStatus int
	// ExpireAfter sets expirationDateTime of inbound referrals (Partner
	// Center archives unanswered ones after 14 days).
	ExpireAfter time.Duration
	// Logger receives JSON logs; nil discards them.
	Logger *slog.Logger
	// WebhookClient delivers webhook events; nil uses pcwebhooks' default.
	WebhookClient *http.Client
	// WebhookOptions lets callers (tests) tune the dispatcher, e.g. its
	// backoff; PublicBaseURL, CADir, Logger and Client are filled in from
	// the fields above.
	WebhookOptions pcwebhooks.Config
	// Now is the clock; nil means time.Now. Tests move it to expire tokens.
	Now func() time.Time
}

// DefaultConfig returns the development defaults the binary's flags start
// from (also listed in emulators/docs/partnercenter.md).
func DefaultConfig() Config {
	return Config{
		PublicURL:            "http://127.0.0.1:8081",
		TenantID:             "0b5f6e8c-3d1a-4f7e-9c2b-6a4d8e1f3b70",
		ClientID:             "5e1c0a7d-9b3f-4c2e-8d6a-1f4b7e9c2a35",
		ClientSecret:         "dev-client-secret",
		Username:             "referrals-admin@contoso-partner.onmicrosoft.com",
		Password:             "dev-password",
		UserObjectID:         "8c2d4f6a-1b3e-4d5f-9a7c-2e4f6a8b0c1d",
		OrganizationID:       "4d3cf487-70f1-4af4-a6a7-3e9b1b8e1c0a",
		OrganizationName:     "Contoso Partner Ltd",
		MPNID:                "6115379",
		AccessTokenLifetime:  time.Hour,
		RefreshTokenLifetime: 90 * 24 * time.Hour,
		DeviceCodeLifetime:   15 * time.Minute,
		DeviceCodeInterval:   5 * time.Second,
		PageSize:             20,
		ClosedWriteStatus:    http.StatusBadRequest,
		ExpireAfter:          14 * 24 * time.Hour,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(dst *string, def string) {
		if *dst == "" {
			*dst = def
		}
	}
	setDur := func(dst *time.Duration, def time.Duration) {
		if *dst <= 0 {
			*dst = def
		}
	}
	set(&c.PublicURL, d.PublicURL)
	set(&c.TenantID, d.TenantID)
	set(&c.ClientID, d.ClientID)
	set(&c.ClientSecret, d.ClientSecret)
	set(&c.Username, d.Username)
	set(&c.Password, d.Password)
	set(&c.UserObjectID, d.UserObjectID)
	set(&c.OrganizationID, d.OrganizationID)
	set(&c.OrganizationName, d.OrganizationName)
	set(&c.MPNID, d.MPNID)
	setDur(&c.AccessTokenLifetime, d.AccessTokenLifetime)
	setDur(&c.RefreshTokenLifetime, d.RefreshTokenLifetime)
	setDur(&c.DeviceCodeLifetime, d.DeviceCodeLifetime)
	setDur(&c.DeviceCodeInterval, d.DeviceCodeInterval)
	setDur(&c.ExpireAfter, d.ExpireAfter)
	if c.PageSize <= 0 {
		c.PageSize = d.PageSize
	}
	if c.ClosedWriteStatus == 0 {
		c.ClosedWriteStatus = d.ClosedWriteStatus
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	return c
}

func (c Config) validate() error {
	if c.ClosedWriteStatus != http.StatusBadRequest && c.ClosedWriteStatus != http.StatusConflict {
		return fmt.Errorf("closed-write status must be 400 or 409, got %d", c.ClosedWriteStatus)
	}
	if !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return fmt.Errorf("public URL %q must start with http:// or https://", c.PublicURL)
	}
	return nil
}

// Server is the Partner Center emulator. It is an http.Handler serving the
// token endpoint, the Referrals API, the webhook API and the control API on
// one address; Close stops webhook delivery.
type Server struct {
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	schema    *node
	countries map[string]struct{}
	tokens    *tokens
	store     *store
	faults    emucore.Faults
	counters  emucore.Counters
	hooks     *pcwebhooks.Dispatcher
	handler   http.Handler
}

// New builds a Server from cfg (zero fields take DefaultConfig values). It
// generates the token-signing key and loads or creates the webhook CA.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("partnercenter config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		now:       now,
		schema:    referralSchema(),
		countries: countryCodes(),
		store:     newStore(),
	}
	s.cfg.Now = now
	// RSA key generation dominates start-up; make the token key while the
	// dispatcher loads or creates its CA.
	type keyResult struct {
		key *rsa.PrivateKey
		err error
	}
	keyc := make(chan keyResult, 1)
	go func() {
		k, err := generateSigningKey()
		keyc <- keyResult{k, err}
	}()
	hc := cfg.WebhookOptions
	hc.PublicBaseURL = cfg.PublicURL
	hc.CADir = cfg.CADir
	hc.Logger = log
	if cfg.WebhookClient != nil {
		hc.Client = cfg.WebhookClient
	}
	if hc.PartnerID == "" {
		hc.PartnerID = cfg.OrganizationID
	}
	d, err := pcwebhooks.New(hc)
	kr := <-keyc
	if err != nil {
		return nil, fmt.Errorf("webhook dispatcher: %w", err)
	}
	if kr.err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = d.Close(closeCtx) // the key error is the one to report
		return nil, kr.err
	}
	s.tokens = newTokens(&s.cfg, kr.key)
	s.hooks = d
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP serves every emulated endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close stops webhook delivery, waiting for in-flight attempts until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	if err := s.hooks.Close(ctx); err != nil {
		return fmt.Errorf("close webhook dispatcher: %w", err)
	}
	return nil
}

// Webhooks returns the webhook dispatcher, e.g. for its CA pool when a
// test verifies delivered signatures.
func (s *Server) Webhooks() *pcwebhooks.Dispatcher { return s.hooks }

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Endpoint names used for call counters and fault rules.
const (
	EndpointToken        = "token"
	EndpointDeviceCode   = "devicecode"
	EndpointGet          = "referrals.get"
	EndpointList         = "referrals.list"
	EndpointCreate       = "referrals.create"
	EndpointPut          = "referrals.put"
	EndpointPatch        = "referrals.patch"
	EndpointRegistration = "webhooks.registration"
)

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.accessLog)
	r.Get("/healthz", emucore.Healthz)

	r.With(s.endpoint(EndpointToken, s.renderOAuthFault)).Post("/{tenant}/oauth2/token", s.handleToken)
	r.With(s.endpoint(EndpointDeviceCode, s.renderOAuthFault)).Post("/{tenant}/oauth2/devicecode", s.handleDeviceCode)
	r.Get("/{tenant}/discovery/keys", s.handleJWKS)

	r.Route("/v1.0/engagements/referrals", func(r chi.Router) {
		r.Use(s.requestHeaders)
		auth := s.requireBearer(AudienceReferrals, s.renderReferralsAuth)
		r.With(s.endpoint(EndpointList, s.renderReferralsFault), auth).Get("/", s.handleList)
		r.With(s.endpoint(EndpointCreate, s.renderReferralsFault), auth).Post("/", s.handleCreate)
		r.With(s.endpoint(EndpointGet, s.renderReferralsFault), auth).Get("/{id}", s.handleGet)
		r.With(s.endpoint(EndpointPut, s.renderReferralsFault), auth).Put("/{id}", s.handlePut)
		r.With(s.endpoint(EndpointPatch, s.renderReferralsFault), auth).Patch("/{id}", s.handlePatch)
	})

	r.With(s.endpoint(EndpointRegistration, s.renderWebhooksFault), s.requireBearer(AudienceWebhooks, s.renderWebhooksAuth)).
		Mount("/webhooks/v1", s.hooks.Routes())
	r.Method(http.MethodGet, s.hooks.CertificatePath(), s.hooks.CertificateHandler())

	r.Route("/_emulator", s.controlRoutes)
	return r
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// accessLog logs every request at debug level. It costs nothing beyond one
// level check unless debug logging is on, so benchmarks are unaffected.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

// endpoint counts a call to name and applies any fault injected for it,
// rendering the fault with render (each API has its own error shape).
func (s *Server) endpoint(name string, render func(http.ResponseWriter, *http.Request, *emucore.Fault)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.counters.Inc(name)
			if f := s.faults.Match(name); f != nil {
				if f.Latency > 0 {
					t := time.NewTimer(time.Duration(f.Latency))
					select {
					case <-t.C:
					case <-r.Context().Done():
						t.Stop()
						return
					}
				}
				if f.Kind != faultLatency {
					s.log.Info("fault injected", "endpoint", name, "kind", f.Kind, "fault_id", f.ID)
					render(w, r, f)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// requireBearer rejects calls without a valid, unexpired access token
// issued for audience.
func (s *Server) requireBearer(audience string, render func(http.ResponseWriter, string)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := bearer(r)
			if tok == "" {
				w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"`)
				render(w, "The Authorization header with a Bearer token is missing.")
				return
			}
			if ok, msg := s.tokens.check(tok, audience, s.now()); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+msg+`"`)
				render(w, msg)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// requestHeaders sets the tracing headers the Referrals API returns:
// a Request-ID always, and MS-CorrelationId / client-request-id echoed.
func (s *Server) requestHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Request-ID", newID())
		if v := r.Header.Get("MS-CorrelationId"); v != "" {
			h.Set("MS-CorrelationId", v)
		}
		if v := r.Header.Get("client-request-id"); v != "" {
			h.Set("client-request-id", v)
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) renderReferralsAuth(w http.ResponseWriter, msg string) {
	writeAPIError(w, &apiError{Status: http.StatusUnauthorized, Code: codeUnauthenticated, Message: msg})
}

// renderWebhooksAuth uses the api.partnercenter.microsoft.com error shape
// ({code, description, data, source}), which differs from the Referrals API's.
func (s *Server) renderWebhooksAuth(w http.ResponseWriter, msg string) {
	emucore.WriteJSON(w, http.StatusUnauthorized, map[string]any{
		"code": 401, "description": msg, "data": []any{}, "source": "PartnerFD",
	})
}

// Fault kinds the control API accepts.
const (
	faultLatency = "latency"
	fault429     = "429"
	fault500     = "500"
	fault503     = "503"
)

func faultKinds() []string { return []string{faultLatency, fault429, fault500, fault503} }

func retryAfter(w http.ResponseWriter, f *emucore.Fault, always bool) int {
	secs := f.RetryAfter
	if secs <= 0 && always {
		secs = 1
	}
	if secs > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(secs))
	}
	return secs
}

func (s *Server) renderReferralsFault(w http.ResponseWriter, _ *http.Request, f *emucore.Fault) {
	switch f.Kind {
	case fault429:
		// Partner Center's throttling guidance documents this body.
		secs := retryAfter(w, f, true)
		emucore.WriteJSON(w, http.StatusTooManyRequests, map[string]any{
			"statusCode": 429, "message": fmt.Sprintf("Rate limit is exceeded. Try again in %d seconds.", secs),
		})
	case fault503:
		retryAfter(w, f, false)
		writeAPIError(w, &apiError{Status: http.StatusServiceUnavailable, Code: codeServiceUnavailable,
			Message: "The service is temporarily unavailable. Please retry later."})
	default:
		writeAPIError(w, &apiError{Status: http.StatusInternalServerError, Code: codeGeneralException,
			Message: "An unexpected error occurred. Callers may retry this."})
	}
}

func (s *Server) renderOAuthFault(w http.ResponseWriter, r *http.Request, f *emucore.Fault) {
	e := &oauthError{status: http.StatusInternalServerError, code: "server_error", aadsts: 90033,
		desc: "A transient error has occurred. Please try again."}
	switch f.Kind {
	case fault429:
		retryAfter(w, f, true)
		e = &oauthError{status: http.StatusTooManyRequests, code: "temporarily_unavailable", aadsts: 50196,
			desc: "The server terminated an operation because it encountered a client request loop. Please try again later."}
	case fault503:
		retryAfter(w, f, false)
		e = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", aadsts: 90033,
			desc: "A transient error has occurred. Please try again."}
	}
	writeOAuthError(w, r, s.now(), e)
}

func (s *Server) renderWebhooksFault(w http.ResponseWriter, _ *http.Request, f *emucore.Fault) {
	status := http.StatusInternalServerError
	switch f.Kind {
	case fault429:
		status = http.StatusTooManyRequests
		retryAfter(w, f, true)
	case fault503:
		status = http.StatusServiceUnavailable
		retryAfter(w, f, false)
	}
	emucore.WriteJSON(w, status, map[string]any{
		"code": status, "description": http.StatusText(status), "data": []any{}, "source": "PartnerFD",
	})
}

// referralsURL is the public URL of the referral collection.
func (s *Server) referralsURL() string { return s.cfg.PublicURL + "/v1.0/engagements/referrals" }

// referralURL is the public URL of one referral; it is also the ResourceUri
// of its webhook events.
func (s *Server) referralURL(id string) string { return s.referralsURL() + "/" + id }

// entityContext is the @odata.context of GET by id. The real service
// writes "engagments" (sic); the emulator keeps the typo.
func (s *Server) entityContext() string {
	return s.cfg.PublicURL + "/v1.0/engagments/referrals/$metadata#Referrals/$entity"
}

func (s *Server) collectionContext() string { return s.cfg.PublicURL + "/v1.0/$metadata#Referrals" }

// notify sends the webhook events of one write to the partner's
// registration: referral-created/-updated when the written referral is the
// partner's own, related-referral-created/-updated when it belongs to
// another organisation of the engagement (Microsoft's side of a co-sell).
// Each event names the referral that changed, so one write is one event.
func (s *Server) notify(changes ...change) {
	for _, c := range changes {
		changed, _ := time.Parse(time.RFC3339Nano, getString(c.rec.doc, "updatedDateTime"))
		own, rel := pcwebhooks.EventReferralUpdated, pcwebhooks.EventRelatedReferralUpdated
		if c.created {
			own, rel = pcwebhooks.EventReferralCreated, pcwebhooks.EventRelatedReferralCreated
		}
		ev := own
		if getString(c.rec.doc, "organizationId") != s.cfg.OrganizationID {
			ev = rel
		}
		s.hooks.Notify(ev, s.referralURL(c.rec.id), changed)
	}
}
