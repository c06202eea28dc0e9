package salesforce

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// entry is one stored record. rec is never mutated once stored: writers
// replace the entry's map (copy on write), so maps handed to readers stay
// consistent.
type entry struct {
	rec      map[string]any
	modstamp time.Time
	deleted  time.Time // zero while live
	seq      uint64    // creation order within the table
}

// table holds one sObject's records.
type table struct {
	obj   *sfschema.Object
	byID  map[string]*entry
	order []string // ids in creation order; ids increase with it
	// unique indexes External ID and unique fields: field name →
	// lower-cased value → ids of live records.
	unique map[string]map[string][]string
	// unfolded holds, per field of unique, the keys whose upper-case form
	// lower-cases to another key (ı and ſ upper-case to I and S). A query
	// compares text upper-cased; under every other key each value's
	// upper-case form lowers back to that key, so looking up the
	// lower-cased literal finds every value the query matches (and maybe
	// some it does not, such as İ under i, which its filter drops). Values
	// under these keys are read by every lookup instead; few records have
	// one.
	unfolded map[string]map[string]bool
	seq      uint64
	// created numbers records in creation order (entry.seq).
	created uint64
	// stamps is the SystemModstamp index: (stamp, id), sorted by stamp,
	// for every value a record's SystemModstamp has held since the last
	// rebuild. Every record's current stamp is in it; entries of older
	// stamps are skipped when read.
	stamps []stampEntry
}

// stampEntry is one SystemModstamp index entry.
type stampEntry struct{ stamp, id string }

// noteStamp adds rec's current SystemModstamp to the index. Stamps come
// from txn.stamp and never go back, so the index stays sorted by
// appending; a stamp out of order (a seeded record, an undone write)
// rebuilds it, as does growth past twice the records.
func (t *table) noteStamp(id string, rec map[string]any) {
	stamp, _ := rec["SystemModstamp"].(string)
	n := len(t.stamps)
	outOfOrder := n > 0 && stamp < t.stamps[n-1].stamp
	t.stamps = append(t.stamps, stampEntry{stamp: stamp, id: id})
	if outOfOrder || len(t.stamps) > 2*len(t.byID)+1024 {
		t.rebuildStamps()
	}
}

// rebuildStamps rebuilds the index from the records' current stamps.
func (t *table) rebuildStamps() {
	t.stamps = t.stamps[:0]
	for id, e := range t.byID {
		stamp, _ := e.rec["SystemModstamp"].(string)
		t.stamps = append(t.stamps, stampEntry{stamp: stamp, id: id})
	}
	sort.Slice(t.stamps, func(i, j int) bool {
		if t.stamps[i].stamp != t.stamps[j].stamp {
			return t.stamps[i].stamp < t.stamps[j].stamp
		}
		return t.stamps[i].id < t.stamps[j].id
	})
}

// deletion is one row of the delete log getDeleted reads.
type deletion struct {
	object string
	id     string
	at     time.Time
}

// store is the in-memory org data. One RWMutex guards everything: writes
// are short and a single lock makes allOrNone transactions simple.
type store struct {
	mu      sync.RWMutex
	schema  *sfschema.Schema
	tables  map[string]*table // by canonical object name
	deletes []deletion
	lastMod time.Time // latest modstamp handed out, so stamps never go back
}

func newStore(schema *sfschema.Schema) *store {
	st := &store{schema: schema}
	st.resetLocked()
	return st
}

func (st *store) resetLocked() {
	st.tables = map[string]*table{}
	for _, o := range st.schema.Objects() {
		t := &table{obj: o, byID: map[string]*entry{}, unique: map[string]map[string][]string{}, unfolded: map[string]map[string]bool{}}
		for _, f := range o.Fields {
			if f.Unique || f.ExternalID {
				t.unique[f.Name] = map[string][]string{}
				t.unfolded[f.Name] = map[string]bool{}
			}
		}
		st.tables[o.Name] = t
	}
	st.deletes = nil
}

func (st *store) reset() {
	st.mu.Lock()
	st.resetLocked()
	st.mu.Unlock()
}

// seed stores a record with a fixed id, for objects the API cannot create
// (User, OpportunityStage).
func (st *store) seed(object, id string, fields map[string]any, createdBy string, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tables[object]
	rec := make(map[string]any, len(t.obj.Fields)+1)
	for _, f := range t.obj.Fields {
		rec[f.Name] = nil
	}
	for k, v := range fields {
		rec[k] = v
	}
	ts := sfschema.FormatDateTime(now)
	rec["Id"], rec["IsDeleted"] = id, false
	rec["CreatedDate"], rec["LastModifiedDate"], rec["SystemModstamp"] = ts, ts, ts
	rec["CreatedById"], rec["LastModifiedById"] = createdBy, createdBy
	t.created++
	t.byID[id] = &entry{rec: rec, modstamp: now, seq: t.created}
	t.order = append(t.order, id)
	t.index(id, nil, rec)
	t.noteStamp(id, rec)
}

// keyOf is the unique-index key of a value: text compares
// case-insensitively, as External ID text fields do by default.
func keyOf(v any) (string, bool) {
	s, ok := v.(string)
	if !ok || s == "" {
		return "", false
	}
	return strings.ToLower(s), true
}

// index moves id's unique-index entries from old to rec (either may be
// nil).
func (t *table) index(id string, old, rec map[string]any) {
	for field, idx := range t.unique {
		var ok, nk string
		var hasOld, hasNew bool
		if old != nil {
			ok, hasOld = keyOf(old[field])
		}
		if rec != nil {
			nk, hasNew = keyOf(rec[field])
		}
		if hasOld == hasNew && ok == nk {
			continue
		}
		if hasOld {
			ids := idx[ok]
			for i, x := range ids {
				if x == id {
					ids = append(ids[:i:i], ids[i+1:]...)
					break
				}
			}
			if len(ids) == 0 {
				delete(idx, ok)
				delete(t.unfolded[field], ok)
			} else {
				idx[ok] = ids
			}
		}
		if hasNew {
			idx[nk] = append(idx[nk], id)
			if strings.ToLower(strings.ToUpper(nk)) != nk {
				t.unfolded[field][nk] = true
			}
		}
	}
}

// view is read access to the store, used under a read lock or inside a
// write transaction. It implements soql.Store.
type view struct{ st *store }

// Scan calls fn with every record of object (deleted ones included; the
// query engine filters on IsDeleted) in creation order until fn returns
// false.
func (v *view) Scan(object string, fn func(rec map[string]any) bool) {
	t := v.st.table(object)
	if t == nil {
		return
	}
	for _, id := range t.order {
		e := t.byID[id]
		if e == nil {
			continue
		}
		if !fn(e.rec) {
			return
		}
	}
}

// ScanModifiedSince calls fn, in creation order, for the records of object
// whose SystemModstamp is at or after from (canonical datetime text), the
// shape of a change poll, reading only what changed since then. It
// implements soql.StampIndex.
func (v *view) ScanModifiedSince(object, from string, fn func(rec map[string]any) bool) bool {
	t := v.st.table(object)
	if t == nil {
		return false
	}
	first := sort.Search(len(t.stamps), func(i int) bool { return t.stamps[i].stamp >= from })
	var hits []*entry
	seen := map[string]bool{}
	for _, se := range t.stamps[first:] {
		e := t.byID[se.id]
		if e == nil || seen[se.id] {
			continue
		}
		// An entry of a stamp the record no longer holds is skipped: its
		// current stamp has an entry of its own.
		if stamp, _ := e.rec["SystemModstamp"].(string); stamp != se.stamp {
			continue
		}
		seen[se.id] = true
		hits = append(hits, e)
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].seq < hits[j].seq })
	for _, e := range hits {
		if !fn(e.rec) {
			break
		}
	}
	return true
}

// ScanByUnique calls fn, in creation order and once each, for the live
// records of object whose unique or External ID field holds text that
// upper-cases to one of values, the shape of a read-back of upserted
// records, reading only those (and the few under unfolded keys). It
// implements soql.UniqueIndex; the index holds no deleted records.
func (v *view) ScanByUnique(object, field string, values []string, fn func(rec map[string]any) bool) bool {
	t := v.st.table(object)
	if t == nil || t.unique[field] == nil {
		return false
	}
	idx := t.unique[field]
	var hits []*entry
	seen := map[string]bool{}
	add := func(key string) {
		for _, id := range idx[key] {
			if e := t.byID[id]; e != nil && !seen[id] {
				seen[id] = true
				hits = append(hits, e)
			}
		}
	}
	for _, val := range values {
		add(strings.ToLower(val))
	}
	for key := range t.unfolded[field] {
		add(key)
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].seq < hits[j].seq })
	for _, e := range hits {
		if !fn(e.rec) {
			break
		}
	}
	return true
}

// Get returns the record of object with id (15 or 18 characters), deleted
// or not.
func (v *view) Get(object, id string) (map[string]any, bool) {
	e := v.entry(object, id)
	if e == nil {
		return nil, false
	}
	return e.rec, true
}

func (v *view) entry(object, id string) *entry {
	t := v.st.table(object)
	if t == nil {
		return nil
	}
	cid, ok := sfschema.CanonicalID(id)
	if !ok {
		return nil
	}
	return t.byID[cid]
}

// getLive returns a record that is not in the recycle bin.
func (v *view) getLive(object, id string) (map[string]any, bool) {
	e := v.entry(object, id)
	if e == nil || !e.deleted.IsZero() {
		return nil, false
	}
	return e.rec, true
}

// byUnique returns the live records whose unique/External ID field equals
// value (case-insensitively).
func (v *view) byUnique(object, field, value string) []string {
	t := v.st.table(object)
	if t == nil {
		return nil
	}
	idx := t.unique[field]
	if idx == nil {
		return nil
	}
	return append([]string(nil), idx[strings.ToLower(value)]...)
}

func (st *store) table(object string) *table {
	if t := st.tables[object]; t != nil {
		return t
	}
	if o := st.schema.Object(object); o != nil {
		return st.tables[o.Name]
	}
	return nil
}

// txn is a write transaction: it holds the write lock and an undo log so a
// failed allOrNone batch (or a failed step of one write) leaves no trace.
type txn struct {
	view
	undo []func()
}

func (tx *txn) savepoint() int { return len(tx.undo) }

// rollbackTo undoes every change made after savepoint sp.
func (tx *txn) rollbackTo(sp int) {
	for i := len(tx.undo) - 1; i >= sp; i-- {
		tx.undo[i]()
	}
	tx.undo = tx.undo[:sp]
}

// read runs fn with read access. Inside a Composite transaction (ctx
// carries it) the transaction's lock is already held.
func (st *store) read(ctx context.Context, fn func(v *view)) {
	if tx := txFrom(ctx); tx != nil {
		fn(&tx.view)
		return
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	fn(&view{st: st})
}

// write runs fn in a transaction: if fn fails, its changes are undone.
// Inside a surrounding Composite transaction, fn joins it.
func (st *store) write(ctx context.Context, fn func(tx *txn) *restError) *restError {
	if tx := txFrom(ctx); tx != nil {
		sp := tx.savepoint()
		err := fn(tx)
		if err != nil {
			tx.rollbackTo(sp)
		}
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	tx := &txn{view: view{st: st}}
	err := fn(tx)
	if err != nil {
		tx.rollbackTo(0)
	}
	return err
}

// begin starts a transaction the caller must end with commit or abort;
// Composite allOrNone requests use it to span their subrequests.
func (st *store) begin() *txn {
	st.mu.Lock()
	return &txn{view: view{st: st}}
}

func (tx *txn) commit() { tx.undo = nil; tx.st.mu.Unlock() }

func (tx *txn) abort() { tx.rollbackTo(0); tx.st.mu.Unlock() }

// stamp returns a modification time that never goes backwards.
func (tx *txn) stamp(now time.Time) time.Time {
	if now.Before(tx.st.lastMod) {
		now = tx.st.lastMod
	}
	prev := tx.st.lastMod
	tx.st.lastMod = now
	tx.undo = append(tx.undo, func() { tx.st.lastMod = prev })
	return now
}

// nextID allocates an id for object.
func (tx *txn) nextID(t *table) string {
	t.seq++
	return sfschema.NewID(t.obj.KeyPrefix, t.seq)
}

// insert stores a new record (rec["Id"] already set).
func (tx *txn) insert(t *table, rec map[string]any, modstamp time.Time) {
	id, _ := rec["Id"].(string)
	t.created++
	t.byID[id] = &entry{rec: rec, modstamp: modstamp, seq: t.created}
	t.order = append(t.order, id)
	t.index(id, nil, rec)
	t.noteStamp(id, rec)
	tx.undo = append(tx.undo, func() {
		t.index(id, rec, nil)
		delete(t.byID, id)
		if n := len(t.order); n > 0 && t.order[n-1] == id {
			t.order = t.order[:n-1]
		}
	})
}

// replace swaps a record's map for rec.
func (tx *txn) replace(t *table, id string, rec map[string]any, modstamp time.Time) {
	old := t.byID[id]
	t.byID[id] = &entry{rec: rec, modstamp: modstamp, deleted: old.deleted, seq: old.seq}
	t.index(id, old.rec, rec)
	t.noteStamp(id, rec)
	tx.undo = append(tx.undo, func() {
		t.index(id, rec, old.rec)
		t.byID[id] = old
		t.noteStamp(id, old.rec)
	})
}

// markDeleted moves a record to the recycle bin.
func (tx *txn) markDeleted(t *table, id string, rec map[string]any, at time.Time) {
	old := t.byID[id]
	t.byID[id] = &entry{rec: rec, modstamp: at, deleted: at, seq: old.seq}
	t.index(id, old.rec, nil)
	t.noteStamp(id, rec)
	n := len(tx.st.deletes)
	tx.st.deletes = append(tx.st.deletes, deletion{object: t.obj.Name, id: id, at: at})
	tx.undo = append(tx.undo, func() {
		tx.st.deletes = tx.st.deletes[:n]
		t.index(id, nil, old.rec)
		t.byID[id] = old
		t.noteStamp(id, old.rec)
	})
}

// dump returns every record by object (deleted ones included), for the
// control API.
func (v *view) dump() map[string][]map[string]any {
	out := map[string][]map[string]any{}
	names := make([]string, 0, len(v.st.tables))
	for n := range v.st.tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		recs := []map[string]any{}
		v.Scan(n, func(rec map[string]any) bool { recs = append(recs, rec); return true })
		out[n] = recs
	}
	return out
}
