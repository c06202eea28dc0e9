// Package admin serves the adapter's operator endpoints, called by
// cosellctl inside the cluster. GET /admin/referrals/{id} returns a
// referral exactly as Partner Center returns it, so
// `cosellctl mapping dry-run --referral ID` can map it without holding
// Partner Center credentials itself. The webhook routes (Webhook) show,
// register and test the tenant's webhook registration for
// `cosellctl webhook show|register|test`.
//
// There is no authentication: the routes are reachable only inside the
// cluster (the Ingress exposes only ingress's webhook). Only the webhook
// register and test routes change anything, and only the registration
// this install is configured for.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
)

// Referrals reads referrals from Partner Center (pcclient.Client).
type Referrals interface {
	GetReferral(ctx context.Context, id string) (pcclient.Referral, error)
}

// Routes adds the admin routes to r.
func Routes(r chi.Router, refs Referrals, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{refs: refs, log: log}
	r.Get("/admin/referrals/{id}", h.getReferral)
}

type handler struct {
	refs Referrals
	log  *slog.Logger
}

// maxIDLength bounds a referral id; Partner Center's are GUIDs.
const maxIDLength = 128

// getReferral answers 200 with the referral document, 404 when Partner
// Center has none, 400 for an id that cannot be one, and 502 when Partner
// Center could not be asked (its status and message in the body).
func (h *handler) getReferral(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if id == "" || len(id) > maxIDLength || strings.ContainsAny(id, "/?#% \t") {
		writeError(w, http.StatusBadRequest, "invalidRequest", "the referral id is not valid")
		return
	}
	trace.SpanFromContext(r.Context()).SetAttributes(pcclient.AttrReferralID.String(id))
	ref, err := h.refs.GetReferral(r.Context(), id)
	if err != nil {
		var ae *pcclient.APIError
		switch {
		case pcclient.IsNotFound(err):
			writeError(w, http.StatusNotFound, "itemNotFound", "Partner Center has no referral "+id)
		case errors.As(err, &ae):
			h.log.WarnContext(r.Context(), "admin: reading a referral failed", "referral_id", id, "err", err)
			writeError(w, http.StatusBadGateway, ae.Code, ae.Error())
		default:
			h.log.WarnContext(r.Context(), "admin: reading a referral failed", "referral_id", id, "err", err)
			writeError(w, http.StatusBadGateway, "partnerCenterUnavailable", err.Error())
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if ref.ETag != "" {
		w.Header().Set("ETag", ref.ETag)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ref.Raw)
}

// writeError answers in Partner Center's error shape, which the CLI
// already knows how to print.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
