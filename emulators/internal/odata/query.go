package odata

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options configure parsing. The zero value is not useful; start from
// Default or NewReferralOptions.
type Options struct {
	// Schema is the resource type the options are checked against.
	Schema *Type
	// Sortable lists the property paths $orderby accepts.
	Sortable []string
	// MaxNodeCount bounds the size of a $filter expression (ASP.NET OData's
	// default is 100). Zero means 100.
	MaxNodeCount int
}

// NewReferralOptions returns the options of the Partner Center referral
// list: the Referral schema, $orderby on createdDateTime and
// updatedDateTime (the only documented sortable fields), and a node limit
// of 100.
func NewReferralOptions() *Options {
	return &Options{
		Schema:       ReferralSchema(),
		Sortable:     []string{"createdDateTime", "updatedDateTime"},
		MaxNodeCount: 100,
	}
}

// Default is what the package-level ParseFilter and ParseQuery use.
var Default = NewReferralOptions()

func (o *Options) schema() *Type {
	if o.Schema == nil {
		return ReferralSchema()
	}
	return o.Schema
}

func (o *Options) maxNodes() int {
	if o.MaxNodeCount <= 0 {
		return 100
	}
	return o.MaxNodeCount
}

// Query is a parsed set of system query options.
type Query struct {
	Filter  Expr        // nil when absent
	OrderBy []OrderTerm // empty when absent
	Top     int         // -1 when absent
	Skip    int
	Select  []string // nil when absent; each a path like "id" or "customerProfile/name"
	Count   bool
}

// OrderTerm is one $orderby key.
type OrderTerm struct {
	Path string
	Desc bool
}

// ParseQuery reads $filter, $orderby, $top, $skip, $select and $count from
// v with the default (Referral) options. $skiptoken is accepted and ignored
// here (the server owns paging). Any other $-option, a system option
// spelled without its $ or in another case, or an option given twice is a
// *Error. Other (custom) parameters are ignored.
func ParseQuery(v url.Values) (*Query, error) { return Default.ParseQuery(v) }

var systemOptions = map[string]bool{
	"$filter": true, "$orderby": true, "$top": true, "$skip": true, "$select": true,
	"$count": true, "$skiptoken": true,
}

// Options that OData defines but this service does not support.
var knownUnsupported = []string{
	"$expand", "$search", "$apply", "$compute", "$format", "$levels", "$index",
	"$schemaversion", "$deltatoken", "$id",
}

// ParseQuery reads the system query options from v using o.
func (o *Options) ParseQuery(v url.Values) (*Query, error) {
	q := &Query{Top: -1}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic error when several options are wrong
	for _, k := range keys {
		if systemOptions[k] {
			if len(v[k]) > 1 {
				return nil, newError(k, "Query option '%s' was specified more than once, but it must be specified at most once.", k)
			}
			continue
		}
		lk := strings.ToLower(k)
		if strings.HasPrefix(k, "$") {
			if systemOptions[lk] {
				return nil, newError(k, "The query parameter '%s' is not supported. System query options are case-sensitive; use '%s'.", k, lk)
			}
			return nil, newError(k, "The query parameter '%s' is not supported.", k)
		}
		if systemOptions["$"+lk] || contains(knownUnsupported, "$"+lk) {
			return nil, newError(k, "The query parameter '%s' is not supported. System query options need the '$' prefix: '$%s'.", k, lk)
		}
	}
	if vals, ok := v["$filter"]; ok {
		f, err := o.ParseFilter(vals[0])
		if err != nil {
			return nil, err
		}
		q.Filter = f
	}
	if vals, ok := v["$orderby"]; ok {
		terms, err := o.parseOrderBy(vals[0])
		if err != nil {
			return nil, err
		}
		q.OrderBy = terms
	}
	if vals, ok := v["$top"]; ok {
		n, err := parseNonNegative("$top", vals[0])
		if err != nil {
			return nil, err
		}
		q.Top = n
	}
	if vals, ok := v["$skip"]; ok {
		n, err := parseNonNegative("$skip", vals[0])
		if err != nil {
			return nil, err
		}
		q.Skip = n
	}
	if vals, ok := v["$count"]; ok {
		switch vals[0] {
		case "true":
			q.Count = true
		case "false":
		default:
			return nil, newError("$count", "'%s' is not a valid count option; use true or false.", vals[0])
		}
	}
	if vals, ok := v["$select"]; ok {
		sel, err := o.parseSelect(vals[0])
		if err != nil {
			return nil, err
		}
		q.Select = sel
	}
	return q, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func parseNonNegative(opt, s string) (int, error) {
	bad := newError(opt, "Invalid value '%s' for %s query option found. The %s query option requires a non-negative integer value.", s, opt, opt)
	if s == "" || len(s) > 10 {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, bad
	}
	return int(n), nil
}

func (o *Options) parseOrderBy(s string) ([]OrderTerm, error) {
	if strings.TrimSpace(s) == "" {
		return nil, newError("$orderby", "The $orderby query option must not be empty.")
	}
	var terms []OrderTerm
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		fields := strings.Fields(item)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, newError("$orderby", "Syntax error in $orderby '%s': each item is a property path optionally followed by asc or desc, separated by commas.", s)
		}
		term := OrderTerm{Path: fields[0]}
		if len(fields) == 2 {
			switch fields[1] {
			case "asc":
			case "desc":
				term.Desc = true
			default:
				return nil, newError("$orderby", "Syntax error in $orderby '%s': expected asc or desc after '%s', found '%s'.", s, fields[0], fields[1])
			}
		}
		if _, err := o.resolvePath("$orderby", term.Path, false); err != nil {
			return nil, err
		}
		if !contains(o.Sortable, term.Path) {
			return nil, newError("$orderby", "The property '%s' cannot be used in the $orderby query option. Sortable properties: %s.", term.Path, strings.Join(o.Sortable, ", "))
		}
		if seen[term.Path] {
			return nil, newError("$orderby", "Duplicate property named '%s' is not supported in '$orderby'.", term.Path)
		}
		seen[term.Path] = true
		terms = append(terms, term)
	}
	return terms, nil
}

// resolvePath checks a '/'-separated path against the schema. Paths may go
// through complex (object) properties and into open values; a collection
// may only be the last segment, and only when allowCollection is set.
func (o *Options) resolvePath(opt, path string, allowCollection bool) (*Type, error) {
	if path == "" {
		return nil, newError(opt, "Empty property path in %s.", opt)
	}
	cur := o.schema()
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if seg == "" || !validIdent(seg) {
			return nil, newError(opt, "Syntax error in %s: '%s' is not a valid property path.", opt, path)
		}
		switch cur.Kind {
		case KindObject:
			pt, ok := cur.Prop(seg)
			if !ok {
				hint := ""
				if m := cur.foldMatch(seg); m != "" {
					hint = fmt.Sprintf(" Property names are case-sensitive; did you mean '%s'?", m)
				}
				return nil, newError(opt, "Could not find a property named '%s' on type '%s'.%s", seg, cur.Name, hint)
			}
			cur = pt
		case KindDynamic:
		case KindCollection:
			return nil, newError(opt, "'%s' in %s goes through the collection '%s'; paths can only go through single-valued properties.", path, opt, strings.Join(segs[:i], "/"))
		default:
			return nil, newError(opt, "'%s' in %s accesses a property of the primitive property '%s'.", path, opt, strings.Join(segs[:i], "/"))
		}
	}
	if cur.Kind == KindCollection && !allowCollection {
		return nil, newError(opt, "'%s' is a collection and cannot be used in %s.", path, opt)
	}
	return cur, nil
}

func validIdent(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// parseSelect accepts a comma list of property paths. Nested paths into
// complex properties (customerProfile/address/country) are allowed, as in
// OData 4.01; paths into collections are not. "*" selects everything and
// yields a nil Select.
func (o *Options) parseSelect(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, newError("$select", "The $select query option must not be empty.")
	}
	var out []string
	star := false
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		p := strings.TrimSpace(item)
		if p == "*" {
			star = true
			continue
		}
		if p == "" {
			return nil, newError("$select", "Syntax error in $select '%s': empty item.", s)
		}
		if _, err := o.resolvePath("$select", p, true); err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, newError("$select", "Found multiple select terms with same select path '%s' at one $select, please combine them together.", p)
		}
		seen[p] = true
		out = append(out, p)
	}
	if star {
		return nil, nil
	}
	return out, nil
}

// ---- $orderby ----

type sortKey struct {
	rank int // 0 null, 1 bool, 2 number, 3 date-time, 4 string, 5 other
	b    bool
	n    num
	t    time.Time
	s    string
}

func makeSortKey(v any) sortKey {
	switch x := v.(type) {
	case nil:
		return sortKey{rank: 0}
	case bool:
		return sortKey{rank: 1, b: x}
	case string:
		if t, ok := parseStoredDateTime(x); ok {
			return sortKey{rank: 3, t: t}
		}
		return sortKey{rank: 4, s: x}
	}
	if n, ok := toNum(v); ok {
		return sortKey{rank: 2, n: n}
	}
	return sortKey{rank: 5, s: fmt.Sprint(v)}
}

func cmpSortKey(a, b sortKey) int {
	if a.rank != b.rank {
		if a.rank < b.rank {
			return -1
		}
		return 1
	}
	switch a.rank {
	case 1:
		switch {
		case a.b == b.b:
			return 0
		case !a.b:
			return -1
		}
		return 1
	case 2:
		return cmpNum(a.n, b.n)
	case 3:
		return a.t.Compare(b.t)
	case 4, 5:
		return strings.Compare(a.s, b.s)
	}
	return 0
}

// lookup reads a '/'-separated path; missing or non-object intermediates
// give nil.
func lookup(doc map[string]any, path string) any {
	var cur any = doc
	for _, seg := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}

// Sort orders docs in place by terms (stable; ties broken by the "id" field,
// ascending, so paging is deterministic). Date-time strings compare as
// instants, numbers numerically; null sorts first ascending and last
// descending, as in OData.
func Sort(docs []map[string]any, terms []OrderTerm) {
	type item struct {
		doc  map[string]any
		keys []sortKey
		id   string
	}
	items := make([]item, len(docs))
	for i, d := range docs {
		keys := make([]sortKey, len(terms))
		for j, t := range terms {
			keys[j] = makeSortKey(lookup(d, t.Path))
		}
		id, _ := d["id"].(string)
		if id == "" && d["id"] != nil {
			id = fmt.Sprint(d["id"])
		}
		items[i] = item{d, keys, id}
	}
	sort.SliceStable(items, func(a, b int) bool {
		for j, t := range terms {
			c := cmpSortKey(items[a].keys[j], items[b].keys[j])
			if t.Desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return items[a].id < items[b].id
	})
	for i := range items {
		docs[i] = items[i].doc
	}
}

// ---- $select ----

type selNode struct {
	all      bool
	children map[string]*selNode
}

// Project returns a copy of doc with only the selected paths (plus nothing
// else). A selected property missing from doc is left out; when an
// intermediate object on a nested path is null, the result holds that
// property as null. Selecting a path and one of its sub-paths gives the
// whole property. Values are deep copies. nil or empty paths, or a "*"
// entry, copy the whole document.
func Project(doc map[string]any, paths []string) map[string]any {
	root := &selNode{children: map[string]*selNode{}}
	if len(paths) == 0 {
		root.all = true
	}
	for _, p := range paths {
		if p == "*" {
			root.all = true
			continue
		}
		n := root
		for _, seg := range strings.Split(p, "/") {
			if n.all {
				break
			}
			c := n.children[seg]
			if c == nil {
				c = &selNode{children: map[string]*selNode{}}
				n.children[seg] = c
			}
			n = c
		}
		n.all = true
	}
	out, _ := project(doc, root).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

func project(v any, n *selNode) any {
	if n.all {
		return deepCopy(v)
	}
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil
		}
		// A scalar where the path expects an object: nothing below it can
		// be selected; keep the scalar rather than invent structure.
		return deepCopy(v)
	}
	out := make(map[string]any, len(n.children))
	for k, c := range n.children {
		cv, present := m[k]
		if !present {
			continue
		}
		out[k] = project(cv, c)
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = deepCopy(e)
		}
		return a
	}
	return v
}
