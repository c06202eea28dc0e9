package partnercenter

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/jsonpatch"
)

// maxBody bounds request bodies; a referral is a few kilobytes.
const maxBody = 1 << 20

// decodeJSON reads a JSON request body. Numbers decode as float64, which
// is what the OData evaluator and JSON Patch expect.
func decodeJSON(w http.ResponseWriter, r *http.Request) (any, []byte, *apiError) {
	if aerr := checkJSONContentType(r); aerr != nil {
		return nil, nil, aerr
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeInvalidRequest,
				Message: "The request body is larger than 1 MiB."}
		}
		return nil, nil, badRequest("body", "The request body could not be read: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, nil, badRequest("body", "The request body is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, nil, badRequest("body", "The request body has data after the JSON value.")
	}
	return v, raw, nil
}

// bindReferral turns a decoded request body into a canonical referral.
func (s *Server) bindReferral(v any) (map[string]any, *apiError) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("body", "The request body must be a JSON object (a Referral).")
	}
	bound, err := s.schema.bind(obj, "")
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, badRequest("body", "%v", err)
	}
	doc, ok := bound.(map[string]any)
	if !ok {
		return nil, badRequest("body", "The request body must be a JSON object (a Referral).")
	}
	return doc, nil
}

// lookup finds a stored referral by id (GUIDs compare case-insensitively).
// The caller holds s.store.mu.
func (s *Server) lookupLocked(id string) *record {
	if rec := s.store.byID[id]; rec != nil {
		return rec
	}
	return s.store.byID[strings.ToLower(id)]
}

// writeReferral sends a stored referral's JSON with its ETag header.
func writeReferral(w http.ResponseWriter, status int, rec *record, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("ETag", rec.etag)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// handleGet serves GET /v1.0/engagements/referrals/{id}: a map lookup and a
// copy of the pre-rendered body.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	s.store.mu.RLock()
	rec := s.lookupLocked(id)
	s.store.mu.RUnlock()
	if rec == nil {
		writeAPIError(w, notFound(id))
		return
	}
	writeReferral(w, http.StatusOK, rec, rec.getBody)
}

// handleCreate serves POST /v1.0/engagements/referrals.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	v, _, aerr := decodeJSON(w, r)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	doc, aerr := s.bindReferral(v)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	if getString(doc, "status") == "Closed" {
		writeAPIError(w, badRequest("status", "A referral cannot be created in status 'Closed'."))
		return
	}
	now := s.now()
	ts := formatTime(now)
	engagement := getString(doc, "engagementId")
	s.ownFields(doc, ts)
	// A referral your organisation creates is accepted at once (the
	// documented create response shows Active/Accepted).
	doc["status"], doc["substatus"] = "Active", "Accepted"
	doc["acceptedDateTime"] = ts
	doc["direction"] = "Outgoing"
	if aerr := s.validateReferral(doc); aerr != nil {
		writeAPIError(w, aerr)
		return
	}

	s.store.mu.Lock()
	if engagement != "" {
		// The second step of a shared referral ties a new referral to an
		// existing engagement; an unknown engagement is an error.
		if len(s.store.engagements[strings.ToLower(engagement)]) == 0 {
			s.store.mu.Unlock()
			writeAPIError(w, badRequest("engagementId", "Engagement '%s' does not exist.", engagement))
			return
		}
		doc["engagementId"] = strings.ToLower(engagement)
	}
	rec, err := s.finalize(doc, 1, now)
	if err != nil {
		s.store.mu.Unlock()
		s.internalError(w, err)
		return
	}
	ch := s.store.insertLocked(rec)
	s.store.mu.Unlock()

	s.log.Info("referral created", "id", rec.id, "engagement_id", rec.engagementID, "via", "api")
	s.notify(ch)
	writeReferral(w, http.StatusCreated, rec, rec.body)
}

// ownFields overwrites every server-owned field of a new referral owned by
// the emulated partner organisation.
func (s *Server) ownFields(doc map[string]any, ts string) {
	for _, f := range serverOwnedFields() {
		doc[f] = nil
	}
	doc["id"] = newID()
	doc["engagementId"] = newID()
	doc["organizationId"] = s.cfg.OrganizationID
	doc["organizationName"] = s.cfg.OrganizationName
	doc["mpnId"] = s.cfg.MPNID
	doc["createdDateTime"] = ts
	doc["trackingInfo"] = s.emptyObject("trackingInfo")
	doc["registrations"] = []any{}
	doc["registrationStatus"] = "None"
}

// emptyObject returns the all-null form of the top-level object property name.
func (s *Server) emptyObject(name string) map[string]any {
	v, _ := s.schema.child(name).bind(map[string]any{}, name)
	m, _ := v.(map[string]any)
	return m
}

func (s *Server) internalError(w http.ResponseWriter, err error) {
	s.log.Error("internal error", "error", err)
	writeAPIError(w, &apiError{Status: http.StatusInternalServerError, Code: codeGeneralException,
		Message: "An unexpected error occurred. Callers may retry this."})
}

// etagMatches implements If-Match: "*" matches any current version; else
// one of the comma-separated tags must equal the eTag, with or without its
// surrounding quotes (clients often drop them).
func etagMatches(header, etag string) bool {
	bare := strings.Trim(etag, `"`)
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag || strings.Trim(t, `"`) == bare {
			return true
		}
	}
	return false
}

// update runs one read-modify-write of referral id under the store lock:
// If-Match (when ifMatch is non-empty), ownership, then build computes the
// next document from the current one. The stamped record is stored and its
// webhook events sent.
func (s *Server) update(id, ifMatch string, checkOwner bool, build func(cur map[string]any, now time.Time) (map[string]any, *apiError)) (*record, *apiError) {
	now := s.now()
	s.store.mu.Lock()
	cur := s.lookupLocked(id)
	if cur == nil {
		s.store.mu.Unlock()
		return nil, notFound(id)
	}
	if ifMatch != "" && !etagMatches(ifMatch, cur.etag) {
		s.store.mu.Unlock()
		return nil, preconditionFailed()
	}
	if checkOwner {
		if aerr := s.canWrite(cur.doc); aerr != nil {
			s.store.mu.Unlock()
			return nil, aerr
		}
	}
	next, aerr := build(cur.doc, now)
	if aerr != nil {
		s.store.mu.Unlock()
		return nil, aerr
	}
	rec, err := s.finalize(next, cur.version+1, now)
	if err != nil {
		s.store.mu.Unlock()
		return nil, &apiError{Status: http.StatusInternalServerError, Code: codeGeneralException, Message: err.Error()}
	}
	ch := s.store.replaceLocked(rec)
	s.store.mu.Unlock()
	s.notify(ch)
	return rec, nil
}

// keepServerFields copies the server-owned fields of cur into next.
func keepServerFields(cur, next map[string]any) {
	for _, f := range serverOwnedFields() {
		next[f] = deepCopy(cur[f])
	}
}

// handlePut serves PUT /v1.0/engagements/referrals/{id}: a full update with
// a required If-Match.
func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	ifMatch := r.Header.Get("If-Match")
	if strings.TrimSpace(ifMatch) == "" {
		writeAPIError(w, badRequest("If-Match", "The If-Match header is required: send the referral's eTag."))
		return
	}
	v, _, aerr := decodeJSON(w, r)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	next, aerr := s.bindReferral(v)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	rec, aerr := s.update(id, ifMatch, true, func(cur map[string]any, now time.Time) (map[string]any, *apiError) {
		// status/substatus left out of the body keep their values; every
		// other client field is replaced by what the body says.
		if next["status"] == nil {
			next["status"] = cur["status"]
		}
		if next["substatus"] == nil {
			next["substatus"] = cur["substatus"]
		}
		keepServerFields(cur, next)
		return s.checkWrite(cur, next, now)
	})
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.log.Info("referral updated", "id", rec.id, "via", "put")
	writeReferral(w, http.StatusOK, rec, rec.body)
}

// checkWrite applies the transition table and content rules to a client
// write and stamps status timestamps.
func (s *Server) checkWrite(cur, next map[string]any, now time.Time) (map[string]any, *apiError) {
	if aerr := s.checkTransition(cur, next); aerr != nil {
		return nil, aerr
	}
	applyStatusTimestamps(cur, next, formatTime(now))
	if aerr := s.validateReferral(next); aerr != nil {
		return nil, aerr
	}
	return next, nil
}

// patchablePaths is the connector's list of paths a client may patch
// (reference §2.9) plus /name.
func patchablePaths() []string {
	return []string{
		"/campaignId",
		"/consent/consentToShareReferralWithMicrosoftSellers",
		"/customerProfile/team",
		"/customerProfile/team/-",
		"/details/closingDateTime",
		"/details/currency",
		"/details/dealValue",
		"/details/notes",
		"/details/requirements/solutions",
		"/details/requirements/solutions/-",
		"/externalReferenceId",
		"/name",
		"/referralProgram",
		"/salesStage",
		"/status",
		"/substatus",
		"/statusReason",
		"/team",
		"/team/-",
	}
}

// checkPatchOps enforces what Partner Center's PATCH allows: only replace
// and add, only on patchable paths. Paths match case-insensitively (input
// binding is case-insensitive) and are rewritten to their canonical form.
func checkPatchOps(ops []jsonpatch.Operation) ([]jsonpatch.Operation, *apiError) {
	if len(ops) == 0 {
		return nil, badRequest("body", "The JSON Patch document must contain at least one operation.")
	}
	out := make([]jsonpatch.Operation, len(ops))
	for i, op := range ops {
		name := strings.ToLower(op.Op)
		if name != "replace" && name != "add" {
			return nil, badRequest("op", "Operation %d: '%s' is not supported; only 'replace' and 'add' are.", i, op.Op)
		}
		path := ""
		for _, p := range patchablePaths() {
			if strings.EqualFold(p, op.Path) {
				path = p
			}
		}
		if path == "" {
			return nil, badRequest("path", "Operation %d: path '%s' cannot be updated.", i, op.Path)
		}
		op.Op, op.Path = name, path
		out[i] = op
	}
	return out, nil
}

// handlePatch serves PATCH /v1.0/engagements/referrals/{id} (JSON Patch).
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if aerr := checkJSONContentType(r); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeAPIError(w, &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeInvalidRequest, Message: "The request body is larger than 1 MiB."})
		return
	}
	ops, err := jsonpatch.Decode(raw)
	if err != nil {
		writeAPIError(w, patchError(err))
		return
	}
	ops, aerr := checkPatchOps(ops)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	rec, aerr := s.update(id, r.Header.Get("If-Match"), true, func(cur map[string]any, now time.Time) (map[string]any, *apiError) {
		if getString(cur, "status") == "Closed" {
			return nil, s.checkTransition(cur, cur)
		}
		next, aerr := s.applyPatch(cur, ops)
		if aerr != nil {
			return nil, aerr
		}
		return s.checkWrite(cur, next, now)
	})
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.log.Info("referral updated", "id", rec.id, "via", "patch")
	if wantsRepresentation(r) {
		w.Header().Set("Preference-Applied", "return=representation")
		writeReferral(w, http.StatusOK, rec, rec.body)
		return
	}
	w.Header().Set("ETag", rec.etag)
	w.WriteHeader(http.StatusNoContent)
}

// applyPatch applies ops to a copy of cur and re-binds the result, which
// normalises property names and coerces values such as "10000" for
// dealValue. Server-owned fields are restored from cur.
func (s *Server) applyPatch(cur map[string]any, ops []jsonpatch.Operation) (map[string]any, *apiError) {
	patched, err := jsonpatch.Apply(cur, ops)
	if err != nil {
		return nil, patchError(err)
	}
	next, aerr := s.bindReferral(patched)
	if aerr != nil {
		return nil, aerr
	}
	keepServerFields(cur, next)
	return next, nil
}

// patchError renders a jsonpatch failure as a 400.
func patchError(err error) *apiError {
	var pe *jsonpatch.Error
	if errors.As(err, &pe) {
		return badRequest(pe.Path, "Operation %d (%s %s): %s", pe.Index, pe.Op, pe.Path, pe.Message)
	}
	return badRequest("body", "The request body is not a valid JSON Patch document: %v", err)
}

// checkJSONContentType requires a JSON media type (application/json,
// application/json-patch+json, ...) on a request with a body.
func checkJSONContentType(r *http.Request) *apiError {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if ct == "" || !strings.Contains(ct, "json") {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: codeInvalidRequest, Target: "Content-Type",
			Message: "The request must have Content-Type application/json (or application/json-patch+json for PATCH)."}
	}
	return nil
}

func wantsRepresentation(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "return=representation") {
				return true
			}
		}
	}
	return false
}
