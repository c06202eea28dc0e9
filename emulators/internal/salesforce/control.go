package salesforce

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/emucore"
	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// controlBase is the path the control records routes render record URLs
// against (the newest API version).
const controlBase = "/services/data/v" + latestVersion

func (s *Server) controlRoutes(r chi.Router) {
	r.Get("/state", s.ctlState)
	r.Post("/reset", s.ctlReset)
	r.Get("/users", s.ctlUsers)
	r.Get("/records/{object}", s.ctlList)
	r.Post("/records/{object}", s.ctlCreate)
	r.Get("/records/{object}/{id}", s.ctlGet)
	r.Patch("/records/{object}/{id}", s.ctlUpdate)
	r.Delete("/records/{object}/{id}", s.ctlDelete)
	r.Get("/faults", s.ctlFaults)
	r.Post("/faults", s.ctlAddFault)
	r.Delete("/faults", s.ctlClearFaults)
	r.Delete("/faults/{id}", s.ctlRemoveFault)
	r.Get("/counters", s.ctlCounters)
	r.Delete("/counters", s.ctlResetCounters)
	r.Get("/limits", s.ctlLimits)
	r.Put("/limits", s.ctlSetLimits)
	r.Post("/tokens/expire", s.ctlTokens(false))
	r.Post("/tokens/revoke", s.ctlTokens(true))
	r.Get("/clock", s.ctlClock)
	r.Post("/clock", s.ctlAdvanceClock)
}

func ctlError(w http.ResponseWriter, status int, msg string) {
	emucore.WriteJSON(w, status, map[string]string{"error": msg})
}

func decodeControl(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err != nil && err.Error() == "EOF" {
		return nil
	}
	return err
}

func (s *Server) ctlState(w http.ResponseWriter, r *http.Request) {
	var records map[string][]map[string]any
	s.store.read(r.Context(), func(v *view) { records = v.dump() })
	used, max := s.usage.current(s.clock.Now())
	emucore.WriteJSON(w, http.StatusOK, map[string]any{
		"orgId":     s.orgID,
		"now":       sfschema.FormatDateTime(s.clock.Now()),
		"records":   records,
		"apiUsage":  map[string]int64{"used": used, "max": max},
		"sessions":  s.tokens.count(),
		"faults":    s.faults.List(),
		"calls":     s.calls.Snapshot(),
		"counted":   s.counted.Snapshot(),
		"users":     s.users(),
		"stageInfo": s.cfg.Stages,
	})
}

// ctlReset clears records, counters, faults, cursors and API usage, and
// re-seeds the users. Sessions survive so connected clients keep working.
func (s *Server) ctlReset(w http.ResponseWriter, r *http.Request) {
	s.store.reset()
	s.seed()
	s.calls.Reset()
	s.counted.Reset()
	s.faults.Clear()
	s.cursors.clear()
	s.usage.set(s.clock.Now(), 0, 0)
	s.log.Info("state reset")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) users() map[string]map[string]string {
	return map[string]map[string]string{
		"integration": {"id": s.IntegrationUserID(), "username": s.cfg.Username},
		"seller":      {"id": s.SellerUserID(), "username": s.cfg.SellerUsername},
	}
}

func (s *Server) ctlUsers(w http.ResponseWriter, _ *http.Request) {
	emucore.WriteJSON(w, http.StatusOK, s.users())
}

// actingUser is the seller unless ?as=integration (or a user id) says
// otherwise.
func (s *Server) actingUser(r *http.Request) (string, bool) {
	switch as := r.URL.Query().Get("as"); as {
	case "", "seller":
		return s.SellerUserID(), true
	case "integration":
		return s.IntegrationUserID(), true
	default:
		id, ok := sfschema.CanonicalID(as)
		if !ok {
			return "", false
		}
		found := false
		s.store.read(r.Context(), func(v *view) { _, found = v.getLive(sfschema.ObjUser, id) })
		return id, found
	}
}

func (s *Server) ctlObject(w http.ResponseWriter, r *http.Request) *sfschema.Object {
	obj := s.schema.Object(chi.URLParam(r, "object"))
	if obj == nil {
		ctlError(w, http.StatusNotFound, "unknown sObject "+chi.URLParam(r, "object"))
	}
	return obj
}

func (s *Server) writeControlRecord(w http.ResponseWriter, status int, obj *sfschema.Object, rec map[string]any) {
	var buf bytes.Buffer
	appendRecord(&buf, controlBase, obj, rec, obj.Fields)
	writeRaw(w, status, buf.Bytes())
}

func (s *Server) ctlList(w http.ResponseWriter, r *http.Request) {
	obj := s.ctlObject(w, r)
	if obj == nil {
		return
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	s.store.read(r.Context(), func(v *view) {
		n := 0
		v.Scan(obj.Name, func(rec map[string]any) bool {
			if n > 0 {
				buf.WriteByte(',')
			}
			appendRecord(&buf, controlBase, obj, rec, obj.Fields)
			n++
			return true
		})
	})
	buf.WriteByte(']')
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func (s *Server) ctlGet(w http.ResponseWriter, r *http.Request) {
	obj := s.ctlObject(w, r)
	if obj == nil {
		return
	}
	var rec map[string]any
	s.store.read(r.Context(), func(v *view) { rec, _ = v.Get(obj.Name, chi.URLParam(r, "id")) })
	if rec == nil {
		ctlError(w, http.StatusNotFound, "no such record")
		return
	}
	s.writeControlRecord(w, http.StatusOK, obj, rec)
}

// ctlCreate creates a record as a seller: the same validation as the API,
// with CreatedById/LastModifiedById/OwnerId set to the seller.
func (s *Server) ctlCreate(w http.ResponseWriter, r *http.Request) {
	obj := s.ctlObject(w, r)
	if obj == nil {
		return
	}
	user, ok := s.actingUser(r)
	if !ok {
		ctlError(w, http.StatusBadRequest, "unknown user in ?as=")
		return
	}
	fs, rerr := s.readFields(r, obj, opCreate)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	var rec map[string]any
	err := s.store.write(r.Context(), func(tx *txn) *restError {
		id, e := s.insertRecord(tx, obj, fs, user)
		if e != nil {
			return e
		}
		rec, _ = tx.Get(obj.Name, id)
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("control: record created", "object", obj.Name, "id", rec["Id"], "as", user)
	s.writeControlRecord(w, http.StatusCreated, obj, rec)
}

// ctlUpdate edits a record as a seller; LastModifiedById becomes the
// seller, which is what the adapter's echo suppression must tell apart.
func (s *Server) ctlUpdate(w http.ResponseWriter, r *http.Request) {
	obj := s.ctlObject(w, r)
	if obj == nil {
		return
	}
	user, ok := s.actingUser(r)
	if !ok {
		ctlError(w, http.StatusBadRequest, "unknown user in ?as=")
		return
	}
	id, ok := recordID(obj, chi.URLParam(r, "id"))
	if !ok {
		writeError(w, errMalformedID(chi.URLParam(r, "id")))
		return
	}
	fs, rerr := s.readFields(r, obj, opUpdate)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	var rec map[string]any
	err := s.store.write(r.Context(), func(tx *txn) *restError {
		if e := s.updateRecord(tx, obj, id, fs, user); e != nil {
			return e
		}
		rec, _ = tx.Get(obj.Name, id)
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("control: record updated", "object", obj.Name, "id", id, "as", user)
	s.writeControlRecord(w, http.StatusOK, obj, rec)
}

func (s *Server) ctlDelete(w http.ResponseWriter, r *http.Request) {
	obj := s.ctlObject(w, r)
	if obj == nil {
		return
	}
	id, ok := recordID(obj, chi.URLParam(r, "id"))
	if !ok {
		writeError(w, errMalformedID(chi.URLParam(r, "id")))
		return
	}
	err := s.store.write(r.Context(), func(tx *txn) *restError {
		return s.deleteRecord(tx, obj, id)
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("control: record deleted", "object", obj.Name, "id", id)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ctlFaults(w http.ResponseWriter, _ *http.Request) {
	emucore.WriteJSON(w, http.StatusOK, s.faults.List())
}

func (s *Server) ctlAddFault(w http.ResponseWriter, r *http.Request) {
	var f emucore.Fault
	if err := decodeControl(r, &f); err != nil {
		ctlError(w, http.StatusBadRequest, "invalid fault: "+err.Error())
		return
	}
	added, err := s.faults.Add(f, faultKinds()...)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Info("control: fault added", "endpoint", added.Endpoint, "kind", added.Kind, "id", added.ID)
	emucore.WriteJSON(w, http.StatusCreated, added)
}

func (s *Server) ctlClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.faults.Clear()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ctlRemoveFault(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(chi.URLParam(r, "id"))
	if err != nil || !s.faults.Remove(id) {
		ctlError(w, http.StatusNotFound, "no such fault")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ctlCounters(w http.ResponseWriter, _ *http.Request) {
	used, max := s.usage.current(s.clock.Now())
	emucore.WriteJSON(w, http.StatusOK, map[string]any{
		"calls":               s.calls.Snapshot(),
		"countedAgainstLimit": s.counted.Snapshot(),
		"apiUsage":            map[string]int64{"used": used, "max": max},
	})
}

func (s *Server) ctlResetCounters(w http.ResponseWriter, _ *http.Request) {
	s.calls.Reset()
	s.counted.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) ctlLimits(w http.ResponseWriter, _ *http.Request) {
	used, max := s.usage.current(s.clock.Now())
	emucore.WriteJSON(w, http.StatusOK, map[string]int64{"used": used, "max": max})
}

// ctlSetLimits sets the rolling usage and optionally the allocation, so a
// test can start near exhaustion.
func (s *Server) ctlSetLimits(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Used *int64 `json:"used"`
		Max  int64  `json:"max"`
	}
	if err := decodeControl(r, &req); err != nil || req.Max < 0 || (req.Used != nil && *req.Used < 0) {
		ctlError(w, http.StatusBadRequest, "want {\"used\": N, \"max\": M} with non-negative numbers")
		return
	}
	now := s.clock.Now()
	used, _ := s.usage.current(now)
	if req.Used != nil {
		used = *req.Used
	}
	s.usage.set(now, used, req.Max)
	used, max := s.usage.current(now)
	emucore.WriteJSON(w, http.StatusOK, map[string]int64{"used": used, "max": max})
}

// ctlTokens expires (or revokes) one session, or all when no token is
// given.
func (s *Server) ctlTokens(revoke bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Token string `json:"token"`
		}
		if err := decodeControl(r, &req); err != nil {
			ctlError(w, http.StatusBadRequest, "want {\"token\": \"...\"} or an empty body")
			return
		}
		var n int
		if revoke {
			n = s.tokens.revoke(req.Token)
		} else {
			n = s.tokens.expire(req.Token)
		}
		s.log.Info("control: sessions ended", "revoked", revoke, "count", n)
		emucore.WriteJSON(w, http.StatusOK, map[string]int{"sessions": n})
	}
}

func (s *Server) ctlClock(w http.ResponseWriter, _ *http.Request) {
	emucore.WriteJSON(w, http.StatusOK, map[string]string{
		"now":    sfschema.FormatDateTime(s.clock.Now()),
		"offset": time.Duration(s.clock.offset.Load()).String(),
	})
}

// ctlAdvanceClock moves emulated time forward, so tokens age and
// getUpdated windows close without waiting.
func (s *Server) ctlAdvanceClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Advance emucore.Duration `json:"advance"`
	}
	if err := decodeControl(r, &req); err != nil || req.Advance <= 0 {
		ctlError(w, http.StatusBadRequest, "want {\"advance\": \"90m\"} with a positive duration")
		return
	}
	s.clock.advance(time.Duration(req.Advance))
	s.ctlClock(w, r)
}
