package salesforce

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
	"github.com/cosell/cosell/emulators/internal/soql"
)

const (
	// minBatchSize is the smallest batch Sforce-Query-Options may ask for.
	minBatchSize = 200
	// cursorTTL is how long a query locator lives (two days since v56).
	cursorTTL = 48 * time.Hour
	// maxCursors bounds memory: the oldest locators are dropped beyond it
	// and answer INVALID_QUERY_LOCATOR, as expired ones do.
	maxCursors = 10000
)

// cursor is an open query locator: a snapshot of the result rows.
type cursor struct {
	records  []map[string]any
	pageSize int
	all      bool
	created  time.Time
}

// cursorStore holds open locators.
type cursorStore struct {
	mu    sync.Mutex
	seq   uint64
	m     map[string]*cursor
	order []string
}

func newCursorStore() *cursorStore { return &cursorStore{m: map[string]*cursor{}} }

func (cs *cursorStore) add(c *cursor) string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.seq++
	id := sfschema.NewID("01g", cs.seq)
	cs.m[id] = c
	cs.order = append(cs.order, id)
	for len(cs.order) > maxCursors {
		delete(cs.m, cs.order[0])
		cs.order = cs.order[1:]
	}
	return id
}

func (cs *cursorStore) get(id string, now time.Time) *cursor {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.m[id]
	if c != nil && now.Sub(c.created) > cursorTTL {
		delete(cs.m, id)
		return nil
	}
	return c
}

func (cs *cursorStore) clear() {
	cs.mu.Lock()
	cs.m = map[string]*cursor{}
	cs.order = nil
	cs.mu.Unlock()
}

// pageSize reads Sforce-Query-Options: batchSize=N (a hint within
// 200..2000), capped by the emulator's configured maximum page.
func (s *Server) pageSize(r *http.Request) int {
	size := DefaultPageSize
	for _, opt := range strings.Split(r.Header.Get("Sforce-Query-Options"), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(opt), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "batchSize") {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			size = min(max(n, minBatchSize), DefaultPageSize)
		}
	}
	return min(size, s.cfg.MaxPageSize)
}

func (s *Server) handleQuery(all bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		if strings.TrimSpace(q) == "" {
			writeError(w, newErr(http.StatusBadRequest, "MALFORMED_QUERY", "A query string has to be specified"))
			return
		}
		parsed, err := soql.Parse(q, s.schema)
		if err != nil {
			writeError(w, queryError(err))
			return
		}
		var recs []map[string]any
		var total int
		s.store.read(r.Context(), func(v *view) {
			recs, total, err = parsed.Execute(v, soql.ExecOptions{
				IncludeDeleted: all,
				InstancePath:   basePath(r),
				Now:            s.clock.Now(),
			})
		})
		if err != nil {
			writeError(w, queryError(err))
			return
		}
		size := s.pageSize(r)
		page, next := recs, ""
		if len(recs) > size {
			loc := s.cursors.add(&cursor{records: recs, pageSize: size, all: all, created: s.clock.Now()})
			page, next = recs[:size], locatorURL(basePath(r), all, loc, size)
		}
		var buf bytes.Buffer
		s.writeQueryResult(&buf, total, next == "", next, page)
		writeRaw(w, http.StatusOK, buf.Bytes())
	}
}

func locatorURL(base string, all bool, loc string, offset int) string {
	res := "/query/"
	if all {
		res = "/queryAll/"
	}
	return base + res + loc + "-" + strconv.Itoa(offset)
}

// handleQueryMore serves GET …/query/{locator}-{offset}.
func (s *Server) handleQueryMore(w http.ResponseWriter, r *http.Request) {
	raw := pathParam(r, "locator")
	invalid := newErr(http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
	loc, offStr, ok := strings.Cut(raw, "-")
	if !ok {
		writeError(w, invalid)
		return
	}
	offset, err := strconv.Atoi(offStr)
	c := s.cursors.get(loc, s.clock.Now())
	if err != nil || c == nil || offset < 0 || offset > len(c.records) {
		writeError(w, invalid)
		return
	}
	end := min(offset+c.pageSize, len(c.records))
	next := ""
	if end < len(c.records) {
		next = locatorURL(basePath(r), c.all, loc, end)
	}
	var buf bytes.Buffer
	s.writeQueryResult(&buf, len(c.records), next == "", next, c.records[offset:end])
	writeRaw(w, http.StatusOK, buf.Bytes())
}

// queryError maps a soql error to the REST error array.
func queryError(err error) *restError {
	var qe *soql.Error
	if errors.As(err, &qe) {
		return newErr(http.StatusBadRequest, qe.Code, qe.Message)
	}
	return newErr(http.StatusInternalServerError, "UNKNOWN_EXCEPTION", err.Error())
}
