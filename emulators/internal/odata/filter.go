package odata

import (
	"fmt"
	"strings"
	"time"
)

// Expr is a parsed $filter expression. Eval is safe for concurrent use.
//
// Eval returns a *Error when the client's expression cannot be applied to
// the document (only possible for comparisons involving open, untyped
// properties, whose type is known only at run time). Any other error means
// the document does not match the schema, which is a server bug.
type Expr interface {
	Eval(doc map[string]any) (bool, error)
}

// sType is the static type of an expression node.
type sType int

const (
	stString     sType = iota
	stGuidString       // string property holding GUIDs
	stGuid             // unquoted GUID literal
	stNumber
	stBool
	stDateTime
	stNull
	stObject
	stCollection
	stDynamic
)

type typeInfo struct {
	st   sType
	t    *Type  // schema type for property paths; nil for literals
	name string // for messages
}

func literalType(st sType) typeInfo {
	names := map[sType]string{
		stString: "Edm.String", stGuid: "Edm.Guid", stNumber: "Edm.Decimal", stBool: "Edm.Boolean",
		stDateTime: "Edm.DateTimeOffset", stNull: "<null>",
	}
	return typeInfo{st: st, name: names[st]}
}

func schemaType(t *Type) typeInfo {
	var st sType
	switch t.Kind {
	case KindString:
		st = stString
	case KindGuidString:
		st = stGuidString
	case KindNumber:
		st = stNumber
	case KindBoolean:
		st = stBool
	case KindDateTimeOffset:
		st = stDateTime
	case KindObject:
		st = stObject
	case KindCollection:
		st = stCollection
	default:
		st = stDynamic
	}
	return typeInfo{st: st, t: t, name: t.Name}
}

// ---- runtime values ----

type vkind uint8

const (
	vNull vkind = iota
	vString
	vGuid
	vNum
	vBool
	vTime
	vObject
	vArray
)

var vkindNames = [...]string{"null", "string", "guid", "number", "boolean", "date-time", "object", "array"}

type value struct {
	k vkind
	s string
	n num
	b bool
	t time.Time
	a []any
}

type evalCtx struct {
	root map[string]any
	vars []any
}

type node interface {
	eval(c *evalCtx) (value, error)
}

type filterExpr struct {
	root node
	src  string
}

func (f *filterExpr) Eval(doc map[string]any) (bool, error) {
	c := &evalCtx{root: doc}
	v, err := f.root.eval(c)
	if err != nil {
		return false, err
	}
	return truth(v, f.src)
}

func (f *filterExpr) String() string { return f.src }

// RequiredStrings reports the strings one of which a document's top-level
// string property must equal for the filter to match it: the filter is
// `prop eq 'v'` (either way round), an `or` whose sides both require such
// strings (their union), or an `and` with such a side (the smaller set when
// both have one). A store may then look documents up by an index on prop
// and evaluate the whole filter on those alone; the answer is the same as
// evaluating it on every document. The strings are distinct, in the order
// the filter names them.
func (f *filterExpr) RequiredStrings(prop string) ([]string, bool) {
	vs, ok := requiredStrings(f.root, prop)
	if !ok {
		return nil, false
	}
	seen := make(map[string]bool, len(vs))
	out := vs[:0]
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out, true
}

func requiredStrings(n node, prop string) ([]string, bool) {
	switch n := n.(type) {
	case *andNode:
		l, lok := requiredStrings(n.l, prop)
		r, rok := requiredStrings(n.r, prop)
		switch {
		case lok && rok && len(r) < len(l):
			return r, true
		case lok:
			return l, true
		default:
			return r, rok
		}
	case *orNode:
		l, ok := requiredStrings(n.l, prop)
		if !ok {
			return nil, false
		}
		r, ok := requiredStrings(n.r, prop)
		if !ok {
			return nil, false
		}
		return append(append(make([]string, 0, len(l)+len(r)), l...), r...), true
	case *cmpNode:
		if n.op != "eq" {
			return nil, false
		}
		if v, ok := stringEquality(n.l, n.r, prop); ok {
			return []string{v}, true
		}
		if v, ok := stringEquality(n.r, n.l, prop); ok {
			return []string{v}, true
		}
	}
	return nil, false
}

// stringEquality matches a top-level, schema-typed string property p
// against a string literal l.
func stringEquality(p, l node, prop string) (string, bool) {
	path, ok := p.(*pathNode)
	if !ok || path.scope >= 0 || len(path.segs) != 1 || path.segs[0] != prop || path.dynFrom < 1 || path.typ.Kind != KindString {
		return "", false
	}
	lit, ok := l.(*literalNode)
	if !ok || lit.v.k != vString {
		return "", false
	}
	return lit.v.s, true
}

// truth maps a boolean-typed result to a Go bool; null counts as false.
func truth(v value, src string) (bool, error) {
	switch v.k {
	case vBool:
		return v.b, nil
	case vNull:
		return false, nil
	}
	return false, newError("$filter", "A %s value was found where a boolean was expected while evaluating '%s'.", vkindNames[v.k], src)
}

// boolOrNull evaluates n and returns (value, known): known is false for null.
func boolOrNull(c *evalCtx, n node, src string) (b, known bool, err error) {
	v, err := n.eval(c)
	if err != nil {
		return false, false, err
	}
	if v.k == vNull {
		return false, false, nil
	}
	b, err = truth(v, src)
	return b, true, err
}

type literalNode struct{ v value }

func (n *literalNode) eval(*evalCtx) (value, error) { return n.v, nil }

type andNode struct {
	l, r node
	src  string
}

func (n *andNode) eval(c *evalCtx) (value, error) {
	lb, lk, err := boolOrNull(c, n.l, n.src)
	if err != nil {
		return value{}, err
	}
	if lk && !lb {
		return value{k: vBool}, nil
	}
	rb, rk, err := boolOrNull(c, n.r, n.src)
	if err != nil {
		return value{}, err
	}
	if rk && !rb {
		return value{k: vBool}, nil
	}
	if !lk || !rk {
		return value{k: vNull}, nil
	}
	return value{k: vBool, b: true}, nil
}

type orNode struct {
	l, r node
	src  string
}

func (n *orNode) eval(c *evalCtx) (value, error) {
	lb, lk, err := boolOrNull(c, n.l, n.src)
	if err != nil {
		return value{}, err
	}
	if lk && lb {
		return value{k: vBool, b: true}, nil
	}
	rb, rk, err := boolOrNull(c, n.r, n.src)
	if err != nil {
		return value{}, err
	}
	if rk && rb {
		return value{k: vBool, b: true}, nil
	}
	if !lk || !rk {
		return value{k: vNull}, nil
	}
	return value{k: vBool}, nil
}

type notNode struct {
	x   node
	src string
}

func (n *notNode) eval(c *evalCtx) (value, error) {
	b, known, err := boolOrNull(c, n.x, n.src)
	if err != nil || !known {
		return value{k: vNull}, err
	}
	return value{k: vBool, b: !b}, nil
}

// pathNode reads a property path from the document root (scope -1) or from
// the current element of an enclosing lambda (scope = its index).
type pathNode struct {
	scope   int
	segs    []string
	typ     *Type
	dynFrom int // segs[dynFrom:] are read from inside an open (Dynamic) value
	display string
}

func (n *pathNode) eval(c *evalCtx) (value, error) {
	var cur any
	if n.scope < 0 {
		cur = c.root
	} else {
		cur = c.vars[n.scope]
	}
	for i, seg := range n.segs {
		if cur == nil {
			return value{k: vNull}, nil
		}
		m, ok := cur.(map[string]any)
		if !ok {
			if i >= n.dynFrom {
				return value{}, newError("$filter", "Cannot read property '%s' of '%s': the value is a %T, not an object.", seg, n.display, cur)
			}
			return value{}, fmt.Errorf("odata: document %v: cannot read '%s' of %s: found %T, the schema expects an object", c.root["id"], seg, n.display, cur)
		}
		cur = m[seg]
	}
	if cur == nil {
		return value{k: vNull}, nil
	}
	dataErr := func(want string) (value, error) {
		return value{}, fmt.Errorf("odata: document %v: property %s holds %T, the schema expects %s", c.root["id"], n.display, cur, want)
	}
	switch n.typ.Kind {
	case KindString, KindGuidString:
		s, ok := cur.(string)
		if !ok {
			return dataErr("a string")
		}
		return value{k: vString, s: s}, nil
	case KindNumber:
		x, ok := toNum(cur)
		if !ok {
			return dataErr("a number")
		}
		return value{k: vNum, n: x}, nil
	case KindBoolean:
		b, ok := cur.(bool)
		if !ok {
			return dataErr("a boolean")
		}
		return value{k: vBool, b: b}, nil
	case KindDateTimeOffset:
		s, ok := cur.(string)
		if !ok {
			return dataErr("a date-time string")
		}
		t, ok := parseStoredDateTime(s)
		if !ok {
			return value{}, fmt.Errorf("odata: document %v: property %s holds %q, which is not a date-time", c.root["id"], n.display, s)
		}
		return value{k: vTime, t: t}, nil
	case KindObject:
		if _, ok := cur.(map[string]any); !ok {
			return dataErr("an object")
		}
		return value{k: vObject}, nil
	case KindCollection:
		a, ok := cur.([]any)
		if !ok {
			return dataErr("an array")
		}
		return value{k: vArray, a: a}, nil
	}
	return dynamicValue(cur), nil
}

func dynamicValue(v any) value {
	switch x := v.(type) {
	case nil:
		return value{k: vNull}
	case string:
		return value{k: vString, s: x}
	case bool:
		return value{k: vBool, b: x}
	case map[string]any:
		return value{k: vObject}
	case []any:
		return value{k: vArray, a: x}
	}
	if n, ok := toNum(v); ok {
		return value{k: vNum, n: n}
	}
	return value{k: vObject}
}

type lambdaNode struct {
	coll  node
	all   bool
	body  node // nil for any()
	scope int
	src   string
}

func (n *lambdaNode) eval(c *evalCtx) (value, error) {
	cv, err := n.coll.eval(c)
	if err != nil {
		return value{}, err
	}
	var elems []any
	switch cv.k {
	case vNull:
	case vArray:
		elems = cv.a
	default:
		return value{}, newError("$filter", "The any/all operator was applied to a %s value; it needs a collection ('%s').", vkindNames[cv.k], n.src)
	}
	if n.body == nil {
		return value{k: vBool, b: len(elems) > 0}, nil
	}
	// The scope slot for this lambda is fixed at parse time.
	for len(c.vars) <= n.scope {
		c.vars = append(c.vars, nil)
	}
	saved := c.vars[n.scope]
	defer func() { c.vars[n.scope] = saved }()
	for _, e := range elems {
		c.vars[n.scope] = e
		b, _, err := boolOrNull(c, n.body, n.src)
		if err != nil {
			return value{}, err
		}
		if n.all && !b {
			return value{k: vBool}, nil
		}
		if !n.all && b {
			return value{k: vBool, b: true}, nil
		}
	}
	return value{k: vBool, b: n.all}, nil
}

type cmpNode struct {
	op   string
	l, r node
	src  string
}

func (n *cmpNode) eval(c *evalCtx) (value, error) {
	lv, err := n.l.eval(c)
	if err != nil {
		return value{}, err
	}
	rv, err := n.r.eval(c)
	if err != nil {
		return value{}, err
	}
	b, err := compare(n.op, lv, rv, n.src)
	return value{k: vBool, b: b}, err
}

func compare(op string, l, r value, src string) (bool, error) {
	if l.k == vNull || r.k == vNull {
		both := l.k == vNull && r.k == vNull
		switch op {
		case "eq":
			return both, nil
		case "ne":
			return !both, nil
		}
		return false, nil
	}
	mismatch := func() (bool, error) {
		return false, newError("$filter", "Cannot compare a %s value with a %s value using '%s' in '%s'.", vkindNames[l.k], vkindNames[r.k], op, src)
	}
	var c int
	switch {
	case l.k == vGuid || r.k == vGuid:
		a, b := l, r
		if a.k != vGuid {
			a, b = b, a
		}
		var other string
		switch b.k {
		case vGuid:
			other = b.s
		case vString:
			g, ok := parseGuid(b.s)
			if !ok {
				return op == "ne", nil
			}
			other = g
		default:
			return mismatch()
		}
		if op != "eq" && op != "ne" {
			return mismatch()
		}
		return (a.s == other) == (op == "eq"), nil
	case l.k == vString && r.k == vString:
		c = strings.Compare(l.s, r.s)
	case l.k == vNum && r.k == vNum:
		c = cmpNum(l.n, r.n)
	case l.k == vBool && r.k == vBool:
		if op != "eq" && op != "ne" {
			return mismatch()
		}
		return (l.b == r.b) == (op == "eq"), nil
	case l.k == vTime && r.k == vTime:
		c = l.t.Compare(r.t)
	case l.k == vTime && r.k == vString, l.k == vString && r.k == vTime:
		// Only reachable through an open (untyped) property holding a string.
		a, b := l, r
		if a.k == vString {
			t, ok := parseStoredDateTime(a.s)
			if !ok {
				return mismatch()
			}
			a = value{k: vTime, t: t}
		}
		if b.k == vString {
			t, ok := parseStoredDateTime(b.s)
			if !ok {
				return mismatch()
			}
			b = value{k: vTime, t: t}
		}
		c = a.t.Compare(b.t)
	default:
		return mismatch()
	}
	switch op {
	case "eq":
		return c == 0, nil
	case "ne":
		return c != 0, nil
	case "gt":
		return c > 0, nil
	case "ge":
		return c >= 0, nil
	case "lt":
		return c < 0, nil
	case "le":
		return c <= 0, nil
	}
	return false, fmt.Errorf("odata: unknown operator %q", op)
}

// ---- parser ----

var operatorKinds = map[string]string{
	"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
	"lt": "LessThan", "le": "LessThanOrEqual", "and": "And", "or": "Or",
}

// keywords that can never start an operand.
var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "eq": true, "ne": true, "gt": true, "ge": true,
	"lt": true, "le": true, "has": true, "in": true, "add": true, "sub": true, "mul": true,
	"div": true, "divby": true, "mod": true,
}

var unsupportedBinary = map[string]bool{
	"has": true, "in": true, "add": true, "sub": true, "mul": true, "div": true, "divby": true, "mod": true,
}

// Canonical OData functions: recognised so the error says "not supported"
// rather than "unknown".
var odataFunctions = map[string]bool{
	"contains": true, "startswith": true, "endswith": true, "length": true, "indexof": true,
	"substring": true, "tolower": true, "toupper": true, "trim": true, "concat": true,
	"matchespattern": true, "year": true, "month": true, "day": true, "hour": true, "minute": true,
	"second": true, "fractionalseconds": true, "totalseconds": true, "date": true, "time": true,
	"totaloffsetminutes": true, "now": true, "mindatetime": true, "maxdatetime": true,
	"round": true, "floor": true, "ceiling": true, "isof": true, "cast": true,
	"geo.distance": true, "geo.intersects": true, "geo.length": true, "hassubset": true,
	"hassubsequence": true, "case": true, "substringof": true,
}

type scopeVar struct {
	name string
	typ  *Type
}

type parser struct {
	src      string
	toks     []token
	i        int
	opts     *Options
	nodes    int
	depth    int
	scopes   []scopeVar
	maxScope int
}

const maxDepth = 100

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tkEOF {
		p.i++
	}
	return t
}

func (p *parser) isKw(kw string) bool {
	t := p.peek()
	return t.kind == tkIdent && t.text == kw
}

func (p *parser) errf(format string, args ...any) *Error {
	return newError("$filter", format, args...)
}

func (p *parser) syntaxAt(t token) *Error {
	if t.kind == tkEOF {
		return p.errf("Expression expected at position %d in '%s'.", t.pos+1, p.src)
	}
	return p.errf("Syntax error at position %d in '%s'.", t.pos+1, p.src)
}

func (p *parser) count() error {
	p.nodes++
	if max := p.opts.maxNodes(); p.nodes > max {
		return p.errf("The node count limit of '%d' has been exceeded. To increase the limit, set the 'MaxNodeCount' property on EnableQueryAttribute or ODataValidationSettings.", max)
	}
	return nil
}

func (p *parser) binaryTypeError(op string, a, b typeInfo) *Error {
	return p.errf("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.", a.name, b.name, operatorKinds[op])
}

func isBoolish(t typeInfo) bool { return t.st == stBool || t.st == stDynamic }

func (p *parser) parseOr() (node, typeInfo, error) {
	l, lt, err := p.parseAnd()
	if err != nil {
		return nil, lt, err
	}
	for p.isKw("or") {
		p.next()
		r, rt, err := p.parseAnd()
		if err != nil {
			return nil, rt, err
		}
		if !isBoolish(lt) || !isBoolish(rt) {
			return nil, lt, p.binaryTypeError("or", lt, rt)
		}
		if err := p.count(); err != nil {
			return nil, lt, err
		}
		l, lt = &orNode{l, r, p.src}, literalType(stBool)
	}
	return l, lt, nil
}

func (p *parser) parseAnd() (node, typeInfo, error) {
	l, lt, err := p.parseEquality()
	if err != nil {
		return nil, lt, err
	}
	for p.isKw("and") {
		p.next()
		r, rt, err := p.parseEquality()
		if err != nil {
			return nil, rt, err
		}
		if !isBoolish(lt) || !isBoolish(rt) {
			return nil, lt, p.binaryTypeError("and", lt, rt)
		}
		if err := p.count(); err != nil {
			return nil, lt, err
		}
		l, lt = &andNode{l, r, p.src}, literalType(stBool)
	}
	return l, lt, nil
}

func (p *parser) parseEquality() (node, typeInfo, error) {
	l, lt, err := p.parseRelational()
	if err != nil {
		return nil, lt, err
	}
	for p.isKw("eq") || p.isKw("ne") {
		op := p.next().text
		r, rt, err := p.parseRelational()
		if err != nil {
			return nil, rt, err
		}
		if !eqCompatible(lt.st, rt.st) {
			return nil, lt, p.binaryTypeError(op, lt, rt)
		}
		if err := p.count(); err != nil {
			return nil, lt, err
		}
		l, lt = &cmpNode{op, l, r, p.src}, literalType(stBool)
	}
	return l, lt, nil
}

func (p *parser) parseRelational() (node, typeInfo, error) {
	l, lt, err := p.parseUnary()
	if err != nil {
		return nil, lt, err
	}
	for {
		t := p.peek()
		if t.kind == tkIdent && unsupportedBinary[t.text] {
			return nil, lt, p.errf("The '%s' operator (position %d in '%s') is not supported by this service.", t.text, t.pos+1, p.src)
		}
		if !(p.isKw("gt") || p.isKw("ge") || p.isKw("lt") || p.isKw("le")) {
			return l, lt, nil
		}
		op := p.next().text
		r, rt, err := p.parseUnary()
		if err != nil {
			return nil, rt, err
		}
		if !relCompatible(lt.st, rt.st) {
			return nil, lt, p.binaryTypeError(op, lt, rt)
		}
		if err := p.count(); err != nil {
			return nil, lt, err
		}
		l, lt = &cmpNode{op, l, r, p.src}, literalType(stBool)
	}
}

func eqCompatible(a, b sType) bool {
	if a == stCollection || b == stCollection {
		return false
	}
	if a == stNull || b == stNull {
		return true
	}
	if a == stObject || b == stObject {
		return false
	}
	if a == stDynamic || b == stDynamic {
		return true
	}
	switch {
	case a == b:
		return true
	case (a == stString || a == stGuidString) && (b == stString || b == stGuidString):
		return true
	case a == stGuid && b == stGuidString, a == stGuidString && b == stGuid:
		return true
	}
	return false
}

func relCompatible(a, b sType) bool {
	ordered := func(s sType) bool {
		return s == stString || s == stGuidString || s == stNumber || s == stDateTime || s == stDynamic || s == stNull
	}
	if !ordered(a) || !ordered(b) {
		return false
	}
	if a == stNull || b == stNull || a == stDynamic || b == stDynamic {
		return true
	}
	str := func(s sType) bool { return s == stString || s == stGuidString }
	return a == b || str(a) && str(b)
}

func (p *parser) parseUnary() (node, typeInfo, error) {
	if p.isKw("not") {
		p.next()
		p.depth++
		if p.depth > maxDepth {
			return nil, typeInfo{}, p.errf("The $filter expression is nested too deeply.")
		}
		x, xt, err := p.parseUnary()
		p.depth--
		if err != nil {
			return nil, xt, err
		}
		if !isBoolish(xt) {
			return nil, xt, p.errf("A unary operator with an incompatible type was detected. Found operand type '%s' for operator kind 'Not'. Put the operand in parentheses: not (a eq b).", xt.name)
		}
		if err := p.count(); err != nil {
			return nil, xt, err
		}
		return &notNode{x, p.src}, literalType(stBool), nil
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (node, typeInfo, error) {
	t := p.next()
	lit := func(v value, st sType) (node, typeInfo, error) {
		if err := p.count(); err != nil {
			return nil, typeInfo{}, err
		}
		return &literalNode{v}, literalType(st), nil
	}
	switch t.kind {
	case tkLParen:
		p.depth++
		if p.depth > maxDepth {
			return nil, typeInfo{}, p.errf("The $filter expression is nested too deeply.")
		}
		x, xt, err := p.parseOr()
		p.depth--
		if err != nil {
			return nil, xt, err
		}
		if c := p.next(); c.kind != tkRParen {
			if c.kind == tkComma {
				return nil, xt, p.errf("Lists such as (a,b) at position %d in '%s' are not supported.", c.pos+1, p.src)
			}
			return nil, xt, p.errf("')' or operator expected at position %d in '%s'.", c.pos+1, p.src)
		}
		return x, xt, nil
	case tkString:
		return lit(value{k: vString, s: t.text}, stString)
	case tkNumber:
		n, _ := parseNum(t.text)
		return lit(value{k: vNum, n: n}, stNumber)
	case tkDateTime:
		tm, _ := parseLiteralDateTime(t.text)
		return lit(value{k: vTime, t: tm}, stDateTime)
	case tkGuid:
		g, _ := parseGuid(t.text)
		return lit(value{k: vGuid, s: g}, stGuid)
	case tkIdent:
		switch t.text {
		case "true", "false":
			return lit(value{k: vBool, b: t.text == "true"}, stBool)
		case "null":
			return lit(value{k: vNull}, stNull)
		}
		if keywords[t.text] {
			return nil, typeInfo{}, p.syntaxAt(t)
		}
		if p.peek().kind == tkLParen {
			if odataFunctions[strings.ToLower(t.text)] {
				return nil, typeInfo{}, p.errf("The function '%s' is not supported by this service.", t.text)
			}
			return nil, typeInfo{}, p.errf("An unknown function with name '%s' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.", t.text)
		}
		return p.parsePath(t)
	}
	return nil, typeInfo{}, p.syntaxAt(t)
}

func (p *parser) parsePath(first token) (node, typeInfo, error) {
	scope := -1
	var cur *Type
	for i := len(p.scopes) - 1; i >= 0; i-- {
		if p.scopes[i].name == first.text {
			scope, cur = i, p.scopes[i].typ
			break
		}
	}
	var segs []string
	display := first.text
	dynFrom := 1 << 30
	if scope < 0 {
		pt, err := p.property(p.opts.schema(), first.text)
		if err != nil {
			return nil, typeInfo{}, err
		}
		cur = pt
		segs = append(segs, first.text)
	}
	if cur.Kind == KindDynamic {
		// segs[dynFrom:] are read from inside an open value.
		dynFrom = len(segs)
	}
	for p.peek().kind == tkSlash {
		p.next()
		seg := p.next()
		if seg.kind != tkIdent {
			return nil, typeInfo{}, p.syntaxAt(seg)
		}
		if (seg.text == "any" || seg.text == "all") && p.peek().kind == tkLParen {
			pn := &pathNode{scope: scope, segs: segs, typ: cur, dynFrom: dynFrom, display: display}
			return p.parseLambda(pn, seg, cur)
		}
		switch cur.Kind {
		case KindObject:
			pt, err := p.property(cur, seg.text)
			if err != nil {
				return nil, typeInfo{}, err
			}
			cur = pt
			if cur.Kind == KindDynamic && dynFrom > len(segs) {
				dynFrom = len(segs) + 1
			}
		case KindDynamic:
		case KindCollection:
			return nil, typeInfo{}, p.errf("The parent value for a property access of a property '%s' is not a single value. Property access can only be applied to a single value; use %s/any(x: x/%s ...).", seg.text, display, seg.text)
		default:
			return nil, typeInfo{}, p.errf("'%s' is a primitive property; it has no property '%s' (position %d in '%s').", display, seg.text, seg.pos+1, p.src)
		}
		segs = append(segs, seg.text)
		display += "/" + seg.text
	}
	if err := p.count(); err != nil {
		return nil, typeInfo{}, err
	}
	return &pathNode{scope: scope, segs: segs, typ: cur, dynFrom: dynFrom, display: display}, schemaType(cur), nil
}

func (p *parser) property(t *Type, name string) (*Type, error) {
	if pt, ok := t.Prop(name); ok {
		return pt, nil
	}
	hint := ""
	if m := t.foldMatch(name); m != "" {
		hint = fmt.Sprintf(" Property names are case-sensitive; did you mean '%s'?", m)
	}
	return nil, p.errf("Could not find a property named '%s' on type '%s'.%s", name, t.Name, hint)
}

func (p *parser) parseLambda(coll *pathNode, op token, ct *Type) (node, typeInfo, error) {
	var elem *Type
	switch ct.Kind {
	case KindCollection:
		elem = ct.Elem
	case KindDynamic:
		elem = Dynamic
	default:
		return nil, typeInfo{}, p.errf("The '%s' operator can only be applied to a collection, but '%s' is of type '%s'.", op.text, coll.display, ct.Name)
	}
	p.next() // (
	src := p.src
	if err := p.count(); err != nil {
		return nil, typeInfo{}, err
	}
	if p.peek().kind == tkRParen {
		p.next()
		if op.text == "all" {
			return nil, typeInfo{}, p.errf("The 'all' operator requires a lambda expression: %s/all(x: ...).", coll.display)
		}
		return &lambdaNode{coll: coll, src: src, scope: -1}, literalType(stBool), nil
	}
	v := p.next()
	if v.kind != tkIdent || keywords[v.text] || v.text == "true" || v.text == "false" || v.text == "null" {
		return nil, typeInfo{}, p.syntaxAt(v)
	}
	for _, s := range p.scopes {
		if s.name == v.text {
			return nil, typeInfo{}, p.errf("The range variable '%s' has already been declared.", v.text)
		}
	}
	if c := p.next(); c.kind != tkColon {
		return nil, typeInfo{}, p.syntaxAt(c)
	}
	p.depth++
	if p.depth > maxDepth {
		return nil, typeInfo{}, p.errf("The $filter expression is nested too deeply.")
	}
	scope := len(p.scopes)
	p.scopes = append(p.scopes, scopeVar{v.text, elem})
	body, bt, err := p.parseOr()
	p.scopes = p.scopes[:scope]
	p.depth--
	if err != nil {
		return nil, bt, err
	}
	if !isBoolish(bt) {
		return nil, bt, p.errf("The body of the '%s' lambda over '%s' must be a boolean expression, but it is of type '%s'.", op.text, coll.display, bt.name)
	}
	if c := p.next(); c.kind != tkRParen {
		return nil, bt, p.errf("')' or operator expected at position %d in '%s'.", c.pos+1, p.src)
	}
	return &lambdaNode{coll: coll, all: op.text == "all", body: body, scope: scope, src: src}, literalType(stBool), nil
}

// ParseFilter parses a $filter expression against the Referral schema with
// the default options.
func ParseFilter(s string) (Expr, error) { return Default.ParseFilter(s) }

// ParseFilter parses a $filter expression against o's schema.
func (o *Options) ParseFilter(s string) (Expr, error) {
	if strings.TrimSpace(s) == "" {
		return nil, newError("$filter", "The $filter query option must not be empty.")
	}
	toks, err := lex(s, "$filter")
	if err != nil {
		return nil, err
	}
	p := &parser{src: s, toks: toks, opts: o}
	root, rt, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tkEOF {
		if t.kind == tkIdent && unsupportedBinary[t.text] {
			return nil, p.errf("The '%s' operator (position %d in '%s') is not supported by this service.", t.text, t.pos+1, s)
		}
		return nil, p.syntaxAt(t)
	}
	if !isBoolish(rt) {
		return nil, p.errf("The $filter expression must evaluate to a single boolean value, but '%s' is of type '%s'.", s, rt.name)
	}
	return &filterExpr{root: root, src: s}, nil
}
