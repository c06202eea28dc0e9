package soql

import (
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// Query is a parsed SOQL statement resolved against a schema. It is
// immutable after Parse and may be executed any number of times, also
// concurrently.
type Query struct {
	src    string
	obj    *sfschema.Object
	count  bool // SELECT COUNT()
	items  []selectItem
	where  expr // nil when there is no WHERE
	order  []orderKey
	limit  int // -1 when absent
	offset int // 0 when absent

	// rel is set on subqueries: the parent's child relationship whose
	// records this query selects.
	rel *sfschema.ChildRelationship
}

// Object returns the canonical API name of the queried sObject, e.g.
// "Opportunity" for "select id from opportunity".
func (q *Query) Object() string { return q.obj.Name }

// IsCount reports whether the query is SELECT COUNT(), whose answer is
// only totalSize.
func (q *Query) IsCount() bool { return q.count }

// selectItem is one entry of the SELECT list: a field path or a
// parent-to-child subquery.
type selectItem struct {
	path *fieldPath
	sub  *Query
}

// fieldPath is a field reached from the queried object through zero or
// more lookups, e.g. Account.Owner.Name.
type fieldPath struct {
	rels  []*sfschema.Field  // lookup fields traversed, in order
	objs  []*sfschema.Object // the object each lookup points to
	field *sfschema.Field    // the terminal field
	name  string             // canonical dotted name, for duplicates
}

// orderKey is one ORDER BY entry.
type orderKey struct {
	path       *fieldPath
	desc       bool
	nullsFirst bool
}

// expr is a WHERE condition node: *andExpr, *orExpr, *notExpr or *cmpExpr.
type expr interface{ isExpr() }

type andExpr struct{ items []expr }
type orExpr struct{ items []expr }
type notExpr struct{ x expr }

// cmpExpr compares a field with one or more literals already converted
// to the field's type.
type cmpExpr struct {
	path *fieldPath
	op   string // = != < <= > >= LIKE IN NOTIN
	vals []value
}

func (*andExpr) isExpr() {}
func (*orExpr) isExpr()  {}
func (*notExpr) isExpr() {}
func (*cmpExpr) isExpr() {}

// valKind is the comparison domain of a literal once checked against its
// field.
type valKind int

const (
	vNull     valKind = iota
	vText             // compared case-insensitively; text holds the upper-cased value
	vID               // text holds the canonical 18-character id
	vMulti            // multi-select picklist; set holds the upper-cased values
	vNum              // num
	vBool             // b
	vDate             // text holds yyyy-mm-dd
	vDateTime         // t
	vDateFn           // relative date literal: fn, n
	vLike             // like holds the compiled pattern
)

// value is a literal converted to the type of the field it is compared
// with, so evaluation does no parsing.
type value struct {
	kind valKind
	text string
	set  []string
	num  float64
	b    bool
	t    time.Time
	fn   string
	n    int
	like []likeElem
}
