// Package admin is the mapper's operator HTTP API: look at a link and its
// audit trail, and replay a parked link once the cause of its rejection is
// fixed. It is meant for the cluster network and the operator CLI, never the
// public internet.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// Replayer replays a link; *syncer.Service satisfies it.
type Replayer interface {
	Replay(ctx context.Context, referralID string) (syncer.Replayed, error)
}

// Handler serves the admin routes.
type Handler struct {
	replayer Replayer
	db       Reader
	log      *slog.Logger
}

// Reader reads links and audit trails; *pgxpool.Pool satisfies it.
type Reader interface {
	linkstore.RowQuerier
	linkstore.Querier
}

// New returns the admin handler.
func New(r Replayer, db Reader, log *slog.Logger) *Handler {
	return &Handler{replayer: r, db: db, log: log}
}

// Routes registers the admin routes on r:
//
//	GET  /admin/links/{referralId}                the link and its audit trail
//	GET  /admin/opportunities/{opportunityId}     the same, by opportunity (an outbound link has no referral id until created)
//	POST /admin/links/{referralId}/replay         re-apply the latest snapshot and resume the link
//	POST /admin/mapping/validate                  validate a mapping file (and, optionally, against a Salesforce describe)
func (h *Handler) Routes(r chi.Router) {
	r.Get("/admin/links/{referralId}", h.get)
	r.Get("/admin/opportunities/{opportunityId}", h.getByOpportunity)
	r.Post("/admin/links/{referralId}/replay", h.replay)
	r.Post("/admin/mapping/validate", h.validateMapping)
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "referralId")
	out, err := h.replayer.Replay(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// linkView is a link as operators see it.
type linkView struct {
	ReferralID       string          `json:"referralId,omitempty"`
	Origin           string          `json:"origin"`
	SFModstamp       *time.Time      `json:"salesforceModstamp,omitempty"`
	PCCommandID      string          `json:"lastPartnerCenterCommandId,omitempty"`
	PCResultID       string          `json:"lastPartnerCenterResultCommandId,omitempty"`
	RelatedReferral  string          `json:"microsoftReferralId,omitempty"`
	Sync             json.RawMessage `json:"sync,omitempty"`
	EngagementID     string          `json:"engagementId,omitempty"`
	OpportunityID    string          `json:"opportunityId,omitempty"`
	AccountID        string          `json:"accountId,omitempty"`
	State            string          `json:"state"`
	ParkReason       string          `json:"parkReason,omitempty"`
	PCUpdatedAt      *time.Time      `json:"partnerCenterUpdatedAt,omitempty"`
	PCETag           string          `json:"partnerCenterETag,omitempty"`
	LastCommandID    string          `json:"lastCommandId,omitempty"`
	LastResultID     string          `json:"lastResultCommandId,omitempty"`
	ProjectionHash   string          `json:"projectionHash,omitempty"`
	Replays          int             `json:"replays"`
	Audit            []auditEntry    `json:"audit"`
	AuditTruncatedAt int             `json:"auditTruncatedAt,omitempty"`
}

type auditEntry struct {
	At            time.Time      `json:"at"`
	Kind          string         `json:"kind"`
	Message       string         `json:"message"`
	OpportunityID string         `json:"opportunityId,omitempty"`
	TraceID       string         `json:"traceId,omitempty"`
	Details       map[string]any `json:"details,omitempty"`
}

const auditLimit = 500

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "referralId")
	l, err := linkstore.Get(r.Context(), h.db, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	trail, err := linkstore.AuditTrail(r.Context(), h.db, id, auditLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(l, trail))
}

func (h *Handler) getByOpportunity(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "opportunityId")
	l, err := linkstore.GetByOpportunity(r.Context(), h.db, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	trail, err := linkstore.AuditTrailByOpportunity(r.Context(), h.db, id, auditLimit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(l, trail))
}

func view(l *linkstore.Link, trail []linkstore.AuditEntry) linkView {
	v := linkView{ReferralID: l.ReferralID, Origin: string(l.Origin), SFModstamp: l.SFModstamp, PCCommandID: l.PCCommandID,
		PCResultID: l.PCResultCommandID, RelatedReferral: l.RelatedReferralID,
		EngagementID: l.EngagementID, OpportunityID: l.OpportunityID, AccountID: l.AccountID,
		State: string(l.State), ParkReason: l.ParkReason, PCUpdatedAt: l.PCUpdatedAt, PCETag: l.PCETag,
		LastCommandID: l.CommandID, LastResultID: l.ResultCommandID, ProjectionHash: l.ProjectionHash, Replays: l.Replays,
		Audit: make([]auditEntry, len(trail))}
	if len(l.Sync) > 2 {
		v.Sync = l.Sync
	}
	for i, a := range trail {
		v.Audit[i] = auditEntry{At: a.At, Kind: a.Kind, Message: a.Message, OpportunityID: a.OpportunityID, TraceID: a.TraceID, Details: a.Details}
	}
	if len(trail) == auditLimit {
		v.AuditTruncatedAt = auditLimit
	}
	return v
}

// validateRequest is the JSON form of a validation request; a body that
// is not JSON is taken as the mapping file itself.
type validateRequest struct {
	// File names the mapping in problems.
	File    string `json:"file"`
	Mapping string `json:"mapping"`
	// Describe is the Salesforce describe of the object (optional).
	Describe json.RawMessage `json:"describe"`
}

// validateResponse answers a validation.
type validateResponse struct {
	Valid    bool              `json:"valid"`
	Version  int               `json:"version,omitempty"`
	Problems []mapping.Problem `json:"problems,omitempty"`
	Error    string            `json:"error,omitempty"`
}

func (h *Handler) validateMapping(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, validateResponse{Error: "read body: " + err.Error()})
		return
	}
	req := validateRequest{File: "request", Mapping: string(body)}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		req = validateRequest{File: "request"}
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSON(w, http.StatusBadRequest, validateResponse{Error: "body: " + err.Error()})
			return
		}
	}
	cfg, err := mapping.Parse(req.File, []byte(req.Mapping))
	if err == nil && len(req.Describe) > 0 {
		err = mapping.ValidateAgainstDescribe(cfg, req.Describe)
	}
	var ve *mapping.ValidationError
	switch {
	case errors.As(err, &ve):
		writeJSON(w, http.StatusUnprocessableEntity, validateResponse{Problems: ve.Problems})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, validateResponse{Error: err.Error()})
	default:
		writeJSON(w, http.StatusOK, validateResponse{Valid: true, Version: cfg.Version})
	}
}

// fail translates a use-case error into a status, once, at the edge.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, syncer.ErrNothingToReplay):
		status = http.StatusConflict
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	if status >= 500 {
		h.log.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body) // the client went away; nothing to do
}
