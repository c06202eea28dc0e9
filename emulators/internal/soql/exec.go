package soql

import (
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// Store is the record source a query runs against; the package that
// executes queries declares it, the server's record store implements it.
type Store interface {
	// Scan calls fn for every record of object (records are map[string]any
	// keyed by canonical field API names, with "Id" and "IsDeleted" (bool)
	// always present; values: string, float64, bool, nil; dates
	// "2006-01-02", datetimes "2006-01-02T15:04:05.000+0000"). Stop when fn
	// returns false. Execute never modifies the maps it is given.
	Scan(object string, fn func(rec map[string]any) bool)
	// Get returns the record of object with the 18-character id.
	Get(object, id string) (map[string]any, bool)
}

// StampIndex is optionally implemented by a Store that keeps its records
// in SystemModstamp order. Execute uses it for a query with a top-level
// condition SystemModstamp >= (or >) a datetime, the shape of a change
// poll, so a poll reads what changed since then instead of every record.
type StampIndex interface {
	// ScanModifiedSince calls fn, in the order Scan would, for every
	// record of object whose SystemModstamp is at or after from (canonical
	// datetime text, as records hold it), and may call it for others;
	// it stops when fn returns false. It returns false, without calling
	// fn, when it cannot serve the scan.
	ScanModifiedSince(object, from string, fn func(rec map[string]any) bool) bool
}

// ReferenceIndex is optionally implemented by a Store that indexes lookup
// fields. Execute uses it for child subqueries and for filters of the form
// LookupField = 'id', so a query for one parent does not scan every child.
type ReferenceIndex interface {
	// ScanByReference calls fn for every record of object whose reference
	// field holds the 18-character id, stopping when fn returns false. It
	// returns false, without calling fn, when field is not indexed.
	ScanByReference(object, field, id string, fn func(rec map[string]any) bool) bool
}

// UniqueIndex is optionally implemented by a Store that indexes unique and
// External ID text fields. Execute uses it for a query with a top-level
// condition Field = 'text' or Field IN ('text', …), the shape of a
// read-back of upserted records by their External IDs, so it reads those
// records instead of every record. Execute does not use it for queryAll
// (IncludeDeleted), since it serves records outside the recycle bin only.
type UniqueIndex interface {
	// ScanByUnique calls fn, in the order Scan would and at most once
	// each, for every record of object with IsDeleted false whose field
	// holds text that upper-cased (strings.ToUpper) equals one of values,
	// which are upper-cased too; it may call it for other records, and
	// stops when fn returns false. It returns false, without calling fn,
	// when field is not indexed or it cannot serve the scan.
	ScanByUnique(object, field string, values []string, fn func(rec map[string]any) bool) bool
}

// ExecOptions are the per-request settings of Execute.
type ExecOptions struct {
	// IncludeDeleted makes the query behave as queryAll: records in the
	// recycle bin (IsDeleted = true) are returned too.
	IncludeDeleted bool
	// InstancePath prefixes attributes.url, e.g. "/services/data/v60.0";
	// empty means "/services/data/v60.0".
	InstancePath string
	// Now anchors relative date literals (TODAY, LAST_N_DAYS:n, …), which
	// are evaluated in UTC, the emulated integration user's time zone. Zero
	// means the current time.
	Now time.Time
}

// indexedFanout is how many parents a child subquery serves through a
// ReferenceIndex before one full scan of the child object is cheaper.
const indexedFanout = 64

// Execute runs the query and returns the records shaped exactly like the
// REST API's JSON: "attributes" {type, url}, parent relationships as nested
// records or null, child subqueries as {totalSize, done, records} or null.
// totalSize is the number of rows after LIMIT and OFFSET; for COUNT()
// queries records is empty and totalSize is the count.
func (q *Query) Execute(st Store, opt ExecOptions) (records []map[string]any, totalSize int, err error) {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	if opt.InstancePath == "" {
		opt.InstancePath = "/services/data/v60.0"
	}
	x := &executor{
		st:    st,
		opt:   opt,
		today: time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC),
		cache: map[string]map[string]any{},
	}
	x.idx, _ = st.(ReferenceIndex)

	rows := x.rootRows(q)
	x.sortRows(q, rows)
	rows = window(rows, q.offset, q.limit)
	if q.count {
		return []map[string]any{}, len(rows), nil
	}
	out := x.shape(q, rows)
	return out, len(out), nil
}

// window applies OFFSET and LIMIT (limit < 0: none).
func window(rows []map[string]any, offset, limit int) []map[string]any {
	if offset >= len(rows) {
		return rows[:0]
	}
	rows = rows[offset:]
	if limit >= 0 && limit < len(rows) {
		rows = rows[:limit]
	}
	return rows
}

// executor holds the state of one Execute call: the store, the clock and a
// cache of parent records so a lookup shared by many rows is read once.
type executor struct {
	st    Store
	idx   ReferenceIndex
	opt   ExecOptions
	today time.Time
	cache map[string]map[string]any
}

func (x *executor) visible(rec map[string]any) bool {
	if rec == nil {
		return false
	}
	deleted, _ := rec["IsDeleted"].(bool)
	return !deleted || x.opt.IncludeDeleted
}

// get returns a visible parent record, or nil.
func (x *executor) get(object, id string) map[string]any {
	key := object + "\x00" + id
	if rec, ok := x.cache[key]; ok {
		return rec
	}
	rec, ok := x.st.Get(object, id)
	if !ok || !x.visible(rec) {
		rec = nil
	}
	x.cache[key] = rec
	return rec
}

// value resolves a field path on rec; a null lookup anywhere gives nil.
// Empty strings read as null: Salesforce never stores empty text.
func (x *executor) value(rec map[string]any, fp *fieldPath) any {
	cur := rec
	for i, rel := range fp.rels {
		id, _ := cur[rel.Name].(string)
		if id == "" {
			return nil
		}
		cur = x.get(fp.objs[i].Name, id)
		if cur == nil {
			return nil
		}
	}
	v := cur[fp.field.Name]
	if s, ok := v.(string); ok && s == "" {
		return nil
	}
	return v
}

// rootRows returns the visible records of the outer query that satisfy
// WHERE, using Get for Id filters and the store's indexes for unique
// field, lookup and SystemModstamp filters instead of a full scan when the
// WHERE allows it. Every index path evaluates the whole WHERE on what it
// reads.
func (x *executor) rootRows(q *Query) []map[string]any {
	var rows []map[string]any
	keep := func(rec map[string]any) bool {
		if x.visible(rec) && (q.where == nil || x.eval(q.where, rec)) {
			rows = append(rows, rec)
		}
		return true
	}
	if ids := idFilter(q.where); ids != nil {
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			if rec, ok := x.st.Get(q.obj.Name, id); ok {
				keep(rec)
			}
		}
		return rows
	}
	if ui, ok := x.st.(UniqueIndex); ok && !x.opt.IncludeDeleted {
		for _, c := range textFilters(q.where) {
			values := make([]string, len(c.vals))
			for i, v := range c.vals {
				values[i] = v.text
			}
			if ui.ScanByUnique(q.obj.Name, c.path.field.Name, values, keep) {
				return rows
			}
		}
	}
	if x.idx != nil {
		if field, id, ok := refFilter(q.where); ok && x.idx.ScanByReference(q.obj.Name, field, id, keep) {
			return rows
		}
	}
	if si, ok := x.st.(StampIndex); ok {
		if from, ok := stampFilter(q.where); ok && si.ScanModifiedSince(q.obj.Name, from, keep) {
			return rows
		}
	}
	x.st.Scan(q.obj.Name, keep)
	return rows
}

// conjuncts returns the top-level AND terms of a condition.
func conjuncts(e expr) []expr {
	if a, ok := e.(*andExpr); ok {
		return a.items
	}
	if e == nil {
		return nil
	}
	return []expr{e}
}

// idFilter returns the ids of a top-level "Id = 'x'" or "Id IN (…)" term,
// which bounds the result to those records; nil when there is none.
func idFilter(e expr) []string {
	for _, t := range conjuncts(e) {
		c, ok := t.(*cmpExpr)
		if !ok || len(c.path.rels) > 0 || c.path.field.Type != sfschema.TypeID || (c.op != "=" && c.op != "IN") {
			continue
		}
		ids := make([]string, 0, len(c.vals))
		for _, v := range c.vals {
			if v.kind == vID {
				ids = append(ids, v.text)
			}
		}
		return ids
	}
	return nil
}

// textFilters returns the top-level "Field = 'text'" and "Field IN
// ('text', …)" terms on fields of the queried object, each of which bounds
// the result to the records whose field holds one of its texts.
func textFilters(e expr) []*cmpExpr {
	var out []*cmpExpr
	for _, t := range conjuncts(e) {
		c, ok := t.(*cmpExpr)
		if !ok || len(c.path.rels) > 0 || (c.op != "=" && c.op != "IN") || !allText(c.vals) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// allText reports whether every value is a text literal: a null in an IN
// list (an empty string reads as one) also matches records without a value.
func allText(vals []value) bool {
	for _, v := range vals {
		if v.kind != vText {
			return false
		}
	}
	return len(vals) > 0
}

// refFilter finds a top-level "LookupField = 'id'" term.
func refFilter(e expr) (field, id string, ok bool) {
	for _, t := range conjuncts(e) {
		c, isCmp := t.(*cmpExpr)
		if !isCmp || len(c.path.rels) > 0 || c.path.field.Type != sfschema.TypeReference || c.op != "=" || c.vals[0].kind != vID {
			continue
		}
		return c.path.field.Name, c.vals[0].text, true
	}
	return "", "", false
}

// stampFilter finds a top-level condition SystemModstamp >= or > a
// datetime literal and returns the literal's canonical text. Every record
// the query can match has a stamp at or after it; the full condition is
// still evaluated on each.
func stampFilter(e expr) (from string, ok bool) {
	for _, t := range conjuncts(e) {
		c, isCmp := t.(*cmpExpr)
		if !isCmp || len(c.path.rels) > 0 || c.path.field.Name != "SystemModstamp" || (c.op != ">=" && c.op != ">") ||
			c.vals[0].kind != vDateTime || c.vals[0].text == "" {
			continue
		}
		return c.vals[0].text, true
	}
	return "", false
}

func (x *executor) eval(e expr, rec map[string]any) bool {
	switch e := e.(type) {
	case *andExpr:
		for _, it := range e.items {
			if !x.eval(it, rec) {
				return false
			}
		}
		return true
	case *orExpr:
		for _, it := range e.items {
			if x.eval(it, rec) {
				return true
			}
		}
		return false
	case *notExpr:
		return !x.eval(e.x, rec)
	case *cmpExpr:
		return x.compare(e, x.value(rec, e.path))
	}
	return false
}

// compare evaluates one comparison. Null follows SOQL rather than SQL:
// "= null" and "!= null" test for null, a null field is unequal to every
// value (so "!=" and NOT IN include it) and fails every ordering test.
func (x *executor) compare(c *cmpExpr, v any) bool {
	switch c.op {
	case "=":
		return x.equal(c.path.field, v, c.vals[0], "=")
	case "!=":
		return !x.equal(c.path.field, v, c.vals[0], "=")
	case "IN", "NOTIN":
		in := false
		for _, val := range c.vals {
			if x.equal(c.path.field, v, val, "=") {
				in = true
				break
			}
		}
		return in == (c.op == "IN")
	case "LIKE":
		s, ok := v.(string)
		return ok && likeMatch(c.vals[0].like, s)
	}
	if v == nil {
		return false
	}
	val := c.vals[0]
	if val.kind == vDateFn {
		return x.inDateRange(c.path.field, v, val, c.op)
	}
	n, ok := order(v, val)
	if !ok {
		return false
	}
	switch c.op {
	case "<":
		return n < 0
	case "<=":
		return n <= 0
	case ">":
		return n > 0
	case ">=":
		return n >= 0
	}
	return false
}

func (x *executor) equal(f *sfschema.Field, v any, val value, op string) bool {
	if val.kind == vNull {
		return v == nil
	}
	if v == nil {
		return false
	}
	switch val.kind {
	case vDateFn:
		return x.inDateRange(f, v, val, op)
	case vMulti:
		s, ok := v.(string)
		if !ok {
			return false
		}
		got := splitMulti(s)
		if len(got) != len(val.set) {
			return false
		}
		want := map[string]bool{}
		for _, w := range val.set {
			want[w] = true
		}
		for _, g := range got {
			if !want[g] {
				return false
			}
		}
		return true
	}
	n, ok := order(v, val)
	return ok && n == 0
}

// compareUpper is strings.Compare(strings.ToUpper(s), upper) for an upper
// already upper-cased, without building the upper-cased copy of s: text
// filters compare every record this way. It compares rune by rune, which
// orders as the UTF-8 bytes do; an invalid byte of s counts as U+FFFD, as
// strings.ToUpper makes it.
func compareUpper(s, upper string) int {
	i, j := 0, 0
	for i < len(s) && j < len(upper) {
		a, n := rune(s[i]), 1
		switch {
		case a >= utf8.RuneSelf:
			a, n = utf8.DecodeRuneInString(s[i:])
			a = unicode.ToUpper(a)
		case 'a' <= a && a <= 'z':
			a -= 'a' - 'A'
		}
		b, m := rune(upper[j]), 1
		if b >= utf8.RuneSelf {
			b, m = utf8.DecodeRuneInString(upper[j:])
		}
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
		i, j = i+n, j+m
	}
	switch {
	case i < len(s):
		return 1
	case j < len(upper):
		return -1
	}
	return 0
}

// order compares a record value with a typed literal: negative when the
// value sorts first. ok is false when the stored value has the wrong Go
// type for the field, which then matches nothing.
func order(v any, val value) (int, bool) {
	switch val.kind {
	case vText:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		return compareUpper(s, val.text), true
	case vID:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		if id, ok := sfschema.CanonicalID(s); ok {
			s = id
		}
		return strings.Compare(s, val.text), true
	case vNum:
		n, ok := toFloat(v)
		if !ok {
			return 0, false
		}
		return cmpFloat(n, val.num), true
	case vBool:
		b, ok := v.(bool)
		if !ok {
			return 0, false
		}
		return cmpBool(b, val.b), true
	case vDate:
		s, ok := v.(string)
		if !ok || len(s) < 10 {
			return 0, false
		}
		return strings.Compare(s[:10], val.text), true
	case vDateTime:
		if s, ok := v.(string); ok && val.text != "" && canonicalDateTime(s) {
			return strings.Compare(s, val.text), true
		}
		t, ok := toTime(v)
		if !ok {
			return 0, false
		}
		return t.Compare(val.t), true
	}
	return 0, false
}

// inDateRange evaluates a comparison with a relative date literal, which
// stands for a range of whole days [lo, hi) in UTC.
func (x *executor) inDateRange(f *sfschema.Field, v any, val value, op string) bool {
	day := 24 * time.Hour
	lo, hi := x.today, x.today.Add(day)
	switch val.fn {
	case "YESTERDAY":
		lo, hi = x.today.Add(-day), x.today
	case "TOMORROW":
		lo, hi = x.today.Add(day), x.today.Add(2*day)
	case "LAST_N_DAYS":
		lo = x.today.AddDate(0, 0, -val.n)
	case "NEXT_N_DAYS":
		lo, hi = x.today.Add(day), x.today.AddDate(0, 0, 1+val.n)
	case "N_DAYS_AGO":
		lo = x.today.AddDate(0, 0, -val.n)
		hi = lo.Add(day)
	}
	var t time.Time
	if f.Type == sfschema.TypeDate {
		s, ok := v.(string)
		if !ok || len(s) < 10 {
			return false
		}
		d, err := time.Parse(sfschema.DateLayout, s[:10])
		if err != nil {
			return false
		}
		t = d
	} else {
		var ok bool
		if t, ok = toTime(v); !ok {
			return false
		}
	}
	switch op {
	case "=":
		return !t.Before(lo) && t.Before(hi)
	case "<":
		return t.Before(lo)
	case "<=":
		return t.Before(hi)
	case ">":
		return !t.Before(hi)
	case ">=":
		return !t.Before(lo)
	}
	return false
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// canonicalDateTime reports whether s is in the store's UTC layout
// (2006-01-02T15:04:05.000+0000), in which string order is time order.
func canonicalDateTime(s string) bool {
	return len(s) == len(sfschema.DateTimeLayout) && s[10] == 'T' && strings.HasSuffix(s, "+0000")
}

func toTime(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	if t, err := time.Parse(sfschema.DateTimeLayout, s); err == nil {
		return t, true
	}
	t, err := sfschema.ParseDateTime(s)
	return t, err == nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// sortRows orders rows by the query's ORDER BY keys; without ORDER BY the
// store's order is kept (Salesforce guarantees no order either).
func (x *executor) sortRows(q *Query, rows []map[string]any) {
	if len(q.order) == 0 || len(rows) < 2 {
		return
	}
	keys := make([][]any, len(rows))
	for i, rec := range rows {
		k := make([]any, len(q.order))
		for j, o := range q.order {
			k[j] = x.value(rec, o.path)
		}
		keys[i] = k
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		for j, o := range q.order {
			n := sortCompare(o, ka[j], kb[j])
			if n != 0 {
				return n < 0
			}
		}
		return false
	})
	sorted := make([]map[string]any, len(rows))
	for i, k := range idx {
		sorted[i] = rows[k]
	}
	copy(rows, sorted)
}

// sortCompare compares two values of one ORDER BY key, applying direction
// and null placement. Text sorts case-insensitively, as in Salesforce.
func sortCompare(o orderKey, a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		if o.nullsFirst {
			return -1
		}
		return 1
	case b == nil:
		if o.nullsFirst {
			return 1
		}
		return -1
	}
	n := 0
	switch o.path.field.Type {
	case sfschema.TypeID, sfschema.TypeReference:
		sa, _ := a.(string)
		sb, _ := b.(string)
		n = strings.Compare(sa, sb)
	case sfschema.TypeCurrency, sfschema.TypeDouble, sfschema.TypeInt, sfschema.TypePercent:
		fa, _ := toFloat(a)
		fb, _ := toFloat(b)
		n = cmpFloat(fa, fb)
	case sfschema.TypeBoolean:
		ba, _ := a.(bool)
		bb, _ := b.(bool)
		n = cmpBool(ba, bb)
	case sfschema.TypeDateTime:
		if sa, ok := a.(string); ok && canonicalDateTime(sa) {
			if sb, ok := b.(string); ok && canonicalDateTime(sb) {
				n = strings.Compare(sa, sb)
				break
			}
		}
		ta, _ := toTime(a)
		tb, _ := toTime(b)
		n = ta.Compare(tb)
	default:
		sa, _ := a.(string)
		sb, _ := b.(string)
		n = strings.Compare(strings.ToUpper(sa), strings.ToUpper(sb))
	}
	if o.desc {
		n = -n
	}
	return n
}

// attrs starts an output record with its "attributes".
func (x *executor) attrs(object string, rec map[string]any) map[string]any {
	id, _ := rec["Id"].(string)
	return map[string]any{
		"attributes": map[string]any{
			"type": object,
			"url":  x.opt.InstancePath + "/sobjects/" + object + "/" + id,
		},
	}
}

// shape renders rows of q as REST records, resolving each child subquery
// for all rows at once.
func (x *executor) shape(q *Query, rows []map[string]any) []map[string]any {
	subs := make([]map[string][]map[string]any, len(q.items))
	for i, it := range q.items {
		if it.sub != nil {
			subs[i] = x.children(it.sub, rows)
		}
	}
	out := make([]map[string]any, len(rows))
	for r, rec := range rows {
		m := x.attrs(q.obj.Name, rec)
		for i, it := range q.items {
			if it.sub == nil {
				x.put(m, rec, it.path)
				continue
			}
			id, _ := rec["Id"].(string)
			kids := subs[i][id]
			if len(kids) == 0 {
				m[it.sub.rel.RelationshipName] = nil
				continue
			}
			m[it.sub.rel.RelationshipName] = map[string]any{
				"totalSize": len(kids),
				"done":      true,
				"records":   kids,
			}
		}
		out[r] = m
	}
	return out
}

// put writes one selected path into an output record, creating nested
// parent records (or null for an empty lookup) on the way.
func (x *executor) put(m, rec map[string]any, fp *fieldPath) {
	dst, cur := m, rec
	for i, rel := range fp.rels {
		name := rel.RelationshipName
		existing, present := dst[name]
		if present && existing == nil {
			return
		}
		id, _ := cur[rel.Name].(string)
		var parent map[string]any
		if id != "" {
			parent = x.get(fp.objs[i].Name, id)
		}
		if parent == nil {
			dst[name] = nil
			return
		}
		if !present {
			dst[name] = x.attrs(fp.objs[i].Name, parent)
		}
		next, ok := dst[name].(map[string]any)
		if !ok {
			return
		}
		dst, cur = next, parent
	}
	v := cur[fp.field.Name]
	if s, ok := v.(string); ok && s == "" {
		v = nil
	}
	dst[fp.field.Name] = v
}

// children runs a parent-to-child subquery for all parents at once and
// returns the shaped child records keyed by parent id.
func (x *executor) children(sub *Query, parents []map[string]any) map[string][]map[string]any {
	child, field := sub.obj.Name, sub.rel.Field
	want := make(map[string]bool, len(parents))
	for _, p := range parents {
		if id, _ := p["Id"].(string); id != "" {
			want[id] = true
		}
	}
	groups := map[string][]map[string]any{}
	keep := func(rec map[string]any) bool {
		if !x.visible(rec) {
			return true
		}
		fk, _ := rec[field].(string)
		if fk == "" || !want[fk] {
			return true
		}
		if sub.where == nil || x.eval(sub.where, rec) {
			groups[fk] = append(groups[fk], rec)
		}
		return true
	}
	scanned := false
	if x.idx != nil && len(want) <= indexedFanout {
		scanned = true
		for id := range want {
			if !x.idx.ScanByReference(child, field, id, keep) {
				scanned = false
				groups = map[string][]map[string]any{}
				break
			}
		}
	}
	if !scanned && len(want) > 0 {
		x.st.Scan(child, keep)
	}

	// Order and limit each parent's children, then shape them in one batch
	// so nested subqueries also run once.
	var all []map[string]any
	type span struct {
		id         string
		start, end int
	}
	var spans []span
	for _, p := range parents {
		id, _ := p["Id"].(string)
		rows := groups[id]
		if len(rows) == 0 {
			continue
		}
		x.sortRows(sub, rows)
		rows = window(rows, 0, sub.limit)
		spans = append(spans, span{id: id, start: len(all), end: len(all) + len(rows)})
		all = append(all, rows...)
		delete(groups, id) // a parent listed twice gets its children once
	}
	shaped := x.shape(sub, all)
	out := make(map[string][]map[string]any, len(spans))
	for _, s := range spans {
		out[s.id] = shaped[s.start:s.end]
	}
	return out
}
