package soql

import (
	"strconv"
	"strings"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// Limits Salesforce enforces on a statement.
const (
	maxQueryLength = 100000
	maxOffset      = 2000
	maxRelDepth    = 5 // child-to-parent hops in one path
	maxSubDepth    = 5 // nested parent-to-child subqueries
)

// isClauseKeyword reports whether t starts a clause after FROM, which
// ends the FROM clause's optional alias.
func isClauseKeyword(t token) bool {
	if t.kind != tIdent {
		return false
	}
	switch strings.ToUpper(t.text) {
	case "WHERE", "WITH", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "FOR", "UPDATE", "USING":
		return true
	}
	return false
}

// isReserved reports whether t is one of SOQL's reserved words, which are
// never an alias, a field name or a bare value.
func isReserved(t token) bool {
	if t.kind != tIdent {
		return false
	}
	switch strings.ToUpper(t.text) {
	case "AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES", "LAST", "LIKE",
		"LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH", "TRUE", "FALSE", "ORDER", "BY",
		"OFFSET", "FOR", "UPDATE", "USING", "TYPEOF":
		return true
	}
	return false
}

// parser holds the token stream of one statement.
type parser struct {
	src    string
	toks   []token
	i      int
	schema *sfschema.Schema
}

// Parse parses q and resolves every object, relationship and field name
// against s. Errors are *Error values with Salesforce's codes.
func Parse(q string, s *sfschema.Schema) (*Query, error) {
	if len(q) > maxQueryLength {
		return nil, &Error{Code: CodeMalformedQuery, Message: "SOQL statements cannot be longer than 100,000 characters."}
	}
	lx := lexer{src: q}
	var toks []token
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tEOF {
			break
		}
	}
	p := &parser{src: q, toks: toks, schema: s}
	query, err := p.parseSelect(nil, 0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected(t)
	}
	return query, nil
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) advance() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) unexpected(t token) *Error {
	if t.kind == tEOF {
		return syntaxError(p.src, t.pos, "unexpected token: <EOF>")
	}
	text := t.text
	if t.kind == tString {
		text = "'" + unescape(t.text) + "'"
	}
	return syntaxError(p.src, t.pos, "unexpected token: '"+text+"'")
}

func (p *parser) expectKeyword(kw string) *Error {
	if t := p.peek(); !t.is(kw) {
		return p.unexpected(t)
	}
	p.advance()
	return nil
}

func (p *parser) expect(k tokKind) (token, *Error) {
	t := p.peek()
	if t.kind != k {
		return t, p.unexpected(t)
	}
	return p.advance(), nil
}

// rawItem is a SELECT entry before the FROM object is known.
type rawItem struct {
	tok      token // the path identifier
	subStart int   // token index of a subquery's SELECT, or -1
	subPos   int
}

// parseSelect parses SELECT … [FROM …] up to the end of the statement or of
// a subquery. parent is nil for the outer query and the parent object for a
// parent-to-child subquery.
func (p *parser) parseSelect(parent *sfschema.Object, depth int) (*Query, *Error) {
	if err := p.expectKeyword("SELECT"); err != nil {
		return nil, err
	}
	q := &Query{src: p.src, limit: -1}
	var raws []rawItem
	for {
		t := p.peek()
		switch {
		case t.kind == tLParen:
			if parent != nil && depth+1 >= maxSubDepth {
				return nil, syntaxError(p.src, t.pos, "parent-to-child subqueries can be nested at most 5 levels deep")
			}
			p.advance()
			start := p.i
			if !p.peek().is("SELECT") {
				return nil, p.unexpected(p.peek())
			}
			if err := p.skipParens(); err != nil {
				return nil, err
			}
			raws = append(raws, rawItem{subStart: start, subPos: t.pos})
		case t.is("TYPEOF"):
			return nil, unsupported(p.src, t.pos, "TYPEOF")
		case t.kind == tIdent && !isReserved(t):
			if p.peekAt(1).kind == tLParen {
				if t.is("COUNT") && p.peekAt(2).kind == tRParen {
					if len(raws) > 0 || q.count || parent != nil {
						return nil, syntaxError(p.src, t.pos, "COUNT() must be the only element in the SELECT list of the outer query")
					}
					p.i += 3
					q.count = true
					break
				}
				return nil, unsupported(p.src, t.pos, "the function "+strings.ToUpper(t.text)+"() (aggregate, date and formatting functions, FIELDS())")
			}
			p.advance()
			raws = append(raws, rawItem{tok: t, subStart: -1})
		default:
			return nil, p.unexpected(t)
		}
		if p.peek().kind != tComma {
			break
		}
		if q.count {
			return nil, syntaxError(p.src, p.peek().pos, "COUNT() must be the only element in the SELECT list of the outer query")
		}
		p.advance()
	}
	if err := p.expectKeyword("FROM"); err != nil {
		return nil, err
	}
	objTok, err := p.expect(tIdent)
	if err != nil {
		return nil, err
	}
	if parent == nil {
		q.obj = p.schema.Object(objTok.text)
		if q.obj == nil || !q.obj.Queryable || strings.Contains(objTok.text, ".") {
			return nil, errAt(CodeInvalidType, p.src, objTok.pos, "sObject type '"+objTok.text+
				"' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. "+
				"Please reference your WSDL or the describe call for the appropriate names.")
		}
	} else {
		rel := parent.Child(objTok.text)
		if rel == nil || p.schema.Object(rel.ChildSObject) == nil {
			return nil, errAt(CodeInvalidType, p.src, objTok.pos, "Didn't understand relationship '"+objTok.text+
				"' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. "+
				"Please reference your WSDL or the describe call for the appropriate names.")
		}
		q.rel = rel
		q.obj = p.schema.Object(rel.ChildSObject)
	}
	alias := ""
	if t := p.peek(); t.kind == tIdent && !isClauseKeyword(t) && !isReserved(t) && !strings.Contains(t.text, ".") {
		alias = t.text
		p.advance()
	}
	r := resolver{p: p, obj: q.obj, alias: alias}

	// Resolve the SELECT list now that the object is known; subqueries are
	// parsed from their saved position.
	seen := map[string]bool{}
	for _, raw := range raws {
		if raw.subStart >= 0 {
			save := p.i
			p.i = raw.subStart
			sub, err := p.parseSelect(q.obj, depth+1)
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(tRParen); err != nil {
				return nil, err
			}
			p.i = save
			key := "(" + strings.ToLower(sub.rel.RelationshipName)
			if seen[key] {
				return nil, syntaxError(p.src, raw.subPos, "duplicate field selected: "+sub.rel.RelationshipName)
			}
			seen[key] = true
			q.items = append(q.items, selectItem{sub: sub})
			continue
		}
		fp, err := r.path(raw.tok)
		if err != nil {
			return nil, err
		}
		key := strings.ToLower(fp.name)
		if seen[key] {
			return nil, syntaxError(p.src, raw.tok.pos, "duplicate field selected: "+fp.name)
		}
		seen[key] = true
		q.items = append(q.items, selectItem{path: fp})
	}

	if t := p.peek(); t.is("USING") {
		return nil, unsupported(p.src, t.pos, "USING SCOPE")
	}
	if p.peek().is("WHERE") {
		p.advance()
		w, err := p.parseCond(&r)
		if err != nil {
			return nil, err
		}
		q.where = w
	}
	if t := p.peek(); t.is("WITH") {
		return nil, unsupported(p.src, t.pos, "the WITH clause")
	}
	if t := p.peek(); t.is("GROUP") || t.is("HAVING") {
		return nil, unsupported(p.src, t.pos, "GROUP BY and HAVING")
	}
	if t := p.peek(); t.is("ORDER") {
		if q.count {
			return nil, syntaxError(p.src, t.pos, "ORDER BY cannot be used with COUNT()")
		}
		p.advance()
		if err := p.expectKeyword("BY"); err != nil {
			return nil, err
		}
		if err := p.parseOrder(&r, q); err != nil {
			return nil, err
		}
	}
	if p.peek().is("LIMIT") {
		p.advance()
		n, err := p.parseCount("LIMIT")
		if err != nil {
			return nil, err
		}
		q.limit = n
	}
	if t := p.peek(); t.is("OFFSET") {
		if parent != nil {
			return nil, unsupported(p.src, t.pos, "OFFSET in a subquery")
		}
		p.advance()
		n, err := p.parseCount("OFFSET")
		if err != nil {
			return nil, err
		}
		if n > maxOffset {
			return nil, &Error{Code: CodeNumberOutsideRange, Message: "Maximum SOQL offset allowed is 2000"}
		}
		q.offset = n
	}
	if t := p.peek(); t.is("FOR") || t.is("UPDATE") {
		return nil, unsupported(p.src, t.pos, "FOR VIEW, FOR REFERENCE, FOR UPDATE and UPDATE TRACKING/VIEWSTAT")
	}
	return q, nil
}

// skipParens advances past the subquery starting at the current token up
// to and including its closing parenthesis.
func (p *parser) skipParens() *Error {
	depth := 1
	for {
		t := p.advance()
		switch t.kind {
		case tEOF:
			return p.unexpected(t)
		case tLParen:
			depth++
		case tRParen:
			depth--
			if depth == 0 {
				return nil
			}
		}
	}
}

// parseCount reads the non-negative integer after LIMIT or OFFSET.
func (p *parser) parseCount(clause string) (int, *Error) {
	t := p.peek()
	if t.kind != tNumber {
		return 0, p.unexpected(t)
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n < 0 || strings.HasPrefix(t.text, "+") {
		return 0, syntaxError(p.src, t.pos, clause+" must be a non-negative integer: "+t.text)
	}
	p.advance()
	return n, nil
}

func (p *parser) parseOrder(r *resolver, q *Query) *Error {
	for {
		t := p.peek()
		if t.kind != tIdent || isReserved(t) {
			return p.unexpected(t)
		}
		if p.peekAt(1).kind == tLParen {
			return unsupported(p.src, t.pos, "ORDER BY on a function")
		}
		p.advance()
		fp, err := r.path(t)
		if err != nil {
			return err
		}
		if !fp.field.Sortable {
			return errAt(CodeInvalidField, p.src, t.pos, "field '"+fp.field.Name+"' can not be sorted in a query call")
		}
		k := orderKey{path: fp, nullsFirst: true}
		if p.peek().is("ASC") {
			p.advance()
		} else if p.peek().is("DESC") {
			p.advance()
			k.desc = true
		}
		if p.peek().is("NULLS") {
			p.advance()
			switch t := p.peek(); {
			case t.is("FIRST"):
				k.nullsFirst = true
			case t.is("LAST"):
				k.nullsFirst = false
			default:
				return p.unexpected(t)
			}
			p.advance()
		}
		q.order = append(q.order, k)
		if p.peek().kind != tComma {
			return nil
		}
		p.advance()
	}
}

// parseCond parses a WHERE condition. SOQL requires parentheses when AND
// and OR are mixed at one level; "a AND b OR c" is MALFORMED_QUERY.
func (p *parser) parseCond(r *resolver) (expr, *Error) {
	first, err := p.parseUnary(r)
	if err != nil {
		return nil, err
	}
	t := p.peek()
	var conn, other string
	switch {
	case t.is("AND"):
		conn, other = "AND", "OR"
	case t.is("OR"):
		conn, other = "OR", "AND"
	default:
		return first, nil
	}
	items := []expr{first}
	for p.peek().is(conn) {
		p.advance()
		x, err := p.parseUnary(r)
		if err != nil {
			return nil, err
		}
		items = append(items, x)
	}
	if t := p.peek(); t.is(other) {
		return nil, p.unexpected(t)
	}
	if conn == "AND" {
		return &andExpr{items: items}, nil
	}
	return &orExpr{items: items}, nil
}

func (p *parser) parseUnary(r *resolver) (expr, *Error) {
	t := p.peek()
	switch {
	case t.is("NOT"):
		p.advance()
		x, err := p.parseUnary(r)
		if err != nil {
			return nil, err
		}
		return &notExpr{x: x}, nil
	case t.kind == tLParen:
		p.advance()
		x, err := p.parseCond(r)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		return x, nil
	case t.kind == tIdent && !isReserved(t):
		return p.parseComparison(r)
	}
	return nil, p.unexpected(t)
}

func (p *parser) parseComparison(r *resolver) (expr, *Error) {
	ft := p.advance()
	if p.peek().kind == tLParen {
		return nil, unsupported(p.src, ft.pos, "the function "+strings.ToUpper(ft.text)+"() in WHERE")
	}
	fp, err := r.path(ft)
	if err != nil {
		return nil, err
	}
	if !fp.field.Filterable {
		return nil, errAt(CodeInvalidField, p.src, ft.pos, "field '"+fp.field.Name+"' can not be filtered in a query call")
	}
	opTok := p.peek()
	c := &cmpExpr{path: fp}
	switch {
	case opTok.kind == tOp:
		p.advance()
		c.op = opTok.text
		if c.op == "<>" {
			c.op = "!="
		}
		lt := p.advance()
		v, err := p.literal(fp, c.op, lt)
		if err != nil {
			return nil, err
		}
		c.vals = []value{v}
	case opTok.is("LIKE"):
		p.advance()
		c.op = "LIKE"
		lt := p.advance()
		v, err := p.likeLiteral(fp, lt)
		if err != nil {
			return nil, err
		}
		c.vals = []value{v}
	case opTok.is("IN"), opTok.is("NOT") && p.peekAt(1).is("IN"):
		c.op = "IN"
		if opTok.is("NOT") {
			c.op = "NOTIN"
			p.advance()
		}
		p.advance()
		if _, err := p.expect(tLParen); err != nil {
			return nil, err
		}
		if t := p.peek(); t.is("SELECT") {
			return nil, unsupported(p.src, t.pos, "semi-join and anti-join subqueries (IN (SELECT …))")
		}
		for {
			lt := p.advance()
			v, err := p.literal(fp, "=", lt)
			if err != nil {
				return nil, err
			}
			c.vals = append(c.vals, v)
			if p.peek().kind == tComma {
				p.advance()
				continue
			}
			break
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
	case opTok.is("INCLUDES"), opTok.is("EXCLUDES"):
		return nil, unsupported(p.src, opTok.pos, "INCLUDES and EXCLUDES")
	default:
		return nil, p.unexpected(opTok)
	}
	return c, nil
}

// resolver resolves field paths of one query level.
type resolver struct {
	p     *parser
	obj   *sfschema.Object
	alias string
}

// path resolves a dotted identifier token against the query's object.
func (r *resolver) path(t token) (*fieldPath, *Error) {
	src := r.p.src
	segs := strings.Split(t.text, ".")
	if len(segs) > 1 && r.obj.FieldByRelationship(segs[0]) == nil &&
		(r.alias != "" && strings.EqualFold(segs[0], r.alias) || strings.EqualFold(segs[0], r.obj.Name)) {
		segs = segs[1:]
	}
	if len(segs)-1 > maxRelDepth {
		return nil, syntaxError(src, t.pos, "SOQL statements cannot query more than 5 levels of relationships")
	}
	fp := &fieldPath{}
	cur := r.obj
	var names []string
	for _, seg := range segs[:len(segs)-1] {
		f := cur.FieldByRelationship(seg)
		if f == nil || len(f.ReferenceTo) == 0 || r.p.schema.Object(f.ReferenceTo[0]) == nil {
			return nil, noSuchRelationship(src, t.pos, seg)
		}
		next := r.p.schema.Object(f.ReferenceTo[0])
		fp.rels = append(fp.rels, f)
		fp.objs = append(fp.objs, next)
		names = append(names, f.RelationshipName)
		cur = next
	}
	last := segs[len(segs)-1]
	f := cur.Field(last)
	if f == nil {
		return nil, noSuchColumn(src, t.pos, last, cur.Name)
	}
	fp.field = f
	fp.name = strings.Join(append(names, f.Name), ".")
	return fp, nil
}

// dateLiteralKind classifies a relative date literal name: "day" for
// TODAY/YESTERDAY/TOMORROW, "n" for the forms taking ":n" that the emulator
// evaluates, "other" for real SOQL date literals it does not implement
// (rejected rather than misread), "" for anything else.
func dateLiteralKind(name string) string {
	switch name {
	case "TODAY", "YESTERDAY", "TOMORROW":
		return "day"
	case "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO":
		return "n"
	case "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH", "THIS_MONTH", "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS",
		"THIS_QUARTER", "LAST_QUARTER", "NEXT_QUARTER", "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR",
		"THIS_FISCAL_QUARTER", "LAST_FISCAL_QUARTER", "NEXT_FISCAL_QUARTER", "THIS_FISCAL_YEAR", "LAST_FISCAL_YEAR",
		"NEXT_FISCAL_YEAR", "NEXT_N_WEEKS", "LAST_N_WEEKS", "N_WEEKS_AGO", "NEXT_N_MONTHS", "LAST_N_MONTHS",
		"N_MONTHS_AGO", "NEXT_N_QUARTERS", "LAST_N_QUARTERS", "N_QUARTERS_AGO", "NEXT_N_YEARS", "LAST_N_YEARS",
		"N_YEARS_AGO", "NEXT_N_FISCAL_QUARTERS", "LAST_N_FISCAL_QUARTERS", "N_FISCAL_QUARTERS_AGO",
		"NEXT_N_FISCAL_YEARS", "LAST_N_FISCAL_YEARS", "N_FISCAL_YEARS_AGO":
		return "other"
	}
	return ""
}

// soqlTypeName is the type name Salesforce uses in filter-value errors.
func soqlTypeName(t sfschema.FieldType) string {
	switch t {
	case sfschema.TypeID, sfschema.TypeReference:
		return "id"
	case sfschema.TypeBoolean:
		return "boolean"
	case sfschema.TypeCurrency, sfschema.TypeDouble, sfschema.TypePercent:
		return "double"
	case sfschema.TypeInt:
		return "integer"
	case sfschema.TypeDate:
		return "date"
	case sfschema.TypeDateTime:
		return "dateTime"
	}
	return "string"
}

func (p *parser) wrongType(f *sfschema.Field, t token) *Error {
	quoted := "should not be enclosed in quotes"
	if f.Type.IsText() {
		quoted = "should be enclosed in quotes"
	}
	return errAt(CodeInvalidFilterOperator, p.src, t.pos, "value of filter criterion for field '"+f.Name+
		"' must be of type "+soqlTypeName(f.Type)+" and "+quoted)
}

func (p *parser) badOperator(f *sfschema.Field, t token) *Error {
	return errAt(CodeInvalidFilterOperator, p.src, t.pos, "invalid operator on "+soqlTypeName(f.Type)+" field: "+f.Name)
}

// literal reads one comparison value and converts it to the field's type,
// enforcing Salesforce's typing rules (no quoted numbers, no unquoted
// strings, date versus dateTime, valid ids).
func (p *parser) literal(fp *fieldPath, op string, t token) (value, *Error) {
	f := fp.field
	ordering := op != "=" && op != "!="
	if t.is("NULL") {
		if ordering {
			return value{}, errAt(CodeInvalidFilterOperator, p.src, t.pos, "invalid operator for null value: "+op)
		}
		return value{kind: vNull}, nil
	}
	switch t.kind {
	case tString, tNumber, tDate, tDateTime:
	case tIdent:
		isDateField := f.Type == sfschema.TypeDate || f.Type == sfschema.TypeDateTime
		if !t.is("TRUE") && !t.is("FALSE") && !isDateField {
			return value{}, p.unexpected(t)
		}
	default:
		return value{}, p.unexpected(t)
	}
	if ordering && (f.Type == sfschema.TypeBoolean || f.Type == sfschema.TypeMultiPicklist) {
		return value{}, p.badOperator(f, t)
	}
	// Salesforce stores no empty strings, so '' in an equality test means
	// null, as it does in real SOQL.
	if t.kind == tString && t.text == "" && f.Type.IsText() && !ordering {
		return value{kind: vNull}, nil
	}
	switch f.Type {
	case sfschema.TypeID, sfschema.TypeReference:
		if t.kind != tString {
			return value{}, p.wrongType(f, t)
		}
		id, ok := sfschema.CanonicalID(unescape(t.text))
		if !ok {
			return value{}, errAt(CodeInvalidFilterOperator, p.src, t.pos, "invalid ID field: "+unescape(t.text))
		}
		return value{kind: vID, text: id}, nil
	case sfschema.TypeMultiPicklist:
		if t.kind != tString {
			return value{}, p.wrongType(f, t)
		}
		return value{kind: vMulti, set: splitMulti(unescape(t.text))}, nil
	case sfschema.TypeBoolean:
		if t.is("TRUE") || t.is("FALSE") {
			return value{kind: vBool, b: t.is("TRUE")}, nil
		}
		return value{}, p.wrongType(f, t)
	case sfschema.TypeCurrency, sfschema.TypeDouble, sfschema.TypePercent, sfschema.TypeInt:
		if t.kind != tNumber {
			return value{}, p.wrongType(f, t)
		}
		n, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return value{}, syntaxError(p.src, t.pos, "invalid number: "+t.text)
		}
		return value{kind: vNum, num: n}, nil
	case sfschema.TypeDate, sfschema.TypeDateTime:
		return p.dateLiteral(f, t)
	}
	if t.kind != tString {
		return value{}, p.wrongType(f, t)
	}
	return value{kind: vText, text: strings.ToUpper(unescape(t.text))}, nil
}

// dateLiteral reads a date, datetime or relative date literal for a date or
// dateTime field.
func (p *parser) dateLiteral(f *sfschema.Field, t token) (value, *Error) {
	isDateTime := f.Type == sfschema.TypeDateTime
	switch {
	case t.kind == tDate && !isDateTime:
		d, err := time.Parse(sfschema.DateLayout, t.text)
		if err != nil {
			return value{}, syntaxError(p.src, t.pos, "invalid date literal: "+t.text)
		}
		return value{kind: vDate, text: sfschema.FormatDate(d)}, nil
	case t.kind == tDateTime && isDateTime:
		d, err := time.Parse(time.RFC3339Nano, t.text)
		if err != nil {
			return value{}, syntaxError(p.src, t.pos, "invalid dateTime literal: "+t.text+
				" (use yyyy-mm-ddThh:mm:ss[.sss]Z or an offset such as +01:00)")
		}
		v := value{kind: vDateTime, t: d.UTC()}
		if d.Nanosecond()%int(time.Millisecond) == 0 {
			// Comparable as a string with values in the store's layout.
			v.text = sfschema.FormatDateTime(d)
		}
		return v, nil
	case t.kind == tIdent:
		name := strings.ToUpper(t.text)
		kind := dateLiteralKind(name)
		if kind == "day" {
			return value{kind: vDateFn, fn: name}, nil
		}
		if kind == "n" {
			if p.peek().kind != tColon {
				return value{}, p.unexpected(p.peek())
			}
			p.advance()
			nt := p.advance()
			n, err := strconv.Atoi(nt.text)
			if nt.kind != tNumber || err != nil || n < 0 || strings.HasPrefix(nt.text, "+") {
				return value{}, syntaxError(p.src, nt.pos, "invalid count for date literal "+name+": "+nt.text)
			}
			return value{kind: vDateFn, fn: name, n: n}, nil
		}
		if kind == "other" {
			return value{}, unsupported(p.src, t.pos, "the date literal "+name)
		}
	}
	if t.kind == tIdent && !isReserved(t) || t.kind == tEOF || t.kind == tIllegal || t.kind == tColon {
		return value{}, p.unexpected(t)
	}
	return value{}, p.wrongType(f, t)
}

// likeLiteral compiles a LIKE pattern; LIKE applies to text fields only.
func (p *parser) likeLiteral(fp *fieldPath, t token) (value, *Error) {
	f := fp.field
	switch f.Type {
	case sfschema.TypeString, sfschema.TypeTextArea, sfschema.TypePicklist, sfschema.TypeURL,
		sfschema.TypeEmail, sfschema.TypePhone:
	default:
		return value{}, p.badOperator(f, t)
	}
	if t.kind != tString {
		if t.kind == tIdent && !isReserved(t) || t.kind == tEOF || t.kind == tIllegal {
			return value{}, p.unexpected(t)
		}
		return value{}, p.wrongType(f, t)
	}
	return value{kind: vLike, like: compileLike(t.text)}, nil
}

// splitMulti normalises a multi-select picklist value ("A;B") into its
// upper-cased, de-duplicated members.
func splitMulti(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		part = strings.ToUpper(strings.TrimSpace(part))
		if part == "" || seen[part] {
			continue
		}
		seen[part] = true
		out = append(out, part)
	}
	return out
}
