package salesforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// writeOp says which field permission a write needs.
type writeOp int

const (
	opCreate writeOp = iota
	opUpdate
)

// kv is one member of a decoded JSON object.
type kv struct {
	key string
	val any
}

// maxBody bounds request bodies (Salesforce rejects bodies over 50 MB; the
// emulator stops far earlier because nothing legitimate is that large).
const maxBody = 8 << 20

// readBody returns the request body, checking the media type: JSON (or
// none) is accepted, anything else is 415 as in Salesforce.
func readBody(r *http.Request) ([]byte, *restError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt := strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
		if mt != "application/json" && mt != "text/json" {
			return nil, newErr(http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE",
				"Content-Type header specified in HTTP request is not supported: "+mt)
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, errJSONParser("could not read the request body: " + err.Error())
	}
	if len(b) > maxBody {
		return nil, newErr(http.StatusRequestEntityTooLarge, "JSON_PARSER_ERROR", "The request body is too large")
	}
	return b, nil
}

// readFields reads a request body holding one record of obj and decodes
// its fields for op: the first step of every single-record write, through
// the API and the control API alike.
func (s *Server) readFields(r *http.Request, obj *sfschema.Object, op writeOp) (*fieldSet, *restError) {
	body, rerr := readBody(r)
	if rerr != nil {
		return nil, rerr
	}
	members, rerr := parseObject(body, obj.Name)
	if rerr != nil {
		return nil, rerr
	}
	return s.decodeFields(obj, members, op)
}

// parseObject decodes a JSON object body, numbers as json.Number so
// integers and decimals can be told apart. Members come back sorted by key
// so that errors are deterministic whatever the body order.
func parseObject(b []byte, what string) ([]kv, *restError) {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return nil, errJSONParser("The HTTP entity body is required, but this request has no entity body.")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errJSONParser(jsonErrText(err, dec))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errJSONParser("Unexpected content after the end of the JSON value at [line:1, column:" + strconv.FormatInt(dec.InputOffset()+1, 10) + "]")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errJSONParser("Cannot deserialize instance of " + what + " from " + tokenName(v) + " value " + tokenText(v) + " or request may be missing a required field")
	}
	return membersOf(m), nil
}

func jsonErrText(err error, dec *json.Decoder) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "Unexpected end-of-input: expected close marker for OBJECT at [line:1, column:" + strconv.FormatInt(dec.InputOffset()+1, 10) + "]"
	}
	return "Unexpected character: " + err.Error() + " at [line:1, column:" + strconv.FormatInt(dec.InputOffset()+1, 10) + "]"
}

// tokenName is the Jackson token name Salesforce's messages use.
func tokenName(v any) string {
	switch x := v.(type) {
	case nil:
		return "VALUE_NULL"
	case string:
		return "VALUE_STRING"
	case bool:
		if x {
			return "VALUE_TRUE"
		}
		return "VALUE_FALSE"
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "VALUE_NUMBER_FLOAT"
		}
		return "VALUE_NUMBER_INT"
	case json.Delim:
		if x == '[' {
			return "START_ARRAY"
		}
		return "START_OBJECT"
	case []any:
		return "START_ARRAY"
	case map[string]any:
		return "START_OBJECT"
	}
	return "VALUE_EMBEDDED_OBJECT"
}

func tokenText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return string(x)
	case json.Delim:
		return string(x)
	case []any:
		return "["
	case map[string]any:
		return "{"
	}
	return ""
}

// typeError is Salesforce's message for a JSON value of the wrong type.
func typeError(f *sfschema.Field, v any) *restError {
	return errJSONParser("Cannot deserialize instance of " + string(f.Type) + " from " + tokenName(v) +
		" value " + tokenText(v) + " or request may be missing a required field")
}

// foreignKey is a lookup set through the parent's External ID, e.g.
// "Account": {"Customer_Number__c": "C-1"}.
type foreignKey struct {
	field  *sfschema.Field
	target *sfschema.Object
	key    *sfschema.Field
	value  string
}

// fieldSet is a decoded, type-checked write: canonical field name → value
// (nil clears the field).
type fieldSet struct {
	values map[string]any
	order  []string
	fks    []foreignKey
}

func (fs *fieldSet) set(name string, v any) {
	if _, ok := fs.values[name]; !ok {
		fs.order = append(fs.order, name)
	}
	fs.values[name] = v
}

// decodeFields turns body members into typed field values for obj,
// enforcing what Salesforce checks while deserialising: unknown fields,
// the Id rule, JSON types, field permissions for op, lengths, restricted
// picklists, number ranges and e-mail syntax. skip lists members the
// caller handles (e.g. the External ID of an upsert, Id of a collection
// update).
func (s *Server) decodeFields(obj *sfschema.Object, members []kv, op writeOp, skip ...string) (*fieldSet, *restError) {
	fs := &fieldSet{values: map[string]any{}}
	var notWritable []string
	var valueErrs []apiError
outer:
	for _, m := range members {
		if m.key == "attributes" {
			continue
		}
		for _, sk := range skip {
			if strings.EqualFold(sk, m.key) {
				continue outer
			}
		}
		f := obj.Field(m.key)
		if f == nil {
			if rel := obj.FieldByRelationship(m.key); rel != nil {
				if sub, ok := m.val.(map[string]any); ok {
					fk, rerr := s.foreignKeySpec(rel, sub)
					if rerr != nil {
						return nil, rerr
					}
					if (op == opCreate && !rel.Createable) || (op == opUpdate && !rel.Updateable) {
						notWritable = append(notWritable, rel.Name)
						continue
					}
					fs.fks = append(fs.fks, fk)
					continue
				}
			}
			return nil, newFieldErr("INVALID_FIELD", "No such column '"+m.key+"' on sobject of type "+obj.Name)
		}
		if f.Name == "Id" {
			return nil, newErr(http.StatusBadRequest, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
		}
		v, rerr := convertValue(f, m.val)
		if rerr != nil {
			return nil, rerr
		}
		if (op == opCreate && !f.Createable) || (op == opUpdate && !f.Updateable) {
			notWritable = append(notWritable, f.Name)
			continue
		}
		if e := checkValue(f, v); e != nil {
			valueErrs = append(valueErrs, *e)
			continue
		}
		fs.set(f.Name, v)
	}
	if len(notWritable) > 0 {
		notWritable = schemaOrder(obj, notWritable)
		return nil, newFieldErr("INVALID_FIELD_FOR_INSERT_UPDATE",
			"Unable to create/update fields: "+strings.Join(notWritable, ", ")+
				". Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
			notWritable...)
	}
	if len(valueErrs) > 0 {
		return nil, &restError{Status: http.StatusBadRequest, Errors: valueErrs}
	}
	return fs, nil
}

// schemaOrder sorts field names in describe order, the order Salesforce
// lists fields in its messages.
func schemaOrder(obj *sfschema.Object, names []string) []string {
	out := make([]string, 0, len(names))
	for _, f := range obj.Fields {
		for _, n := range names {
			if n == f.Name {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

func (s *Server) foreignKeySpec(rel *sfschema.Field, spec map[string]any) (foreignKey, *restError) {
	if len(rel.ReferenceTo) != 1 {
		return foreignKey{}, newFieldErr("INVALID_FIELD", "Polymorphic foreign key references are not supported for "+rel.RelationshipName, rel.Name)
	}
	target := s.schema.Object(rel.ReferenceTo[0])
	if target == nil {
		return foreignKey{}, newFieldErr("INVALID_FIELD", "No such column '"+rel.RelationshipName+"'", rel.Name)
	}
	var fk *foreignKey
	for k, v := range spec {
		if k == "attributes" {
			continue
		}
		if fk != nil {
			return foreignKey{}, newFieldErr("INVALID_FIELD", "Foreign key external ID: more than one field provided for "+rel.RelationshipName, rel.Name)
		}
		kf := target.Field(k)
		if kf == nil || !(kf.ExternalID || kf.Name == "Id") {
			return foreignKey{}, newFieldErr("INVALID_FIELD", "Field name provided, "+k+" is not an External ID or indexed field for "+target.Name, rel.Name)
		}
		sv, ok := v.(string)
		if !ok {
			if n, isNum := v.(json.Number); isNum {
				sv = string(n)
			} else {
				return foreignKey{}, typeError(kf, v)
			}
		}
		fk = &foreignKey{field: rel, target: target, key: kf, value: sv}
	}
	if fk == nil {
		return foreignKey{}, newFieldErr("INVALID_FIELD", "Foreign key external ID not specified for "+rel.RelationshipName, rel.Name)
	}
	return *fk, nil
}

// convertValue checks a JSON value's type against the field and returns
// the stored representation (strings, float64, bool, nil; dates and
// datetimes in Salesforce's output formats). Empty strings become null, as
// Salesforce stores them.
func convertValue(f *sfschema.Field, v any) (any, *restError) {
	if v == nil {
		if f.Type == sfschema.TypeBoolean {
			return false, nil
		}
		return nil, nil
	}
	switch {
	case f.Type == sfschema.TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, typeError(f, v)
		}
		return b, nil
	case f.Type.IsNumeric():
		n, ok := v.(json.Number)
		if !ok {
			return nil, typeError(f, v)
		}
		x, err := n.Float64()
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, typeError(f, v)
		}
		if f.Type == sfschema.TypeInt && x != math.Trunc(x) {
			return nil, typeError(f, v)
		}
		return x, nil
	case f.Type == sfschema.TypeDate:
		str, ok := v.(string)
		if !ok {
			return nil, typeError(f, v)
		}
		if str == "" {
			return nil, nil
		}
		t, err := sfschema.ParseDate(str)
		if err != nil {
			return nil, typeError(f, v)
		}
		return sfschema.FormatDate(t), nil
	case f.Type == sfschema.TypeDateTime:
		str, ok := v.(string)
		if !ok {
			return nil, typeError(f, v)
		}
		if str == "" {
			return nil, nil
		}
		t, err := sfschema.ParseDateTime(str)
		if err != nil {
			return nil, typeError(f, v)
		}
		return sfschema.FormatDateTime(t), nil
	default: // text types, ids, references, picklists
		str, ok := v.(string)
		if !ok {
			return nil, typeError(f, v)
		}
		if str == "" {
			return nil, nil
		}
		return str, nil
	}
}

// checkValue validates a typed value against the field's constraints.
func checkValue(f *sfschema.Field, v any) *apiError {
	if v == nil {
		return nil
	}
	switch x := v.(type) {
	case string:
		if f.Type == sfschema.TypeDate || f.Type == sfschema.TypeDateTime {
			return nil
		}
		if f.Length > 0 && f.Type != sfschema.TypeReference && f.Type != sfschema.TypeID && len([]rune(x)) > f.Length {
			return &apiError{ErrorCode: "STRING_TOO_LONG", Fields: []string{f.Name},
				Message: f.Label + ": data value too large: " + x + " (max length=" + strconv.Itoa(f.Length) + ")"}
		}
		if f.RestrictedPicklist && f.Type == sfschema.TypePicklist && !f.HasPicklistValue(x) {
			return &apiError{ErrorCode: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", Fields: []string{f.Name},
				Message: f.Label + ": bad value for restricted picklist field: " + x}
		}
		if f.RestrictedPicklist && f.Type == sfschema.TypeMultiPicklist {
			for _, part := range strings.Split(x, ";") {
				if !f.HasPicklistValue(part) {
					return &apiError{ErrorCode: "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", Fields: []string{f.Name},
						Message: f.Label + ": bad value for restricted picklist field: " + part}
				}
			}
		}
		if f.Type == sfschema.TypeEmail {
			if a, err := mail.ParseAddress(x); err != nil || a.Address != x {
				return &apiError{ErrorCode: "INVALID_EMAIL_ADDRESS", Fields: []string{f.Name},
					Message: f.Label + ": invalid email address: " + x}
			}
		}
	case float64:
		if f.Precision > 0 {
			limit := math.Pow(10, float64(f.Precision-f.Scale))
			if math.Abs(x) >= limit {
				return &apiError{ErrorCode: "NUMBER_OUTSIDE_VALID_RANGE", Fields: []string{f.Name},
					Message: f.Label + ": value outside of valid range on numeric field: " + strconv.FormatFloat(x, 'f', -1, 64)}
			}
		}
	}
	return nil
}

// roundScale rounds numbers to the field's scale, as Salesforce stores
// them.
func roundScale(f *sfschema.Field, v any) any {
	x, ok := v.(float64)
	if !ok || !f.Type.IsNumeric() {
		return v
	}
	p := math.Pow(10, float64(f.Scale))
	return math.Round(x*p) / p
}

// checkRef validates a lookup value: well-formed id, right object type,
// existing and not deleted. It returns the canonical 18-character id.
func (s *Server) checkRef(v *view, f *sfschema.Field, val string) (string, *apiError) {
	cid, ok := sfschema.CanonicalID(val)
	if !ok {
		return "", &apiError{ErrorCode: "MALFORMED_ID", Fields: []string{f.Name}, Message: f.Label + ": id value of incorrect type: " + val}
	}
	target := s.schema.ObjectByPrefix(cid[:3])
	allowed := false
	if target != nil {
		for _, t := range f.ReferenceTo {
			if strings.EqualFold(t, target.Name) {
				allowed = true
			}
		}
	}
	if !allowed {
		return "", &apiError{ErrorCode: "FIELD_INTEGRITY_EXCEPTION", Fields: []string{f.Name}, Message: f.Label + ": id value of incorrect type: " + val}
	}
	e := v.entry(target.Name, cid)
	if e == nil {
		return "", &apiError{ErrorCode: "INVALID_CROSS_REFERENCE_KEY", Fields: []string{f.Name}, Message: "invalid cross reference id"}
	}
	if !e.deleted.IsZero() {
		return "", &apiError{ErrorCode: "ENTITY_IS_DELETED", Fields: []string{f.Name}, Message: "entity is deleted"}
	}
	return cid, nil
}

// resolveRefs resolves foreign keys given by External ID and validates
// every lookup value, rewriting them to canonical ids.
func (s *Server) resolveRefs(v *view, obj *sfschema.Object, fs *fieldSet) *restError {
	for _, fk := range fs.fks {
		var ids []string
		if fk.key.Name == "Id" {
			if cid, ok := sfschema.CanonicalID(fk.value); ok {
				if _, live := v.getLive(fk.target.Name, cid); live {
					ids = []string{cid}
				}
			}
		} else {
			ids = v.byUnique(fk.target.Name, fk.key.Name, fk.value)
		}
		switch len(ids) {
		case 0:
			return newFieldErr("INVALID_FIELD", "Foreign key external ID: "+fk.value+" not found for field "+fk.key.Name+" in entity "+fk.target.Name, fk.field.Name)
		case 1:
			fs.set(fk.field.Name, ids[0])
		default:
			return newFieldErr("INVALID_FIELD", "Foreign key external ID: "+fk.value+" for field "+fk.key.Name+" in entity "+fk.target.Name+" matches more than one record", fk.field.Name)
		}
	}
	var errs []apiError
	for _, name := range fs.order {
		f := obj.Field(name)
		val, ok := fs.values[name].(string)
		if !ok || f.Type != sfschema.TypeReference {
			continue
		}
		cid, e := s.checkRef(v, f, val)
		if e != nil {
			errs = append(errs, *e)
			continue
		}
		fs.values[name] = cid
	}
	if len(errs) > 0 {
		return &restError{Status: http.StatusBadRequest, Errors: errs}
	}
	return nil
}

// checkUnique rejects values of unique fields already used by another
// live record.
func checkUnique(v *view, obj *sfschema.Object, id string, rec map[string]any, changed map[string]any) *restError {
	for name := range changed {
		f := obj.Field(name)
		if f == nil || !f.Unique {
			continue
		}
		val, ok := rec[f.Name].(string)
		if !ok {
			continue
		}
		for _, other := range v.byUnique(obj.Name, f.Name, val) {
			if other != id {
				return newFieldErr("DUPLICATE_VALUE", "duplicate value found: "+f.Name+" duplicates value on record with id: "+other, f.Name)
			}
		}
	}
	return nil
}

func errNotCreateable(obj *sfschema.Object, op string) *restError {
	return newErr(http.StatusBadRequest, "INVALID_TYPE_FOR_OPERATION", "entity type "+obj.Name+" does not support "+op)
}

// insertRecord validates fs against the stored data and creates a record
// owned and created by userID.
func (s *Server) insertRecord(tx *txn, obj *sfschema.Object, fs *fieldSet, userID string) (string, *restError) {
	if !obj.Createable {
		return "", errNotCreateable(obj, "insert")
	}
	if rerr := s.resolveRefs(&tx.view, obj, fs); rerr != nil {
		return "", rerr
	}
	t := tx.st.table(obj.Name)
	rec := make(map[string]any, len(obj.Fields))
	for _, f := range obj.Fields {
		rec[f.Name] = f.DefaultValue
	}
	if f := obj.Field("OwnerId"); f != nil {
		rec["OwnerId"] = userID
	}
	for name, v := range fs.values {
		rec[name] = roundScale(obj.Field(name), v)
	}
	var missing []string
	for _, f := range obj.Fields {
		if f.Required() && rec[f.Name] == nil {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		return "", newFieldErr("REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(missing, ", ")+"]", missing...)
	}
	if rerr := checkUnique(&tx.view, obj, "", rec, fs.values); rerr != nil {
		return "", rerr
	}
	now := tx.stamp(s.clock.Now())
	id := tx.nextID(t)
	ts := sfschema.FormatDateTime(now)
	rec["Id"] = id
	rec["IsDeleted"] = false
	rec["CreatedDate"], rec["LastModifiedDate"], rec["SystemModstamp"] = ts, ts, ts
	rec["CreatedById"], rec["LastModifiedById"] = userID, userID
	s.derive(obj, nil, rec, fs.values)
	tx.insert(t, rec, now)
	return id, nil
}

// updateRecord applies fs to the live record id as userID.
func (s *Server) updateRecord(tx *txn, obj *sfschema.Object, id string, fs *fieldSet, userID string) *restError {
	if !obj.Updateable {
		return errNotCreateable(obj, "update")
	}
	t := tx.st.table(obj.Name)
	e := t.byID[id]
	if e == nil {
		return errNotFound()
	}
	if !e.deleted.IsZero() {
		return errEntityDeleted()
	}
	if rerr := s.resolveRefs(&tx.view, obj, fs); rerr != nil {
		return rerr
	}
	rec := make(map[string]any, len(e.rec))
	for k, v := range e.rec {
		rec[k] = v
	}
	var missing []string
	for name, v := range fs.values {
		f := obj.Field(name)
		if v == nil && !f.Nillable && f.Type != sfschema.TypeBoolean {
			missing = append(missing, name)
		}
		rec[name] = roundScale(f, v)
	}
	if len(missing) > 0 {
		return newFieldErr("REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(missing, ", ")+"]", missing...)
	}
	if rerr := checkUnique(&tx.view, obj, id, rec, fs.values); rerr != nil {
		return rerr
	}
	now := tx.stamp(s.clock.Now())
	ts := sfschema.FormatDateTime(now)
	rec["LastModifiedDate"], rec["SystemModstamp"], rec["LastModifiedById"] = ts, ts, userID
	s.derive(obj, e.rec, rec, fs.values)
	tx.replace(t, id, rec, now)
	return nil
}

// deleteRecord moves the live record id (and its master-detail children)
// to the recycle bin.
func (s *Server) deleteRecord(tx *txn, obj *sfschema.Object, id string) *restError {
	if !obj.Deletable {
		return errNotCreateable(obj, "delete")
	}
	t := tx.st.table(obj.Name)
	e := t.byID[id]
	if e == nil {
		return errNotFound()
	}
	if !e.deleted.IsZero() {
		return errEntityDeleted()
	}
	s.cascadeDelete(tx, t, id, tx.stamp(s.clock.Now()))
	return nil
}

func (s *Server) cascadeDelete(tx *txn, t *table, id string, now time.Time) {
	e := t.byID[id]
	rec := make(map[string]any, len(e.rec))
	for k, v := range e.rec {
		rec[k] = v
	}
	rec["IsDeleted"] = true
	rec["SystemModstamp"] = sfschema.FormatDateTime(now)
	tx.markDeleted(t, id, rec, now)
	for _, cr := range t.obj.ChildRelationships {
		ct := tx.st.table(cr.ChildSObject)
		if ct == nil {
			continue
		}
		cf := ct.obj.Field(cr.Field)
		if !cr.CascadeDelete && (cf == nil || !cf.CascadeDelete) {
			continue
		}
		var children []string
		for _, cid := range ct.order {
			ce := ct.byID[cid]
			if ce != nil && ce.deleted.IsZero() && ce.rec[cr.Field] == id {
				children = append(children, cid)
			}
		}
		for _, cid := range children {
			s.cascadeDelete(tx, ct, cid, now)
		}
	}
}

// derive computes the server-maintained fields after a write: the
// Opportunity stage-driven fields, Contact's full name, and the record
// name of objects whose Name defaults to the id.
func (s *Server) derive(obj *sfschema.Object, old, rec map[string]any, set map[string]any) {
	switch obj.Name {
	case sfschema.ObjOpportunity:
		stageName, _ := rec["StageName"].(string)
		st, known := s.stages[stageName]
		rec["IsClosed"], rec["IsWon"] = st.Closed, st.Won
		stageChanged := old == nil || old["StageName"] != rec["StageName"]
		if _, given := set["Probability"]; !given && stageChanged && known {
			rec["Probability"] = st.Probability
		}
		if _, given := set["ForecastCategoryName"]; !given && stageChanged && known {
			rec["ForecastCategoryName"] = st.ForecastCategory
		}
		fcn, _ := rec["ForecastCategoryName"].(string)
		if fcn == "" {
			fcn = "Pipeline"
			rec["ForecastCategoryName"] = fcn
		}
		rec["ForecastCategory"] = forecastCategory(fcn)
		amount, okA := rec["Amount"].(float64)
		prob, okP := rec["Probability"].(float64)
		if okA && okP {
			rec["ExpectedRevenue"] = math.Round(amount*prob) / 100
		} else {
			rec["ExpectedRevenue"] = nil
		}
	case sfschema.ObjContact:
		first, _ := rec["FirstName"].(string)
		last, _ := rec["LastName"].(string)
		rec["Name"] = strings.TrimSpace(first + " " + last)
	}
	if f := obj.Field("Name"); f != nil && f.Createable && f.DefaultedOnCreate && rec["Name"] == nil {
		rec["Name"] = rec["Id"]
	}
}
