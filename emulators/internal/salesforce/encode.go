package salesforce

import (
	"bytes"
	"sort"
	"strconv"
	"strings"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// javaDouble renders x the way Salesforce's JSON serialiser writes
// double, currency and percent values (Java's Double.toString): always
// with a fractional part ("100.0"), and in E notation outside
// [0.001, 10^7) ("1.25E7"). Clients that decode such fields into integers
// break on real Salesforce, so the emulator writes them the same way.
func javaDouble(x float64) string {
	if x == 0 {
		return "0.0"
	}
	abs := x
	if abs < 0 {
		abs = -abs
	}
	if abs >= 1e-3 && abs < 1e7 {
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(x, 'E', -1, 64) // e.g. 1.25E+07
	mant, exp, _ := strings.Cut(s, "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	n, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(n)
}

// appendFieldValue writes a stored value as Salesforce renders it for
// field f (nil when the key is not a field).
func appendFieldValue(buf *bytes.Buffer, f *sfschema.Field, v any) {
	if x, ok := v.(float64); ok && f != nil && f.Type.IsNumeric() && f.Type != sfschema.TypeInt {
		buf.WriteString(javaDouble(x))
		return
	}
	writeJSONValue(buf, v)
}

// appendQueryRecord renders a record produced by the query engine:
// attributes first, then the other keys in alphabetical order, numbers in
// Salesforce's notation, parent records and child results recursively.
func (s *Server) appendQueryRecord(buf *bytes.Buffer, rec map[string]any) {
	var obj *sfschema.Object
	buf.WriteByte('{')
	first := true
	if attrs, ok := rec["attributes"].(map[string]any); ok {
		if typ, _ := attrs["type"].(string); typ != "" {
			obj = s.schema.Object(typ)
		}
		buf.WriteString(`"attributes":`)
		writeJSONValue(buf, attrs)
		first = false
	}
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if k != "attributes" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeJSONValue(buf, k)
		buf.WriteByte(':')
		switch x := rec[k].(type) {
		case map[string]any:
			if recs, ok := x["records"].([]map[string]any); ok {
				s.appendChildResult(buf, x, recs)
			} else {
				s.appendQueryRecord(buf, x)
			}
		default:
			var f *sfschema.Field
			if obj != nil {
				f = obj.Field(k)
			}
			appendFieldValue(buf, f, x)
		}
	}
	buf.WriteByte('}')
}

// appendChildResult renders a parent-to-child subquery result.
func (s *Server) appendChildResult(buf *bytes.Buffer, res map[string]any, recs []map[string]any) {
	buf.WriteString(`{"totalSize":`)
	writeJSONValue(buf, res["totalSize"])
	buf.WriteString(`,"done":`)
	writeJSONValue(buf, res["done"])
	buf.WriteString(`,"records":`)
	s.appendQueryRecords(buf, recs)
	buf.WriteByte('}')
}

func (s *Server) appendQueryRecords(buf *bytes.Buffer, recs []map[string]any) {
	buf.WriteByte('[')
	for i, r := range recs {
		if i > 0 {
			buf.WriteByte(',')
		}
		s.appendQueryRecord(buf, r)
	}
	buf.WriteByte(']')
}

// writeQueryResult writes one page of a query answer.
func (s *Server) writeQueryResult(buf *bytes.Buffer, total int, done bool, next string, recs []map[string]any) {
	buf.WriteString(`{"totalSize":`)
	buf.WriteString(strconv.Itoa(total))
	buf.WriteString(`,"done":`)
	buf.WriteString(strconv.FormatBool(done))
	if next != "" {
		buf.WriteString(`,"nextRecordsUrl":`)
		writeJSONValue(buf, next)
	}
	buf.WriteString(`,"records":`)
	s.appendQueryRecords(buf, recs)
	buf.WriteByte('}')
}
