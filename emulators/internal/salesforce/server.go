// Package salesforce is the Salesforce emulator: OAuth token endpoint (JWT
// bearer and client credentials), the REST API under /services/data (sObject
// CRUD, upsert by External ID, describe, SOQL query with paging,
// getUpdated/getDeleted, sObject Collections, Composite, limits) backed by an
// in-memory record store, and a control API under /_emulator/ that lets tests
// act as a seller, inject faults and read counters.
//
// It follows ../shared/reference/salesforce-api.md §1–3 so that adapters and
// third-party clients written against real Salesforce work unchanged; where
// the reference leaves behaviour open, the emulator picks what a careful
// client must already cope with. Choices and deviations are listed in
// emulators/docs/salesforce.md.
package salesforce

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/emucore"
	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// Dev defaults shared by the binary's flags and New, so an emulator started
// without flags and an adapter configured with the documented defaults
// agree.
const (
	DefaultAddr          = "127.0.0.1:8082"
	DefaultClientID      = "cosell-dev-client-id"
	DefaultClientSecret  = "cosell-dev-client-secret"
	DefaultUsername      = "integration@cosell.example"
	DefaultSellerName    = "seller@cosell.example"
	DefaultAPILimit      = 100000
	DefaultTokenLifetime = 2 * time.Hour
	// DefaultPageSize is Salesforce's default (and maximum) query batch size.
	DefaultPageSize = 2000
)

// Config configures a Server. Zero values take the dev defaults above.
type Config struct {
	// ClientID and ClientSecret identify the connected app (consumer key and
	// secret). The secret also keys the token response's signature.
	ClientID     string
	ClientSecret string
	// Username is the integration user: the run-as user of the client
	// credentials flow and the only JWT sub accepted.
	Username string
	// SellerUsername is the seeded seller the control API acts as.
	SellerUsername string
	// JWTCerts are the certificates JWT-bearer assertions may be signed
	// with (the certificate uploaded to the connected app). With none, the
	// JWT bearer flow answers invalid_grant.
	JWTCerts []*x509.Certificate
	// APILimit is the org's daily API request allocation.
	APILimit int64
	// Stages are the Opportunity stages with their closed/won/probability
	// metadata; nil means DefaultStages.
	Stages []Stage
	// Currencies are the enabled CurrencyIsoCode values (first = corporate
	// currency); nil means sfschema.DefaultCurrencies.
	Currencies []string
	// TokenLifetime is the session inactivity timeout.
	TokenLifetime time.Duration
	// PublicURL is the instance_url handed out in token responses, e.g.
	// "http://127.0.0.1:8082". Required: clients build REST URLs from it.
	PublicURL string
	// MaxPageSize caps query pages below Salesforce's 2,000 so tests can
	// exercise paging with few records; 0 means DefaultPageSize.
	MaxPageSize int
	// Schema overrides the org schema built from Stages and Currencies.
	Schema *sfschema.Schema
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject a fake clock to
	// exercise token expiry and getUpdated windows without sleeping.
	Now func() time.Time
}

// Server is the emulator. It is an http.Handler; Close releases it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	schema  *sfschema.Schema
	stages  map[string]Stage
	clock   *clock
	store   *store
	tokens  *tokenStore
	usage   *usage
	cursors *cursorStore
	calls   emucore.Counters // every call per endpoint name
	counted emucore.Counters // calls counted against the API limit
	faults  emucore.Faults
	orgID   string
	started time.Time
	handler http.Handler
	closed  atomic.Bool
}

// New builds a Server from cfg, seeding the integration user and the seller.
func New(cfg Config) (*Server, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.Username == "" {
		cfg.Username = DefaultUsername
	}
	if cfg.SellerUsername == "" {
		cfg.SellerUsername = DefaultSellerName
	}
	if strings.EqualFold(cfg.Username, cfg.SellerUsername) {
		return nil, errors.New("the integration user and the seller must be different users")
	}
	if cfg.APILimit <= 0 {
		cfg.APILimit = DefaultAPILimit
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.MaxPageSize <= 0 || cfg.MaxPageSize > DefaultPageSize {
		cfg.MaxPageSize = DefaultPageSize
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("public URL is required (instance_url of token responses)")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Stages == nil {
		cfg.Stages = DefaultStages()
	}
	stages := make(map[string]Stage, len(cfg.Stages))
	names := make([]string, 0, len(cfg.Stages))
	for _, st := range cfg.Stages {
		if st.Name == "" {
			return nil, errors.New("stage names must not be empty")
		}
		if _, dup := stages[st.Name]; dup {
			return nil, fmt.Errorf("stage %q listed twice", st.Name)
		}
		stages[st.Name] = st
		names = append(names, st.Name)
	}
	schema := cfg.Schema
	if schema == nil {
		schema = sfschema.Default(sfschema.Options{Stages: names, Currencies: cfg.Currencies})
	}
	if schema.Object(objOpportunityStage) == nil {
		schema = sfschema.New(append(schema.Objects(), stageObject())...)
	}
	for _, name := range []string{sfschema.ObjUser} {
		if schema.Object(name) == nil {
			return nil, fmt.Errorf("schema lacks the %s object", name)
		}
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
		cfg:     cfg,
		log:     log,
		schema:  schema,
		stages:  stages,
		clock:   &clock{now: now},
		tokens:  newTokenStore(),
		usage:   newUsage(cfg.APILimit),
		cursors: newCursorStore(),
		orgID:   sfschema.NewID("00D", 1),
	}
	s.started = s.clock.Now()
	s.store = newStore(schema)
	s.seed()
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP serves the OAuth, REST and control endpoints. REST requests
// may carry compressed bodies and get compressed responses (compress.go);
// Composite subrequests bypass this, so they are never compressed twice.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/services/data") {
		s.handler.ServeHTTP(w, r)
		return
	}
	cw, done, ok := withCompression(w, r)
	if !ok {
		return
	}
	defer done()
	s.handler.ServeHTTP(cw, r)
}

// Close releases the server's state; later requests get 503.
func (s *Server) Close() error {
	s.closed.Store(true)
	s.cursors.clear()
	return nil
}

// IntegrationUserID is the id of the user the API runs as.
func (s *Server) IntegrationUserID() string { return s.userID(1) }

// SellerUserID is the id of the seeded seller the control API acts as.
func (s *Server) SellerUserID() string { return s.userID(2) }

// OrgID is the emulated org's 18-character id.
func (s *Server) OrgID() string { return s.orgID }

func (s *Server) userID(seq uint64) string {
	return sfschema.NewID(s.schema.Object(sfschema.ObjUser).KeyPrefix, seq)
}

// seed (re)creates the two users every org of the emulator has and the
// OpportunityStage rows of the stage table.
func (s *Server) seed() {
	now := s.clock.Now()
	integ, seller := s.IntegrationUserID(), s.SellerUserID()
	mk := func(id, username, first, last, alias, title string) map[string]any {
		return map[string]any{
			"Username": username, "FirstName": first, "LastName": last,
			"Name": first + " " + last, "Email": username, "Alias": alias,
			"Title": title, "IsActive": true,
		}
	}
	s.store.seed(sfschema.ObjUser, integ, mk(integ, s.cfg.Username, "Integration", "User", "integ", "Integration User"), integ, now)
	s.store.seed(sfschema.ObjUser, seller, mk(seller, s.cfg.SellerUsername, "Sam", "Seller", "sseller", "Account Executive"), integ, now)
	for i, st := range s.cfg.Stages {
		s.store.seed(objOpportunityStage, sfschema.NewID("01J", uint64(i+1)), stageRecord(i, st), integ, now)
	}
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, errNotFound()) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newErr(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "HTTP Method '"+r.Method+"' not allowed."))
	})
	r.Get("/healthz", emucore.Healthz)

	r.Post("/services/oauth2/token", s.handleToken)
	r.Post("/services/oauth2/revoke", s.handleRevoke)
	r.Get("/services/oauth2/userinfo", s.handleUserInfo)
	r.Get("/id/{org}/{user}", s.handleIdentity)

	r.Get("/services/data", s.handleVersions)
	r.Get("/services/data/", s.handleVersions)
	r.Route("/services/data/{version}", func(r chi.Router) {
		r.Use(s.checkVersion)
		r.Get("/", s.api("resources", s.handleResources))
		r.Get("/limits", s.api("limits", s.handleLimits))
		r.Get("/sobjects", s.api("describeGlobal", s.handleDescribeGlobal))
		r.Get("/sobjects/{object}", s.api("sobject.info", s.handleSObjectInfo))
		r.Post("/sobjects/{object}", s.api("sobject.create", s.handleCreate))
		r.Get("/sobjects/{object}/describe", s.api("describe", s.handleDescribe))
		r.Get("/sobjects/{object}/updated", s.api("updated", s.handleUpdated))
		r.Get("/sobjects/{object}/deleted", s.api("deleted", s.handleDeleted))
		r.Get("/sobjects/{object}/{id}", s.api("sobject.get", s.handleGet))
		r.Patch("/sobjects/{object}/{id}", s.api("sobject.update", s.handleUpdate))
		r.Delete("/sobjects/{object}/{id}", s.api("sobject.delete", s.handleDelete))
		r.Post("/sobjects/{object}/{field}", s.api("sobject.create", s.handleCreateByIDField))
		r.Get("/sobjects/{object}/{field}/{value}", s.api("sobject.getByExternalId", s.handleGetByExternalID))
		r.Patch("/sobjects/{object}/{field}/{value}", s.api("upsert", s.handleUpsert))
		r.Delete("/sobjects/{object}/{field}/{value}", s.api("sobject.deleteByExternalId", s.handleDeleteByExternalID))
		r.Get("/query", s.api("query", s.handleQuery(false)))
		r.Get("/queryAll", s.api("queryAll", s.handleQuery(true)))
		r.Get("/query/{locator}", s.api("query.more", s.handleQueryMore))
		r.Get("/queryAll/{locator}", s.api("query.more", s.handleQueryMore))
		r.Post("/composite", s.api("composite", s.handleComposite))
		r.Post("/composite/sobjects", s.api("composite.sobjects", s.handleCollectionCreate))
		r.Patch("/composite/sobjects", s.api("composite.sobjects", s.handleCollectionUpdate))
		r.Delete("/composite/sobjects", s.api("composite.sobjects", s.handleCollectionDelete))
		r.Get("/composite/sobjects/{object}", s.api("composite.sobjects", s.handleCollectionRetrieve))
		r.Post("/composite/sobjects/{object}", s.api("composite.sobjects", s.handleCollectionRetrieve))
		r.Patch("/composite/sobjects/{object}/{field}", s.api("composite.sobjects", s.handleCollectionUpsert))
	})

	r.Route("/_emulator", s.controlRoutes)
	return s.normalise(r)
}

// normalise drops a trailing slash (Salesforce serves "/sobjects/" and
// "/sobjects" alike), applies the _HttpMethod override Salesforce offers to
// clients that cannot send PATCH, and refuses requests after Close.
func (s *Server) normalise(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.closed.Load() {
			writeError(w, newErr(http.StatusServiceUnavailable, "SERVER_UNAVAILABLE", "The emulator is shut down"))
			return
		}
		p := r.URL.Path
		if len(p) > 1 && strings.HasSuffix(p, "/") && p != "/services/data/" {
			r.URL.Path = strings.TrimRight(p, "/")
			if r.URL.RawPath != "" {
				r.URL.RawPath = strings.TrimRight(r.URL.RawPath, "/")
			}
			if r.URL.Path == "" {
				r.URL.Path = "/"
			}
		}
		if r.Method == http.MethodPost {
			if m := r.URL.Query().Get("_HttpMethod"); m == http.MethodPatch || m == http.MethodDelete {
				r.Method = m
			}
		}
		next.ServeHTTP(w, r)
	})
}

// clock is the server's time source plus an offset the control API can
// advance, so black-box tests can age tokens and change windows.
type clock struct {
	now    func() time.Time
	offset atomic.Int64
}

// Now returns the current emulated time in UTC, truncated to milliseconds
// (the resolution Salesforce stores).
func (c *clock) Now() time.Time {
	return c.now().Add(time.Duration(c.offset.Load())).UTC().Truncate(time.Millisecond)
}

func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }
