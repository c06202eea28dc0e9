package partnercenter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/emucore"
	"github.com/cosell/cosell/emulators/internal/jsonpatch"
)

// Default values of a referral a Microsoft seller sends through the
// control API; the request body overrides any of them.
const (
	defaultSolutionID = "SOL-6115380-IPC"
	microsoftOrgName  = "Microsoft"
)

func (s *Server) controlRoutes(r chi.Router) {
	r.Post("/referrals", s.handleControlCreate)
	r.Patch("/referrals/{id}", s.handleControlPatch)
	r.Post("/referrals/{id}/accept", s.handleControlAccept)
	r.Post("/referrals/{id}/expire", s.handleControlExpire)

	r.Get("/faults", s.handleFaultsList)
	r.Post("/faults", s.handleFaultsAdd)
	r.Delete("/faults", s.handleFaultsClear)
	r.Delete("/faults/{id}", s.handleFaultsRemove)

	r.Get("/counters", s.handleCounters)
	r.Delete("/counters", s.handleCountersReset)

	r.Get("/state", s.handleState)
	r.Post("/reset", s.handleReset)

	r.Post("/devicecode/approve", s.handleDeviceDecision(true))
	r.Post("/devicecode/decline", s.handleDeviceDecision(false))
	r.Post("/tokens/expire", s.handleTokensExpire)
	r.Post("/tokens/revoke", s.handleTokensRevoke)

	r.Mount("/webhooks", s.hooks.ControlRoutes())
}

// readOptionalJSON decodes an optional JSON object body ({} when empty).
func readOptionalJSON(w http.ResponseWriter, r *http.Request) (map[string]any, *apiError) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, badRequest("body", "The request body could not be read: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, badRequest("body", "The request body must be a JSON object: %v", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// inboundDefaults is a plausible co-sell opportunity from a Microsoft
// seller, in canonical (bound) form.
func (s *Server) inboundDefaults(now time.Time) (map[string]any, error) {
	raw := map[string]any{
		"name":          "Contoso Retail cloud migration",
		"type":          "Shared",
		"qualification": "SalesQualified",
		"status":        "New",
		"substatus":     "Pending",
		"customerProfile": map[string]any{
			"name": "Contoso Retail Inc",
			"address": map[string]any{
				"addressLine1": "One Microsoft Way", "city": "Redmond", "state": "WA",
				"postalCode": "98052", "country": "US",
			},
			"size": "51to250employees",
			"team": []any{map[string]any{
				"firstName": "Sue", "lastName": "Smith", "email": "sue.smith@contoso-retail.example", "phoneNumber": "4255550100",
			}},
		},
		"consent": map[string]any{
			"consentToToShareInfoWithOthers": true, "consentToContact": true,
			"consentToShareReferralWithMicrosoftSellers": true,
		},
		"details": map[string]any{
			"notes": "Customer wants to move its on-premises retail workloads to Azure.", "dealValue": 50000.0,
			"currency": "USD", "closingDateTime": formatTime(now.Add(60 * 24 * time.Hour).Truncate(24 * time.Hour)),
			"requirements": map[string]any{"solutions": []any{map[string]any{"id": defaultSolutionID, "type": "Name"}}},
		},
		"inviteContext": map[string]any{
			"notes":                 "Microsoft seller invites you to co-sell.",
			"invitedBy":             map[string]any{"organizationId": MicrosoftOrganizationID, "organizationName": microsoftOrgName},
			"assistanceRequestCode": "GeneralOrOther",
		},
		"target": []any{map[string]any{"type": "SolutionProfile", "id": defaultSolutionID}},
	}
	v, err := s.schema.bind(raw, "")
	if err != nil {
		return nil, fmt.Errorf("bind inbound defaults: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("bind inbound defaults: got %T", v)
	}
	return m, nil
}

// handleControlCreate creates a referral as a Microsoft seller: an inbound
// (Incoming, New/Pending, invited by msft, Shared) referral owned by the
// partner plus, unless ?related=false, Microsoft's own referral in the same
// engagement. The body (any Referral fields, any case) overrides the
// defaults; server-owned fields in it are ignored.
func (s *Server) handleControlCreate(w http.ResponseWriter, r *http.Request) {
	in, aerr := readOptionalJSON(w, r)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	bound, aerr := s.bindReferral(in)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	now := s.now()
	ts := formatTime(now)
	doc, err := s.inboundDefaults(now)
	if err != nil {
		s.internalError(w, err)
		return
	}
	for k := range in {
		if p := s.schema.child(k); p != nil {
			doc[p.name] = bound[p.name]
		}
	}
	if st := getString(doc, "status"); st != "New" {
		writeAPIError(w, badRequest("status", "An inbound referral starts in status 'New', not '%s'.", st))
		return
	}
	s.ownFields(doc, ts)
	doc["direction"] = "Incoming"
	doc["expirationDateTime"] = formatTime(now.Add(s.cfg.ExpireAfter))
	if aerr := s.validateReferral(doc); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	withMicrosoft := r.URL.Query().Get("related") != "false"

	// Both records are new (fresh ids), so they are rendered before the
	// store is locked: JSON encoding under the write lock would stall every
	// concurrent GET.
	var ms *record
	if withMicrosoft {
		var err error
		if ms, err = s.finalize(s.microsoftSide(doc, ts, ""), 1, now); err != nil {
			s.internalError(w, err)
			return
		}
	}
	rec, err := s.finalize(doc, 1, now)
	if err != nil {
		s.internalError(w, err)
		return
	}
	var changes []change
	s.store.mu.Lock()
	if ms != nil {
		changes = append(changes, s.store.insertLocked(ms))
	}
	changes = append(changes, s.store.insertLocked(rec))
	s.store.mu.Unlock()

	s.log.Info("referral created", "id", rec.id, "engagement_id", rec.engagementID, "via", "control", "with_microsoft_referral", withMicrosoft)
	s.notify(changes...)
	related := []byte("null")
	if ms != nil {
		related = ms.body
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"referral":%s,"relatedReferral":%s}`+"\n", rec.body, related)
}

// microsoftSide derives Microsoft's referral of the engagement of partner
// referral doc: owned by msft, already Active/Accepted, targeting the
// partner organisation.
func (s *Server) microsoftSide(doc map[string]any, ts, msxID string) map[string]any {
	ms, _ := deepCopy(doc).(map[string]any)
	ms["id"] = newID()
	ms["organizationId"] = MicrosoftOrganizationID
	ms["organizationName"] = microsoftOrgName
	ms["mpnId"] = nil
	ms["createdDateTime"] = ts
	ms["direction"] = "Outgoing"
	ms["status"], ms["substatus"], ms["statusReason"] = "Active", "Accepted", nil
	ms["acceptedDateTime"] = ts
	ms["expirationDateTime"], ms["closedDateTime"] = nil, nil
	ms["externalReferenceId"] = nil
	ms["inviteContext"] = nil
	seller, _ := s.schema.child("team").elem.bind(map[string]any{
		"firstName": "Alex", "lastName": "Wilber", "email": "alex.wilber@microsoft.example",
	}, "team[0]")
	ms["team"] = []any{seller}
	ms["target"] = []any{map[string]any{"type": "BusinessProfileLocation", "id": s.cfg.OrganizationID}}
	tracking := s.emptyObject("trackingInfo")
	if msxID != "" {
		tracking["microsoftMsxId"] = msxID
	}
	ms["trackingInfo"] = tracking
	return ms
}

// isMicrosoftSide reports whether doc is Microsoft's referral of its
// engagement: owned by msft, or created by the partner "for Microsoft"
// (target BusinessProfileLocation msft, the documented second step of a
// shared referral).
func isMicrosoftSide(doc map[string]any) bool {
	if getString(doc, "organizationId") == MicrosoftOrganizationID {
		return true
	}
	for _, t := range getSlice(doc, "target") {
		if m, _ := t.(map[string]any); m != nil && getString(m, "id") == MicrosoftOrganizationID {
			return true
		}
	}
	return false
}

// handleControlAccept plays "Microsoft accepts the co-sell": it sets
// trackingInfo.microsoftMsxId (body {"microsoftMsxId": "..."} or a
// generated 7-XXXXXXXXXX id) on Microsoft's referral of the engagement of
// {id}, creating that referral when the engagement has none yet.
func (s *Server) handleControlAccept(w http.ResponseWriter, r *http.Request) {
	in, aerr := readOptionalJSON(w, r)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	msx, _ := in["microsoftMsxId"].(string)
	if msx == "" {
		msx = "7-" + strings.ToUpper(strings.ReplaceAll(newID(), "-", ""))[:10]
	}
	id := chi.URLParam(r, "id")
	now := s.now()
	ts := formatTime(now)

	s.store.mu.Lock()
	cur := s.lookupLocked(id)
	if cur == nil {
		s.store.mu.Unlock()
		writeAPIError(w, notFound(id))
		return
	}
	var target *record
	for _, rid := range s.store.engagements[cur.engagementID] {
		if rec := s.store.byID[rid]; isMicrosoftSide(rec.doc) {
			target = rec
			break
		}
	}
	var next map[string]any
	version := uint64(1)
	if target == nil {
		next = s.microsoftSide(cur.doc, ts, msx)
	} else {
		if getString(target.doc, "status") == "Closed" {
			s.store.mu.Unlock()
			writeAPIError(w, &apiError{Status: http.StatusConflict, Code: codeInvalidRequest, Target: "status",
				Message: "Microsoft's referral of this engagement is closed."})
			return
		}
		next, _ = deepCopy(target.doc).(map[string]any)
		tracking := getMap(next, "trackingInfo")
		if tracking == nil {
			tracking = s.emptyObject("trackingInfo")
			next["trackingInfo"] = tracking
		}
		tracking["microsoftMsxId"] = msx
		version = target.version + 1
	}
	rec, err := s.finalize(next, version, now)
	if err != nil {
		s.store.mu.Unlock()
		s.internalError(w, err)
		return
	}
	var ch change
	if target == nil {
		ch = s.store.insertLocked(rec)
	} else {
		ch = s.store.replaceLocked(rec)
	}
	s.store.mu.Unlock()

	s.log.Info("microsoft accepted co-sell", "id", rec.id, "engagement_id", rec.engagementID, "msx_id", msx)
	s.notify(ch)
	writeReferral(w, http.StatusOK, rec, rec.body)
}

// handleControlExpire closes a referral as Expired, as Partner Center does
// to inbound referrals nobody answers within 14 days.
func (s *Server) handleControlExpire(w http.ResponseWriter, r *http.Request) {
	rec, aerr := s.update(chi.URLParam(r, "id"), "", false, func(cur map[string]any, now time.Time) (map[string]any, *apiError) {
		if getString(cur, "status") == "Closed" {
			return nil, &apiError{Status: http.StatusConflict, Code: codeInvalidRequest, Target: "status",
				Message: "The referral is already closed (" + getString(cur, "substatus") + ")."}
		}
		next, _ := deepCopy(cur).(map[string]any)
		next["status"], next["substatus"] = "Closed", "Expired"
		next["closedDateTime"] = formatTime(now)
		return next, nil
	})
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.log.Info("referral expired", "id", rec.id)
	writeReferral(w, http.StatusOK, rec, rec.body)
}

// handleControlPatch edits a referral as the Microsoft seller: any JSON
// Patch operation on any client field, without the partner's path list,
// transition table or closed-referral lock (the content rules still
// apply). Server-owned fields stay out of reach; use accept and expire.
func (s *Server) handleControlPatch(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeAPIError(w, badRequest("body", "The request body could not be read: %v", err))
		return
	}
	ops, err := jsonpatch.Decode(raw)
	if err != nil {
		writeAPIError(w, patchError(err))
		return
	}
	for i, op := range ops {
		for _, p := range []string{op.Path, op.From} {
			seg, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
			if slices.ContainsFunc(serverOwnedFields(), func(f string) bool { return strings.EqualFold(f, seg) }) {
				writeAPIError(w, badRequest("path", "Operation %d: '%s' is server-owned; use the accept or expire control routes.", i, p))
				return
			}
		}
	}
	rec, aerr := s.update(chi.URLParam(r, "id"), r.Header.Get("If-Match"), false, func(cur map[string]any, now time.Time) (map[string]any, *apiError) {
		next, aerr := s.applyPatch(cur, ops)
		if aerr != nil {
			return nil, aerr
		}
		applyStatusTimestamps(cur, next, formatTime(now))
		if aerr := s.validateReferral(next); aerr != nil {
			return nil, aerr
		}
		return next, nil
	})
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.log.Info("referral updated", "id", rec.id, "via", "control")
	writeReferral(w, http.StatusOK, rec, rec.body)
}

// knownEndpoints are the names fault rules and counters use.
func knownEndpoints() []string {
	return []string{"*", EndpointToken, EndpointDeviceCode, EndpointGet, EndpointList, EndpointCreate,
		EndpointPut, EndpointPatch, EndpointRegistration}
}

func (s *Server) handleFaultsList(w http.ResponseWriter, _ *http.Request) {
	emucore.WriteJSON(w, http.StatusOK, map[string]any{"faults": s.faults.List()})
}

func (s *Server) handleFaultsAdd(w http.ResponseWriter, r *http.Request) {
	var f emucore.Fault
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeAPIError(w, badRequest("body", "The fault must be a JSON object {endpoint, kind, count|rate, latency, retryAfter}: %v", err))
		return
	}
	if f.Endpoint != "" && !slices.Contains(knownEndpoints(), f.Endpoint) {
		writeAPIError(w, badRequest("endpoint", "Unknown endpoint '%s'; one of %s.", f.Endpoint, strings.Join(knownEndpoints(), ", ")))
		return
	}
	added, err := s.faults.Add(f, faultKinds()...)
	if err != nil {
		writeAPIError(w, badRequest("fault", "%v", err))
		return
	}
	s.log.Info("fault added", "fault_id", added.ID, "endpoint", added.Endpoint, "kind", added.Kind)
	emucore.WriteJSON(w, http.StatusCreated, added)
}

func (s *Server) handleFaultsClear(w http.ResponseWriter, _ *http.Request) {
	s.faults.Clear()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleFaultsRemove(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(chi.URLParam(r, "id"))
	if err != nil || !s.faults.Remove(id) {
		writeAPIError(w, &apiError{Status: http.StatusNotFound, Code: codeItemNotFound, Target: "fault",
			Message: fmt.Sprintf("Fault %q does not exist.", chi.URLParam(r, "id"))})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleCounters(w http.ResponseWriter, _ *http.Request) {
	emucore.WriteJSON(w, http.StatusOK, map[string]any{"counters": s.counters.Snapshot()})
}

func (s *Server) handleCountersReset(w http.ResponseWriter, _ *http.Request) {
	s.counters.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// stateDump is the body of GET /_emulator/state.
type stateDump struct {
	Referrals   []json.RawMessage   `json:"referrals"`
	Engagements map[string][]string `json:"engagements"`
	Faults      []emucore.Fault     `json:"faults"`
	Counters    map[string]int64    `json:"counters"`
	Tokens      tokenStats          `json:"tokens"`
}

type tokenStats struct {
	AccessTokens       int      `json:"accessTokens"`
	RefreshTokens      int      `json:"refreshTokens"`
	PendingDeviceCodes []string `json:"pendingDeviceCodes"`
}

func (s *Server) handleState(w http.ResponseWriter, _ *http.Request) {
	d := stateDump{Referrals: []json.RawMessage{}, Engagements: map[string][]string{},
		Faults: s.faults.List(), Counters: s.counters.Snapshot()}
	s.store.mu.RLock()
	for _, id := range s.store.order {
		d.Referrals = append(d.Referrals, s.store.byID[id].body)
	}
	for k, v := range s.store.engagements {
		d.Engagements[k] = slices.Clone(v)
	}
	s.store.mu.RUnlock()
	now := s.now()
	s.tokens.mu.RLock()
	d.Tokens.AccessTokens, d.Tokens.RefreshTokens = len(s.tokens.access), len(s.tokens.refresh)
	d.Tokens.PendingDeviceCodes = []string{}
	for _, g := range s.tokens.device {
		if !g.approved && !g.declined && now.Before(g.expires) {
			d.Tokens.PendingDeviceCodes = append(d.Tokens.PendingDeviceCodes, g.userCode)
		}
	}
	s.tokens.mu.RUnlock()
	slices.Sort(d.Tokens.PendingDeviceCodes)
	body, err := marshal(d)
	if err != nil {
		s.internalError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(append(body, '\n'))
}

// handleReset forgets referrals, faults, counters, pending device codes and
// the webhook registration and delivery log. Issued tokens stay valid so
// long-running clients keep working; use /tokens/revoke to drop them.
func (s *Server) handleReset(w http.ResponseWriter, _ *http.Request) {
	s.store.reset()
	s.faults.Clear()
	s.counters.Reset()
	s.tokens.mu.Lock()
	s.tokens.device = map[string]*deviceGrant{}
	s.tokens.userCodes = map[string]string{}
	s.tokens.mu.Unlock()
	s.hooks.Reset()
	s.log.Info("state reset")
	w.WriteHeader(http.StatusNoContent)
}

// handleDeviceDecision approves or declines a device-code sign-in, standing
// in for the user at the verification page. Body: {"user_code": "..."}.
func (s *Server) handleDeviceDecision(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		in, aerr := readOptionalJSON(w, r)
		if aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		code, _ := in["user_code"].(string)
		if code == "" {
			writeAPIError(w, badRequest("user_code", "Send {\"user_code\": \"...\"} as returned by /oauth2/devicecode."))
			return
		}
		if !s.tokens.decideDevice(code, approve, s.now()) {
			writeAPIError(w, &apiError{Status: http.StatusNotFound, Code: codeItemNotFound, Target: "user_code",
				Message: fmt.Sprintf("No pending device-code sign-in has user code %q.", code)})
			return
		}
		status := "approved"
		if !approve {
			status = "declined"
		}
		emucore.WriteJSON(w, http.StatusOK, map[string]string{"user_code": strings.ToUpper(code), "status": status})
	}
}

func (s *Server) handleTokensExpire(w http.ResponseWriter, _ *http.Request) {
	n := s.tokens.expireAccess(s.now())
	emucore.WriteJSON(w, http.StatusOK, map[string]int{"expired": n})
}

func (s *Server) handleTokensRevoke(w http.ResponseWriter, _ *http.Request) {
	s.tokens.revokeAll(s.now())
	w.WriteHeader(http.StatusNoContent)
}
