package salesforce

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// saveResult is the body of a successful create or upsert, and an item of
// an sObject Collections response.
type saveResult struct {
	ID      string            `json:"id,omitempty"`
	Success bool              `json:"success"`
	Errors  []collectionError `json:"errors"`
	Created *bool             `json:"created,omitempty"`
}

// pathParam returns a URL parameter, percent-decoded when the router saw
// the escaped path.
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if r.URL.RawPath != "" {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
	}
	return v
}

// objectParam resolves {object} or answers 404 NOT_FOUND as Salesforce does
// for an unknown sObject in a REST path.
func (s *Server) objectParam(w http.ResponseWriter, r *http.Request) *sfschema.Object {
	obj := s.schema.Object(pathParam(r, "object"))
	if obj == nil {
		writeError(w, errNotFound())
	}
	return obj
}

func sobjectURL(base string, obj *sfschema.Object, id string) string {
	return base + "/sobjects/" + obj.Name + "/" + id
}

// appendRecord renders rec as a REST record: attributes first, then the
// given fields in describe order.
func appendRecord(buf *bytes.Buffer, base string, obj *sfschema.Object, rec map[string]any, fields []*sfschema.Field) {
	buf.WriteString(`{"attributes":{"type":`)
	writeJSONValue(buf, obj.Name)
	buf.WriteString(`,"url":`)
	id, _ := rec["Id"].(string)
	writeJSONValue(buf, sobjectURL(base, obj, id))
	buf.WriteByte('}')
	for _, f := range fields {
		buf.WriteByte(',')
		writeJSONValue(buf, f.Name)
		buf.WriteByte(':')
		appendFieldValue(buf, f, rec[f.Name])
	}
	buf.WriteByte('}')
}

func writeJSONValue(buf *bytes.Buffer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		buf.WriteString("null")
		return
	}
	buf.Write(b)
}

// selectFields resolves ?fields=A,B (all fields when empty).
func selectFields(obj *sfschema.Object, list string) ([]*sfschema.Field, *restError) {
	if strings.TrimSpace(list) == "" {
		return obj.Fields, nil
	}
	var out []*sfschema.Field
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		f := obj.Field(name)
		if f == nil {
			return nil, newErr(http.StatusBadRequest, "INVALID_FIELD", "No such column '"+name+"' on entity '"+obj.Name+
				"'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.")
		}
		if !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f)
		}
	}
	// Salesforce always returns the Id, after the requested fields.
	if !seen["Id"] {
		out = append(out, obj.Field("Id"))
	}
	return out, nil
}

// recordID parses an {id} path segment of obj: malformed ids and ids of
// another object report ok=false.
func recordID(obj *sfschema.Object, raw string) (string, bool) {
	cid, ok := sfschema.CanonicalID(raw)
	if !ok || cid[:3] != obj.KeyPrefix {
		return "", false
	}
	return cid, true
}

func errBadExternalField(name string) *restError {
	return newErr(http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "+name)
}

func (s *Server) handleSObjectInfo(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	var recent []json.RawMessage
	base := basePath(r)
	s.store.read(r.Context(), func(v *view) {
		t := v.st.table(obj.Name)
		idFields := []*sfschema.Field{obj.Field("Id")}
		if nf := obj.Field("Name"); nf != nil {
			idFields = append(idFields, nf)
		}
		for i := len(t.order) - 1; i >= 0 && len(recent) < 5; i-- {
			e := t.byID[t.order[i]]
			if e == nil || !e.deleted.IsZero() {
				continue
			}
			var buf bytes.Buffer
			appendRecord(&buf, base, obj, e.rec, idFields)
			recent = append(recent, buf.Bytes())
		}
	})
	if recent == nil {
		recent = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"objectDescribe": s.globalEntry(obj, base), "recentItems": recent})
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	s.create(w, r, obj)
}

// handleCreateByIDField serves POST /sobjects/{object}/Id, Salesforce's
// "upsert on Id without a value", which creates.
func (s *Server) handleCreateByIDField(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	if field := pathParam(r, "field"); !strings.EqualFold(field, "Id") {
		writeError(w, errMethodNotAllowed(r.Method, "HEAD", "GET", "PATCH", "DELETE"))
		return
	}
	s.create(w, r, obj)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, obj *sfschema.Object) {
	fs, rerr := s.readFields(r, obj, opCreate)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	var id string
	err := s.store.write(r.Context(), func(tx *txn) *restError {
		var e *restError
		id, e = s.insertRecord(tx, obj, fs, callFrom(r.Context()).userID)
		return e
	})
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", sobjectURL(basePath(r), obj, id))
	writeJSON(w, http.StatusCreated, saveResult{ID: id, Success: true, Errors: []collectionError{}})
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	raw := pathParam(r, "id")
	if _, ok := sfschema.CanonicalID(raw); !ok {
		writeError(w, errBadExternalField(raw))
		return
	}
	id, ok := recordID(obj, raw)
	if !ok {
		writeError(w, errNotFound())
		return
	}
	s.writeRecord(w, r, obj, id)
}

// writeRecord answers a GET of one record, honouring ?fields= and the
// conditional headers.
func (s *Server) writeRecord(w http.ResponseWriter, r *http.Request, obj *sfschema.Object, id string) {
	fields, rerr := selectFields(obj, r.URL.Query().Get("fields"))
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	var rec map[string]any
	var deleted bool
	s.store.read(r.Context(), func(v *view) {
		if e := v.entry(obj.Name, id); e != nil {
			rec, deleted = e.rec, !e.deleted.IsZero()
		}
	})
	switch {
	case rec == nil:
		writeError(w, errNotFound())
		return
	case deleted:
		writeError(w, errEntityDeleted())
		return
	}
	if status := conditional(r, rec); status != 0 {
		if status == http.StatusPreconditionFailed {
			writeError(w, newErr(status, "PRECONDITION_FAILED", "The requested resource has been modified since the If-Unmodified-Since date"))
			return
		}
		w.WriteHeader(status)
		return
	}
	if lm, err := time.Parse(sfschema.DateTimeLayout, str(rec["LastModifiedDate"])); err == nil {
		w.Header().Set("Last-Modified", lm.UTC().Format(http.TimeFormat))
	}
	var buf bytes.Buffer
	appendRecord(&buf, basePath(r), obj, rec, fields)
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func str(v any) string { s, _ := v.(string); return s }

// conditional evaluates If-Modified-Since (304) and If-Unmodified-Since
// (412) against the record's LastModifiedDate; 0 means proceed.
func conditional(r *http.Request, rec map[string]any) int {
	lm, err := time.Parse(sfschema.DateTimeLayout, str(rec["LastModifiedDate"]))
	if err != nil {
		return 0
	}
	lm = lm.Truncate(time.Second)
	if h := r.Header.Get("If-Unmodified-Since"); h != "" {
		if t, err := http.ParseTime(h); err == nil && lm.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if h := r.Header.Get("If-Modified-Since"); h != "" && r.Method == http.MethodGet {
		if t, err := http.ParseTime(h); err == nil && !lm.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	raw := pathParam(r, "id")
	if _, ok := sfschema.CanonicalID(raw); !ok {
		writeError(w, errMalformedID(raw))
		return
	}
	id, ok := recordID(obj, raw)
	if !ok {
		writeError(w, errNotFound())
		return
	}
	s.update(w, r, obj, id)
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, obj *sfschema.Object, id string) {
	fs, rerr := s.readFields(r, obj, opUpdate)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	err := s.store.write(r.Context(), func(tx *txn) *restError {
		if h := r.Header.Get("If-Unmodified-Since"); h != "" {
			if e := tx.entry(obj.Name, id); e != nil && e.deleted.IsZero() && conditional(r, e.rec) == http.StatusPreconditionFailed {
				return newErr(http.StatusPreconditionFailed, "PRECONDITION_FAILED", "The requested resource has been modified since the If-Unmodified-Since date")
			}
		}
		return s.updateRecord(tx, obj, id, fs, callFrom(r.Context()).userID)
	})
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	raw := pathParam(r, "id")
	if _, ok := sfschema.CanonicalID(raw); !ok {
		writeError(w, errMalformedID(raw))
		return
	}
	id, ok := recordID(obj, raw)
	if !ok {
		writeError(w, errNotFound())
		return
	}
	s.delete(w, r, obj, id)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, obj *sfschema.Object, id string) {
	err := s.store.write(r.Context(), func(tx *txn) *restError {
		return s.deleteRecord(tx, obj, id)
	})
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// externalValue returns the {value} of an External ID path. Salesforce
// does not support "/" in it, even percent-encoded, so such values find
// nothing.
func externalValue(w http.ResponseWriter, r *http.Request) (string, bool) {
	v := pathParam(r, "value")
	if strings.Contains(v, "/") {
		writeError(w, errNotFound())
		return "", false
	}
	return v, true
}

// externalField resolves the {field} of an External ID path: an External
// ID field or Id.
func externalField(obj *sfschema.Object, name string) *sfschema.Field {
	f := obj.Field(name)
	if f == nil || !(f.ExternalID || f.Name == "Id") {
		return nil
	}
	return f
}

// matchExternal returns the ids of live records whose field equals value.
func matchExternal(v *view, obj *sfschema.Object, f *sfschema.Field, value string) []string {
	if f.Name == "Id" {
		if id, ok := recordID(obj, value); ok {
			if _, live := v.getLive(obj.Name, id); live {
				return []string{id}
			}
		}
		return nil
	}
	return v.byUnique(obj.Name, f.Name, value)
}

// writeMultipleChoices answers 300 with the matching records' URLs.
func writeMultipleChoices(w http.ResponseWriter, base string, obj *sfschema.Object, ids []string) {
	urls := make([]string, len(ids))
	for i, id := range ids {
		urls[i] = sobjectURL(base, obj, id)
	}
	writeJSON(w, http.StatusMultipleChoices, urls)
}

func (s *Server) handleGetByExternalID(w http.ResponseWriter, r *http.Request) {
	s.byExternalID(w, r, s.writeRecord)
}

func (s *Server) handleDeleteByExternalID(w http.ResponseWriter, r *http.Request) {
	s.byExternalID(w, r, s.delete)
}

// byExternalID resolves /sobjects/{object}/{field}/{value} to one record
// and hands it to act; no match is 404 NOT_FOUND and several are 300 with
// their URLs, as Salesforce answers both GET and DELETE by External ID.
func (s *Server) byExternalID(w http.ResponseWriter, r *http.Request, act func(http.ResponseWriter, *http.Request, *sfschema.Object, string)) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	f := externalField(obj, pathParam(r, "field"))
	if f == nil {
		writeError(w, errBadExternalField(pathParam(r, "field")))
		return
	}
	value, ok := externalValue(w, r)
	if !ok {
		return
	}
	var ids []string
	s.store.read(r.Context(), func(v *view) { ids = matchExternal(v, obj, f, value) })
	switch len(ids) {
	case 0:
		writeError(w, errNotFound())
	case 1:
		act(w, r, obj, ids[0])
	default:
		writeMultipleChoices(w, basePath(r), obj, ids)
	}
}

// upsertOutcome is the result of one upsert: the record id, whether it was
// created, or the ids of several matches (300).
type upsertOutcome struct {
	id      string
	created bool
	matches []string
}

// upsert creates or updates the record of obj whose External ID field f
// equals value. members is the body without attributes; a body copy of the
// External ID must agree with value.
func (s *Server) upsert(tx *txn, obj *sfschema.Object, f *sfschema.Field, value string, members []kv, updateOnly bool, userID string) (upsertOutcome, *restError) {
	for _, m := range members {
		if strings.EqualFold(m.key, f.Name) && f.Name != "Id" {
			if sv, ok := m.val.(string); !ok || !strings.EqualFold(sv, value) {
				return upsertOutcome{}, newFieldErr("INVALID_FIELD", "The value of "+f.Name+" in the request body does not match the External ID in the URL", f.Name)
			}
		}
	}
	ids := matchExternal(&tx.view, obj, f, value)
	switch {
	case len(ids) > 1:
		return upsertOutcome{matches: ids}, nil
	case len(ids) == 1:
		fs, rerr := s.decodeFields(obj, members, opUpdate, f.Name)
		if rerr != nil {
			return upsertOutcome{}, rerr
		}
		if rerr := s.updateRecord(tx, obj, ids[0], fs, userID); rerr != nil {
			return upsertOutcome{}, rerr
		}
		return upsertOutcome{id: ids[0]}, nil
	case updateOnly || f.Name == "Id":
		return upsertOutcome{}, errNotFound()
	}
	fs, rerr := s.decodeFields(obj, members, opCreate, f.Name)
	if rerr != nil {
		return upsertOutcome{}, rerr
	}
	if !f.Createable {
		return upsertOutcome{}, newFieldErr("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: "+f.Name+". Please check the security settings of this field and verify that it is read/write for your profile or permission set.", f.Name)
	}
	ev, rerr := convertValue(f, value)
	if rerr != nil {
		return upsertOutcome{}, rerr
	}
	if e := checkValue(f, ev); e != nil {
		return upsertOutcome{}, &restError{Status: http.StatusBadRequest, Errors: []apiError{*e}}
	}
	fs.set(f.Name, ev)
	id, rerr := s.insertRecord(tx, obj, fs, userID)
	if rerr != nil {
		return upsertOutcome{}, rerr
	}
	return upsertOutcome{id: id, created: true}, nil
}

func (s *Server) handleUpsert(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	f := externalField(obj, pathParam(r, "field"))
	if f == nil {
		writeError(w, errBadExternalField(pathParam(r, "field")))
		return
	}
	value, ok := externalValue(w, r)
	if !ok {
		return
	}
	body, rerr := readBody(r)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	members, rerr := parseObject(body, obj.Name)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	updateOnly := strings.EqualFold(r.URL.Query().Get("updateOnly"), "true")
	var out upsertOutcome
	err := s.store.write(r.Context(), func(tx *txn) *restError {
		var e *restError
		out, e = s.upsert(tx, obj, f, value, members, updateOnly, callFrom(r.Context()).userID)
		return e
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if out.matches != nil {
		writeMultipleChoices(w, basePath(r), obj, out.matches)
		return
	}
	created := out.created
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", sobjectURL(basePath(r), obj, out.id))
	}
	writeJSON(w, status, saveResult{ID: out.id, Success: true, Errors: []collectionError{}, Created: &created})
}
