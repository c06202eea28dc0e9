package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

const (
	maxSubrequests = 25
	// maxHeavySubrequests bounds the sObject Collections and query
	// subrequests of one Composite request.
	maxHeavySubrequests = 5
)

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// validReferenceID reports whether id uses only letters, digits and
// underscores, as Salesforce requires.
func validReferenceID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isIdentByte(id[i]) {
			return false
		}
	}
	return true
}

// scanReference matches a reference "@{ref(.name|[n])*}" at s[i:] and
// returns the index just past it.
func scanReference(s string, i int) (int, bool) {
	if !strings.HasPrefix(s[i:], "@{") {
		return 0, false
	}
	j := i + 2
	start := j
	for j < len(s) && isIdentByte(s[j]) {
		j++
	}
	if j == start {
		return 0, false
	}
	for j < len(s) {
		switch s[j] {
		case '}':
			return j + 1, true
		case '.':
			j++
			k := j
			for j < len(s) && isIdentByte(s[j]) {
				j++
			}
			if j == k {
				return 0, false
			}
		case '[':
			j++
			k := j
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == k || j >= len(s) || s[j] != ']' {
				return 0, false
			}
			j++
		default:
			return 0, false
		}
	}
	return 0, false
}

type subrequest struct {
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	ReferenceID string            `json:"referenceId"`
	Body        json.RawMessage   `json:"body"`
	HTTPHeaders map[string]string `json:"httpHeaders"`
}

type subresponse struct {
	Body           json.RawMessage   `json:"body"`
	HTTPHeaders    map[string]string `json:"httpHeaders"`
	HTTPStatusCode int               `json:"httpStatusCode"`
	ReferenceID    string            `json:"referenceId"`
}

func compositeInputError(msg string) *restError {
	return newErr(http.StatusBadRequest, "INVALID_INPUT", msg)
}

// handleComposite serves POST /composite: up to 25 subrequests run in
// order through the same handlers as direct calls, with @{ref.path}
// references to earlier results. With allOrNone the whole request is one
// transaction: the first failure rolls everything back and every other
// subrequest reports PROCESSING_HALTED.
func (s *Server) handleComposite(w http.ResponseWriter, r *http.Request) {
	body, rerr := readBody(r)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	var req struct {
		AllOrNone          bool         `json:"allOrNone"`
		CollateSubrequests *bool        `json:"collateSubrequests"`
		CompositeRequest   []subrequest `json:"compositeRequest"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, errJSONParser(err.Error()))
		return
	}
	if rerr := validateComposite(req.CompositeRequest); rerr != nil {
		writeError(w, rerr)
		return
	}
	parent := callFrom(r.Context())
	cc := &callCtx{userID: parent.userID, sub: true, lockFault: parent.lockFault}
	if req.AllOrNone {
		cc.tx = s.store.begin()
		// A panic in a subrequest must not leave the store locked.
		defer func() {
			if cc.tx != nil {
				cc.tx.abort()
			}
		}()
	}
	ctx := context.WithValue(r.Context(), callCtxKey{}, cc)
	ctx = context.WithValue(ctx, chi.RouteCtxKey, nil)

	out := make([]subresponse, len(req.CompositeRequest))
	results := map[string]any{} // referenceId → decoded body of a successful subrequest
	// Results are decoded only when some subrequest refers to one.
	refs := false
	for _, sr := range req.CompositeRequest {
		refs = refs || strings.Contains(sr.URL, "@{") || bytes.Contains(sr.Body, []byte("@{"))
	}
	failedAt := -1
	for i, sr := range req.CompositeRequest {
		if failedAt >= 0 && req.AllOrNone {
			out[i] = halted(sr.ReferenceID)
			continue
		}
		resp, ok := s.runSubrequest(ctx, r, sr, results)
		out[i] = resp
		if !ok || resp.HTTPStatusCode >= 400 {
			if failedAt < 0 {
				failedAt = i
			}
			continue
		}
		if !refs {
			continue
		}
		var decoded any
		if len(resp.Body) > 0 {
			d := json.NewDecoder(bytes.NewReader(resp.Body))
			d.UseNumber()
			_ = d.Decode(&decoded)
		}
		results[sr.ReferenceID] = decoded
	}
	if tx := cc.tx; tx != nil {
		cc.tx = nil
		if failedAt >= 0 {
			tx.abort()
			for i := range out {
				if i != failedAt {
					out[i] = halted(req.CompositeRequest[i].ReferenceID)
				}
			}
		} else {
			tx.commit()
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"compositeResponse": out})
}

func halted(ref string) subresponse {
	b, _ := json.Marshal([]apiError{{ErrorCode: "PROCESSING_HALTED", Message: msgProcessHalted}})
	return subresponse{Body: b, HTTPHeaders: map[string]string{}, HTTPStatusCode: http.StatusBadRequest, ReferenceID: ref}
}

func validateComposite(subs []subrequest) *restError {
	if len(subs) == 0 {
		return compositeInputError("The compositeRequest must contain at least one subrequest")
	}
	if len(subs) > maxSubrequests {
		return newErr(http.StatusBadRequest, "LIMIT_EXCEEDED", "Composite requests can contain at most "+strconv.Itoa(maxSubrequests)+" subrequests")
	}
	seen := map[string]bool{}
	heavy := 0
	for _, sr := range subs {
		if !validReferenceID(sr.ReferenceID) {
			return compositeInputError("Invalid referenceId '" + sr.ReferenceID + "': only letters, digits and underscores are allowed")
		}
		if seen[sr.ReferenceID] {
			return compositeInputError("Duplicate ReferenceId provided in the request: " + sr.ReferenceID)
		}
		seen[sr.ReferenceID] = true
		switch strings.ToUpper(sr.Method) {
		case http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		default:
			return compositeInputError("Invalid method '" + sr.Method + "' for subrequest " + sr.ReferenceID)
		}
		if !strings.HasPrefix(sr.URL, "/services/data/v") {
			return compositeInputError("The url of subrequest " + sr.ReferenceID + " must start with /services/data/vXX.X/")
		}
		if strings.Contains(sr.URL, "/composite/sobjects") || strings.Contains(sr.URL, "/query") {
			heavy++
		}
	}
	if heavy > maxHeavySubrequests {
		return newErr(http.StatusBadRequest, "LIMIT_EXCEEDED", "A composite request can contain at most 5 sObject Collections or query subrequests")
	}
	return nil
}

// runSubrequest resolves references and dispatches one subrequest through
// the router; ok is false when a reference could not be resolved.
func (s *Server) runSubrequest(ctx context.Context, parent *http.Request, sr subrequest, results map[string]any) (subresponse, bool) {
	unresolved := func(ref string) subresponse {
		b, _ := json.Marshal([]apiError{{ErrorCode: "PROCESSING_HALTED",
			Message: "Invalid reference specified. No value for " + ref + " found. Provided referenceId ('" + ref + "') is invalid or cannot be resolved."}})
		return subresponse{Body: b, HTTPHeaders: map[string]string{}, HTTPStatusCode: http.StatusBadRequest, ReferenceID: sr.ReferenceID}
	}
	target, bad := substituteText(sr.URL, results)
	if bad != "" {
		return unresolved(bad), false
	}
	var body []byte
	switch {
	case len(sr.Body) == 0 || string(sr.Body) == "null":
	case !bytes.Contains(sr.Body, []byte("@{")):
		// Nothing to resolve: the body (one JSON value, checked when the
		// request was decoded) goes to the handler as sent.
		body = sr.Body
	default:
		d := json.NewDecoder(bytes.NewReader(sr.Body))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			b, _ := json.Marshal([]apiError{{ErrorCode: "JSON_PARSER_ERROR", Message: err.Error()}})
			return subresponse{Body: b, HTTPHeaders: map[string]string{}, HTTPStatusCode: http.StatusBadRequest, ReferenceID: sr.ReferenceID}, true
		}
		v, bad = substituteJSON(v, results)
		if bad != "" {
			return unresolved(bad), false
		}
		body, _ = json.Marshal(v)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(sr.Method), target, bytes.NewReader(body))
	if err != nil {
		b, _ := json.Marshal([]apiError{{ErrorCode: "NOT_FOUND", Message: msgNotFound}})
		return subresponse{Body: b, HTTPHeaders: map[string]string{}, HTTPStatusCode: http.StatusNotFound, ReferenceID: sr.ReferenceID}, true
	}
	req.RemoteAddr = parent.RemoteAddr
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range sr.HTTPHeaders {
		req.Header.Set(k, v)
	}
	rec := newRecorder()
	s.handler.ServeHTTP(rec, req)
	headers := map[string]string{}
	for k, v := range rec.header {
		switch k {
		case "Content-Type", "Content-Length", limitInfoHeader:
			continue
		}
		if len(v) > 0 {
			headers[k] = v[0]
		}
	}
	resp := subresponse{HTTPHeaders: headers, HTTPStatusCode: rec.status, ReferenceID: sr.ReferenceID}
	if rec.body.Len() > 0 {
		resp.Body = append(json.RawMessage(nil), rec.body.Bytes()...)
	}
	return resp, true
}

// substituteText replaces @{ref.path} in s with the referenced values'
// text; bad names the first reference that cannot be resolved.
func substituteText(s string, results map[string]any) (string, string) {
	if !strings.Contains(s, "@{") {
		return s, ""
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		end, ok := scanReference(s, i)
		if !ok {
			b.WriteByte(s[i])
			i++
			continue
		}
		m := s[i:end]
		v, found := resolveReference(m, results)
		if !found {
			return s, m[2 : len(m)-1]
		}
		b.WriteString(referenceText(v))
		i = end
	}
	return b.String(), ""
}

func referenceText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "null"
	case json.Number:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// substituteJSON resolves references inside a decoded body. A string that
// is exactly one reference takes the referenced value with its JSON type.
func substituteJSON(v any, results map[string]any) (any, string) {
	switch x := v.(type) {
	case string:
		if end, ok := scanReference(x, 0); ok && end == len(x) {
			val, found := resolveReference(x, results)
			if !found {
				return x, x[2 : len(x)-1]
			}
			return val, ""
		}
		return substituteText(x, results)
	case map[string]any:
		for k, e := range x {
			nv, bad := substituteJSON(e, results)
			if bad != "" {
				return v, bad
			}
			x[k] = nv
		}
	case []any:
		for i, e := range x {
			nv, bad := substituteJSON(e, results)
			if bad != "" {
				return v, bad
			}
			x[i] = nv
		}
	}
	return v, ""
}

// resolveReference evaluates "@{ref.a.b[0].c}" against earlier results.
func resolveReference(m string, results map[string]any) (any, bool) {
	inner := strings.TrimSuffix(strings.TrimPrefix(m, "@{"), "}")
	cut := strings.IndexAny(inner, ".[")
	if cut < 0 {
		cut = len(inner)
	}
	cur, ok := results[inner[:cut]]
	if !ok {
		return nil, false
	}
	path := inner[cut:]
	for path != "" {
		switch path[0] {
		case '.':
			end := strings.IndexAny(path[1:], ".[")
			if end < 0 {
				end = len(path) - 1
			}
			key := path[1 : end+1]
			path = path[end+1:]
			obj, isObj := cur.(map[string]any)
			if !isObj {
				return nil, false
			}
			if cur, ok = obj[key]; !ok {
				return nil, false
			}
		case '[':
			end := strings.IndexByte(path, ']')
			idx, err := strconv.Atoi(path[1:end])
			path = path[end+1:]
			arr, isArr := cur.([]any)
			if err != nil || !isArr || idx < 0 || idx >= len(arr) {
				return nil, false
			}
			cur = arr[idx]
		default:
			return nil, false
		}
	}
	return cur, true
}

// recorder captures a subrequest's response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (rc *recorder) Header() http.Header { return rc.header }

func (rc *recorder) WriteHeader(status int) {
	if rc.wrote {
		return
	}
	rc.status, rc.wrote = status, true
}

func (rc *recorder) Write(b []byte) (int, error) {
	if !rc.wrote {
		rc.WriteHeader(http.StatusOK)
	}
	return rc.body.Write(b)
}
