package partnercenter

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// record is one stored referral. doc is never modified after the record is
// stored: writers build a new map and swap the record, so readers may use a
// doc after releasing the lock. body and getBody are the pre-rendered JSON
// of the list item and of GET by id, so the hot read path copies bytes
// instead of marshalling.
type record struct {
	id           string
	engagementID string
	seq          uint64
	version      uint64
	doc          map[string]any
	etag         string
	body         []byte
	getBody      []byte
}

// store holds every referral in memory.
type store struct {
	mu          sync.RWMutex
	byID        map[string]*record
	order       []string            // ids in creation order
	engagements map[string][]string // engagementId -> ids in creation order
	// byExtRef indexes referrals by externalReferenceId (when it is a
	// string), for the lookup a CRM connector makes before creating one.
	byExtRef map[string]map[string]struct{}
	seq      uint64
}

func newStore() *store {
	return &store{byID: map[string]*record{}, engagements: map[string][]string{}, byExtRef: map[string]map[string]struct{}{}}
}

// reset forgets every referral.
func (st *store) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byID = map[string]*record{}
	st.order = nil
	st.engagements = map[string][]string{}
	st.byExtRef = map[string]map[string]struct{}{}
}

// get returns the record with id, or nil.
func (st *store) get(id string) *record {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.byID[id]
}

// all returns every record in creation order.
func (st *store) all() []*record {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]*record, 0, len(st.order))
	for _, id := range st.order {
		out = append(out, st.byID[id])
	}
	return out
}

// byExternalReference returns, in creation order, the records whose
// externalReferenceId is one of refs (distinct values).
func (st *store) byExternalReference(refs ...string) []*record {
	st.mu.RLock()
	out := make([]*record, 0, len(refs))
	for _, ref := range refs {
		for id := range st.byExtRef[ref] {
			out = append(out, st.byID[id])
		}
	}
	st.mu.RUnlock()
	slices.SortFunc(out, func(a, b *record) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// indexLocked moves rec's id from the index entry of old's
// externalReferenceId (old may be nil) to its own.
func (st *store) indexLocked(old, rec *record) {
	oldRef, hadRef := old.externalRef()
	newRef, hasRef := rec.externalRef()
	if hadRef == hasRef && oldRef == newRef {
		return
	}
	if hadRef {
		delete(st.byExtRef[oldRef], rec.id)
		if len(st.byExtRef[oldRef]) == 0 {
			delete(st.byExtRef, oldRef)
		}
	}
	if hasRef {
		if st.byExtRef[newRef] == nil {
			st.byExtRef[newRef] = map[string]struct{}{}
		}
		st.byExtRef[newRef][rec.id] = struct{}{}
	}
}

// externalRef returns the record's externalReferenceId, and false when it
// has none (or r is nil).
func (r *record) externalRef() (string, bool) {
	if r == nil {
		return "", false
	}
	v, ok := r.doc["externalReferenceId"].(string)
	return v, ok
}

// engagementExists reports whether any referral belongs to engagementID.
func (st *store) engagementExists(engagementID string) bool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.engagements[engagementID]) > 0
}

// change is what a write did, for notifications.
type change struct {
	rec     *record
	created bool
}

// insertLocked stores a new record. The caller holds st.mu for writing and
// has finalised rec.
func (st *store) insertLocked(rec *record) change {
	st.seq++
	rec.seq = st.seq
	st.byID[rec.id] = rec
	st.order = append(st.order, rec.id)
	st.engagements[rec.engagementID] = append(st.engagements[rec.engagementID], rec.id)
	st.indexLocked(nil, rec)
	return change{rec: rec, created: true}
}

// replaceLocked swaps in a new version of an existing record. The caller
// holds st.mu for writing.
func (st *store) replaceLocked(rec *record) change {
	old := st.byID[rec.id]
	rec.seq = old.seq
	st.indexLocked(old, rec)
	st.byID[rec.id] = rec
	return change{rec: rec}
}

// finalize stamps the server-maintained fields of a written document
// (updatedDateTime, eTag, links) and renders its JSON. version counts the
// writes of this referral.
func (s *Server) finalize(doc map[string]any, version uint64, now time.Time) (*record, error) {
	id, _ := doc["id"].(string)
	eng, _ := doc["engagementId"].(string)
	etag := etagFor(id, version, now)
	doc["updatedDateTime"] = formatTime(now)
	doc["eTag"] = etag
	doc["links"] = map[string]any{
		"relatedReferrals": map[string]any{"uri": s.referralsURL() + "?$filter=engagementId eq '" + eng + "'", "method": "GET"},
		"self":             map[string]any{"uri": s.referralURL(id), "method": "GET"},
	}
	body, err := marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render referral %s: %w", id, err)
	}
	ctx, err := marshal(s.entityContext())
	if err != nil {
		return nil, fmt.Errorf("render referral %s: %w", id, err)
	}
	var get bytes.Buffer
	get.Grow(len(body) + len(ctx) + 20)
	get.WriteString(`{"@odata.context":`)
	get.Write(ctx)
	if len(body) > 2 {
		get.WriteByte(',')
	}
	get.Write(body[1:])
	get.WriteByte('\n')
	return &record{id: id, engagementID: eng, version: version, doc: doc, etag: etag, body: body, getBody: get.Bytes()}, nil
}

// etagFor derives an opaque quoted eTag, shaped like the Cosmos DB _etag the
// real service returns ("\"8500e212-0000-0100-0000-6225cdc90000\"").
// Hashing the id, the version and the write time makes every write produce
// a different value.
func etagFor(id string, version uint64, t time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", id, version, t.UnixNano()))
	x := hex.EncodeToString(h[:])
	return fmt.Sprintf("\"%s-0000-0100-0000-%s%08x\"", x[:8], x[8:12], uint32(t.Unix()))
}

// marshal is json.Marshal without HTML escaping, so URLs such as nextLink
// keep their '&' and '<'.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// deepCopy returns a copy of a decoded JSON value that shares nothing with
// v, so stored documents stay immutable.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
