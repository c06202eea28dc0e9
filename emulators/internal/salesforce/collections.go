package salesforce

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// maxCollection is the sObject Collections record limit.
const maxCollection = 200

func errCollectionTooLarge() *restError {
	return newErr(http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
}

// collectionBody is a decoded Collections request body.
type collectionBody struct {
	allOrNone bool
	records   [][]kv
}

func parseCollection(r *http.Request) (*collectionBody, *restError) {
	body, rerr := readBody(r)
	if rerr != nil {
		return nil, rerr
	}
	members, rerr := parseObject(body, "SObjectCollectionRequest")
	if rerr != nil {
		return nil, rerr
	}
	out := &collectionBody{}
	for _, m := range members {
		switch m.key {
		case "allOrNone":
			b, ok := m.val.(bool)
			if !ok && m.val != nil {
				return nil, errJSONParser("Cannot deserialize instance of boolean from " + tokenName(m.val) + " value " + tokenText(m.val) + " or request may be missing a required field")
			}
			out.allOrNone = b
		case "records":
			list, ok := m.val.([]any)
			if !ok {
				return nil, errJSONParser("Cannot deserialize instance of list from " + tokenName(m.val) + " value " + tokenText(m.val) + " or request may be missing a required field")
			}
			for _, item := range list {
				rec, ok := item.(map[string]any)
				if !ok {
					return nil, errJSONParser("Cannot deserialize instance of SObject from " + tokenName(item) + " value " + tokenText(item) + " or request may be missing a required field")
				}
				out.records = append(out.records, membersOf(rec))
			}
		default:
			return nil, errJSONParser("Unrecognized field \"" + m.key + "\"")
		}
	}
	if len(out.records) > maxCollection {
		return nil, errCollectionTooLarge()
	}
	return out, nil
}

// membersOf turns a decoded object into members sorted by key, so errors
// are deterministic.
func membersOf(m map[string]any) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{key: k, val: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// recordType returns attributes.type of a collection record.
func (s *Server) recordType(members []kv) (*sfschema.Object, *restError) {
	for _, m := range members {
		if m.key != "attributes" {
			continue
		}
		attrs, _ := m.val.(map[string]any)
		name, _ := attrs["type"].(string)
		if name == "" {
			break
		}
		obj := s.schema.Object(name)
		if obj == nil {
			return nil, newFieldErr("INVALID_TYPE", "sObject type '"+name+"' is not supported.")
		}
		return obj, nil
	}
	return nil, newFieldErr("INVALID_TYPE", "Must send a concrete entity type.")
}

func memberValue(members []kv, name string) (any, bool) {
	for _, m := range members {
		if strings.EqualFold(m.key, name) {
			return m.val, true
		}
	}
	return nil, false
}

// runCollection applies op to every record under one write lock, each in
// its own savepoint. With allOrNone, any failure undoes everything and
// the successful items report ALL_OR_NONE_OPERATION_ROLLED_BACK.
func (s *Server) runCollection(r *http.Request, n int, allOrNone bool, op func(tx *txn, i int) (saveResult, *restError)) []saveResult {
	results := make([]saveResult, n)
	failed := make([]bool, n)
	cc := callFrom(r.Context())
	_ = s.store.write(r.Context(), func(tx *txn) *restError {
		anyFailed := false
		for i := 0; i < n; i++ {
			if cc.lockAll {
				results[i] = saveResult{Errors: toCollectionErrors(newFieldErr(faultLockRow, msgLockRow))}
				failed[i], anyFailed = true, true
				continue
			}
			sp := tx.savepoint()
			res, rerr := op(tx, i)
			if rerr != nil {
				tx.rollbackTo(sp)
				res.Success = false
				res.Errors = toCollectionErrors(rerr)
				res.Created = nil
				failed[i], anyFailed = true, true
			}
			results[i] = res
		}
		if anyFailed && allOrNone {
			return &restError{Status: http.StatusBadRequest}
		}
		return nil
	})
	if allOrNone && hasFailure(failed) {
		for i := range results {
			if !failed[i] {
				results[i] = saveResult{Errors: []collectionError{{StatusCode: "ALL_OR_NONE_OPERATION_ROLLED_BACK", Message: msgAllOrNoneRolls, Fields: []string{}}}}
			}
		}
	}
	return results
}

func hasFailure(failed []bool) bool {
	for _, f := range failed {
		if f {
			return true
		}
	}
	return false
}

func (s *Server) handleCollectionCreate(w http.ResponseWriter, r *http.Request) {
	body, rerr := parseCollection(r)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	user := callFrom(r.Context()).userID
	results := s.runCollection(r, len(body.records), body.allOrNone, func(tx *txn, i int) (saveResult, *restError) {
		members := body.records[i]
		obj, rerr := s.recordType(members)
		if rerr != nil {
			return saveResult{}, rerr
		}
		if _, has := memberValue(members, "Id"); has {
			return saveResult{}, newFieldErr("INVALID_FIELD", "cannot specify Id in an insert call", "Id")
		}
		fs, rerr := s.decodeFields(obj, members, opCreate)
		if rerr != nil {
			return saveResult{}, rerr
		}
		id, rerr := s.insertRecord(tx, obj, fs, user)
		if rerr != nil {
			return saveResult{}, rerr
		}
		return saveResult{ID: id, Success: true, Errors: []collectionError{}}, nil
	})
	writeJSON(w, http.StatusOK, results)
}

func (s *Server) handleCollectionUpdate(w http.ResponseWriter, r *http.Request) {
	body, rerr := parseCollection(r)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	user := callFrom(r.Context()).userID
	results := s.runCollection(r, len(body.records), body.allOrNone, func(tx *txn, i int) (saveResult, *restError) {
		members := body.records[i]
		rawID, has := memberValue(members, "Id")
		idStr, _ := rawID.(string)
		if !has || idStr == "" {
			return saveResult{}, newFieldErr("MISSING_ARGUMENT", "Id not specified in an update call", "Id")
		}
		obj, rerr := s.recordType(members)
		if rerr != nil {
			return saveResult{}, rerr
		}
		id, ok := recordID(obj, idStr)
		if !ok {
			return saveResult{}, newFieldErr("MALFORMED_ID", obj.Label+" ID: id value of incorrect type: "+idStr, "Id")
		}
		fs, rerr := s.decodeFields(obj, members, opUpdate, "Id")
		if rerr != nil {
			return saveResult{ID: id}, rerr
		}
		if rerr := s.updateRecord(tx, obj, id, fs, user); rerr != nil {
			return saveResult{ID: id}, rerr
		}
		return saveResult{ID: id, Success: true, Errors: []collectionError{}}, nil
	})
	writeJSON(w, http.StatusOK, results)
}

func (s *Server) handleCollectionUpsert(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	f := externalField(obj, pathParam(r, "field"))
	if f == nil {
		writeError(w, errBadExternalField(pathParam(r, "field")))
		return
	}
	body, rerr := parseCollection(r)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	// Values used twice in one request fail for every record carrying them.
	seen := map[string]int{}
	for _, members := range body.records {
		if v, ok := memberValue(members, f.Name); ok {
			if sv, ok := v.(string); ok && sv != "" {
				seen[strings.ToLower(sv)]++
			}
		}
	}
	user := callFrom(r.Context()).userID
	results := s.runCollection(r, len(body.records), body.allOrNone, func(tx *txn, i int) (saveResult, *restError) {
		members := body.records[i]
		rt, rerr := s.recordType(members)
		if rerr != nil {
			return saveResult{}, rerr
		}
		if rt.Name != obj.Name {
			return saveResult{}, newFieldErr("INVALID_TYPE", "Records of type "+rt.Name+" cannot be upserted through "+obj.Name)
		}
		raw, ok := memberValue(members, f.Name)
		if !ok || raw == nil {
			return saveResult{}, newFieldErr("MISSING_ARGUMENT", f.Name+" not specified", f.Name)
		}
		value, isStr := raw.(string)
		if !isStr {
			return saveResult{}, typeError(f, raw)
		}
		if value == "" {
			return saveResult{}, newFieldErr("MISSING_ARGUMENT", f.Name+" not specified", f.Name)
		}
		if seen[strings.ToLower(value)] > 1 {
			return saveResult{}, newFieldErr("DUPLICATE_EXTERNAL_ID", "Duplicate external id specified: "+value, f.Name)
		}
		out, rerr := s.upsert(tx, obj, f, value, members, false, user)
		if rerr != nil {
			return saveResult{}, rerr
		}
		if out.matches != nil {
			return saveResult{}, newFieldErr("DUPLICATE_EXTERNAL_ID", f.Name+": more than one record found for external id field: ["+strings.Join(out.matches, ", ")+"]", f.Name)
		}
		created := out.created
		return saveResult{ID: out.id, Success: true, Errors: []collectionError{}, Created: &created}, nil
	})
	writeJSON(w, http.StatusOK, results)
}

func (s *Server) handleCollectionDelete(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var ids []string
	for _, id := range strings.Split(q.Get("ids"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		writeError(w, newErr(http.StatusBadRequest, "MISSING_ARGUMENT", "ids parameter is required"))
		return
	}
	if len(ids) > maxCollection {
		writeError(w, errCollectionTooLarge())
		return
	}
	allOrNone := strings.EqualFold(q.Get("allOrNone"), "true")
	results := s.runCollection(r, len(ids), allOrNone, func(tx *txn, i int) (saveResult, *restError) {
		cid, ok := sfschema.CanonicalID(ids[i])
		if !ok {
			return saveResult{}, newFieldErr("MALFORMED_ID", "malformed id "+ids[i])
		}
		obj := s.schema.ObjectByPrefix(cid[:3])
		if obj == nil {
			return saveResult{ID: cid}, newFieldErr("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
		}
		if rerr := s.deleteRecord(tx, obj, cid); rerr != nil {
			return saveResult{ID: cid}, toItemErr(rerr)
		}
		return saveResult{ID: cid, Success: true, Errors: []collectionError{}}, nil
	})
	writeJSON(w, http.StatusOK, results)
}

// toItemErr gives collection items the fields array they always carry.
func toItemErr(e *restError) *restError {
	out := &restError{Status: e.Status}
	for _, a := range e.Errors {
		if a.Fields == nil {
			a.Fields = []string{}
		}
		out.Errors = append(out.Errors, a)
	}
	return out
}

// handleCollectionRetrieve serves GET ?ids=&fields= and POST {ids, fields}:
// records in request order, null where an id matches nothing.
func (s *Server) handleCollectionRetrieve(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	var ids, names []string
	if r.Method == http.MethodPost {
		body, rerr := readBody(r)
		if rerr != nil {
			writeError(w, rerr)
			return
		}
		var req struct {
			IDs    []string `json:"ids"`
			Fields []string `json:"fields"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, errJSONParser(err.Error()))
			return
		}
		ids, names = req.IDs, req.Fields
	} else {
		for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
		if f := r.URL.Query().Get("fields"); f != "" {
			names = strings.Split(f, ",")
		}
	}
	if len(names) == 0 {
		writeError(w, newErr(http.StatusBadRequest, "MISSING_ARGUMENT", "fields parameter is required"))
		return
	}
	if len(ids) == 0 {
		writeError(w, newErr(http.StatusBadRequest, "MISSING_ARGUMENT", "ids parameter is required"))
		return
	}
	if len(ids) > 2000 {
		writeError(w, errCollectionTooLarge())
		return
	}
	fields, rerr := selectFields(obj, strings.Join(names, ","))
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	base := basePath(r)
	var bad string
	s.store.read(r.Context(), func(v *view) {
		for i, raw := range ids {
			if i > 0 {
				buf.WriteByte(',')
			}
			if _, ok := sfschema.CanonicalID(raw); !ok {
				bad = raw
				return
			}
			id, ok := recordID(obj, raw)
			var rec map[string]any
			if ok {
				rec, ok = v.getLive(obj.Name, id)
			}
			if !ok {
				buf.WriteString("null")
				continue
			}
			appendRecord(&buf, base, obj, rec, fields)
		}
	})
	if bad != "" {
		writeError(w, errMalformedID(bad))
		return
	}
	buf.WriteByte(']')
	writeRaw(w, http.StatusOK, buf.Bytes())
}
