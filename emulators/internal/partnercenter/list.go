package partnercenter

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/cosell/cosell/emulators/internal/odata"
)

// pageToken is the decoded form of an opaque $skiptoken: the position of
// the next page in the filtered, ordered result, where the client's $top
// window ends (-1: no $top), and a fingerprint of the query options it
// belongs to, so a token cannot be replayed against a different query.
type pageToken struct {
	Offset int    `json:"o"`
	End    int    `json:"e"`
	Query  string `json:"q"`
}

// pagedOptions are the query options a nextLink carries forward; $top and
// $skip are folded into the token instead.
func pagedOptions() []string { return []string{"$filter", "$orderby", "$select", "$count"} }

func queryFingerprint(v url.Values) string {
	h := sha256.New()
	for _, k := range pagedOptions() {
		h.Write([]byte(k + "=" + v.Get(k) + "\x00"))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

func encodeToken(t pageToken) string {
	b, _ := json.Marshal(t) // a struct of ints and a string always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string, v url.Values) (pageToken, *apiError) {
	bad := badRequest("$skiptoken", "The $skiptoken is invalid or does not belong to this query; follow @odata.nextLink as returned.")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return pageToken{}, bad
	}
	var t pageToken
	if err := json.Unmarshal(b, &t); err != nil || t.Offset < 0 || t.End < -1 || t.Query != queryFingerprint(v) {
		return pageToken{}, bad
	}
	return t, nil
}

// listPage is the OData collection envelope.
type listPage struct {
	Context  string            `json:"@odata.context"`
	Count    *int              `json:"@odata.count,omitempty"`
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"@odata.nextLink,omitempty"`
}

// handleList serves GET /v1.0/engagements/referrals with $filter,
// $orderby, $top, $skip, $select, $count and server-driven paging.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := odata.ParseQuery(v)
	if err != nil {
		writeAPIError(w, odataError(err))
		return
	}
	// window is where the client's $top ends (-1: no $top); it travels in
	// the skiptoken so later pages honour it.
	start, window := q.Skip, -1
	if tok, ok := v["$skiptoken"]; ok {
		if _, has := v["$top"]; has {
			writeAPIError(w, badRequest("$top", "$top cannot be combined with $skiptoken; follow @odata.nextLink as returned."))
			return
		}
		if _, has := v["$skip"]; has {
			writeAPIError(w, badRequest("$skip", "$skip cannot be combined with $skiptoken; follow @odata.nextLink as returned."))
			return
		}
		t, aerr := decodeToken(tok[0], v)
		if aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		start, window = t.Offset, t.End
	} else if q.Top >= 0 {
		window = start + q.Top
	}

	// Stored documents are immutable, so they can be filtered and sorted
	// after the lock is released.
	// A lookup by externalReferenceId (what a CRM connector does before
	// each create, or for a few opportunities at once with `or`) reads the
	// index instead of every referral; the whole filter is still evaluated
	// on what it returns.
	var recs []*record
	if c, ok := q.Filter.(interface {
		RequiredStrings(string) ([]string, bool)
	}); ok {
		if refs, ok := c.RequiredStrings("externalReferenceId"); ok {
			recs = s.store.byExternalReference(refs...)
		}
	}
	if recs == nil {
		recs = s.store.all()
	}
	matched := make([]map[string]any, 0, len(recs))
	byDoc := make(map[string]*record, len(recs))
	for _, rec := range recs {
		if q.Filter != nil {
			ok, err := q.Filter.Eval(rec.doc)
			if err != nil {
				writeAPIError(w, odataError(err))
				return
			}
			if !ok {
				continue
			}
		}
		matched = append(matched, rec.doc)
		byDoc[rec.id] = rec
	}
	if len(q.OrderBy) > 0 {
		odata.Sort(matched, q.OrderBy)
	} // otherwise creation order, which new referrals only extend

	total := len(matched)
	end := total
	if window >= 0 && window < total {
		end = window
	}
	if start > end {
		start = end
	}
	pageEnd := min(start+s.cfg.PageSize, end)

	page := listPage{Context: s.collectionContext(), Value: make([]json.RawMessage, 0, pageEnd-start)}
	if q.Count {
		page.Count = &total
	}
	for _, doc := range matched[start:pageEnd] {
		if q.Select == nil {
			page.Value = append(page.Value, byDoc[getString(doc, "id")].body)
			continue
		}
		b, err := marshal(odata.Project(doc, q.Select))
		if err != nil {
			s.internalError(w, err)
			return
		}
		page.Value = append(page.Value, b)
	}
	if pageEnd < end {
		page.NextLink = s.nextLink(v, pageToken{Offset: pageEnd, End: window, Query: queryFingerprint(v)})
	}
	body, err := marshal(page)
	if err != nil {
		s.internalError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// nextLink builds the @odata.nextLink: the collection URL with the carried
// options and the new $skiptoken, '$' kept literal as the service writes it.
func (s *Server) nextLink(v url.Values, t pageToken) string {
	keys := pagedOptions()
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.referralsURL())
	sep := byte('?')
	add := func(k, val string) {
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(url.QueryEscape(val), "+", "%20"))
	}
	for _, k := range keys {
		if v.Has(k) {
			add(k, v.Get(k))
		}
	}
	add("$skiptoken", encodeToken(t))
	return b.String()
}

// odataError renders an odata parse or evaluation failure as a 400.
func odataError(err error) *apiError {
	var oe *odata.Error
	if errors.As(err, &oe) {
		code := oe.Code
		if code == "" {
			code = codeInvalidRequest
		}
		return &apiError{Status: http.StatusBadRequest, Code: code, Message: oe.Message, Target: oe.Target}
	}
	return badRequest("", "%v", err)
}
