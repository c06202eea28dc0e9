// Package jsonpatch applies JSON Patch documents (RFC 6902) with JSON
// Pointer paths (RFC 6901) to JSON-decoded documents (map[string]any).
//
// All six operations are implemented as the RFC specifies; the caller
// decides which operations and paths it allows. Application is atomic: it
// works on a deep copy and the input document is never modified.
//
// Choices beyond the RFC:
//   - Decode matches member names case-insensitively ("Op", "PATH" and
//     "Value" occur in Microsoft samples) and accepts operation names in
//     any case, as Microsoft.AspNetCore.JsonPatch does; Operation.Op is
//     always lower case after Decode. A member given twice (in any case
//     combination) is an error. Unknown members are ignored (RFC 6902 §4).
//   - Pointers are case-sensitive (RFC 6901).
//   - Values are decoded with json.Decoder.UseNumber, so numbers arrive as
//     json.Number. "test" compares numbers by value (1 equals 1.0 and
//     json.Number("1") equals float64(1)).
//   - The document root must stay an object: an operation that would make
//     it anything else fails.
package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Operation is one JSON Patch operation.
type Operation struct {
	Op       string          `json:"op"`
	Path     string          `json:"path"`
	From     string          `json:"from,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	HasValue bool            `json:"-"`
}

// Error describes a patch that cannot be decoded or applied. Index is the
// position of the offending operation in the patch, or -1 when the patch
// as a whole is malformed.
type Error struct {
	Index    int
	Op, Path string
	Message  string
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return "json patch: " + e.Message
	}
	return fmt.Sprintf("json patch operation %d (op %q, path %q): %s", e.Index, e.Op, e.Path, e.Message)
}

var validOps = map[string]bool{"add": true, "remove": true, "replace": true, "move": true, "copy": true, "test": true}

// Decode parses a JSON Patch document: a JSON array of objects, each with
// string members "op" and "path", "from" for move and copy, and "value"
// for add, replace and test (a null value counts as present).
func Decode(body []byte) ([]Operation, error) {
	whole := func(format string, args ...any) error {
		return &Error{Index: -1, Message: fmt.Sprintf(format, args...)}
	}
	if !json.Valid(body) {
		return nil, whole("the request body is not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, whole("the request body is not valid JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, whole("a JSON Patch document must be a JSON array of operations")
	}
	ops := []Operation{}
	for i := 0; dec.More(); i++ {
		tok, err := dec.Token()
		if err != nil {
			return nil, whole("the request body is not valid JSON")
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			if ok && (d == '[') {
				return nil, &Error{Index: i, Message: "an operation must be a JSON object, found an array"}
			}
			return nil, &Error{Index: i, Message: fmt.Sprintf("an operation must be a JSON object, found %s", describeToken(tok))}
		}
		op, err := decodeOp(dec, i)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, whole("the request body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, whole("unexpected data after the JSON Patch array")
	}
	return ops, nil
}

func describeToken(tok json.Token) string {
	switch tok.(type) {
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func decodeOp(dec *json.Decoder, i int) (Operation, error) {
	var op Operation
	var haveOp, havePath, haveFrom bool
	seen := map[string]bool{}
	fail := func(format string, args ...any) (Operation, error) {
		return Operation{}, &Error{Index: i, Op: op.Op, Path: op.Path, Message: fmt.Sprintf(format, args...)}
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("invalid JSON")
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail("invalid JSON")
		}
		lk := strings.ToLower(key)
		switch lk {
		case "op", "path", "from", "value":
		default:
			continue // RFC 6902 §4: other members are ignored
		}
		if seen[lk] {
			return fail("the member %q appears more than once", lk)
		}
		seen[lk] = true
		str := func() (string, bool) {
			var s string
			if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '"' {
				return "", false // json.Unmarshal would accept null
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", false
			}
			return s, true
		}
		switch lk {
		case "op":
			s, ok := str()
			if !ok {
				return fail(`"op" must be a string`)
			}
			op.Op, haveOp = s, true
		case "path":
			s, ok := str()
			if !ok {
				return fail(`"path" must be a string`)
			}
			op.Path, havePath = s, true
		case "from":
			s, ok := str()
			if !ok {
				return fail(`"from" must be a string`)
			}
			op.From, haveFrom = s, true
		case "value":
			op.Value, op.HasValue = append(json.RawMessage(nil), raw...), true
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fail("invalid JSON")
	}
	if !haveOp {
		return fail(`the operation has no "op" member`)
	}
	if !havePath {
		return fail(`the operation has no "path" member`)
	}
	if lo := strings.ToLower(op.Op); validOps[lo] {
		op.Op = lo
	}
	if err := validate(op, haveFrom, i); err != nil {
		return Operation{}, err
	}
	return op, nil
}

// validate checks the members an operation needs. haveFrom reports whether
// "from" was given (an empty "from" is the root pointer, which is valid).
func validate(op Operation, haveFrom bool, i int) error {
	fail := func(format string, args ...any) error {
		return &Error{Index: i, Op: op.Op, Path: op.Path, Message: fmt.Sprintf(format, args...)}
	}
	if !validOps[op.Op] {
		return fail("unknown operation %q; expected add, remove, replace, move, copy or test", op.Op)
	}
	if _, err := ParsePointer(op.Path); err != nil {
		return fail("invalid path: %v", err)
	}
	switch op.Op {
	case "move", "copy":
		if !haveFrom {
			return fail(`the %s operation needs a "from" member`, op.Op)
		}
		if _, err := ParsePointer(op.From); err != nil {
			return fail("invalid from: %v", err)
		}
	case "add", "replace", "test":
		if !op.HasValue {
			return fail(`the %s operation needs a "value" member`, op.Op)
		}
		if _, err := decodeValue(op.Value); err != nil {
			return fail("invalid value: %v", err)
		}
	}
	return nil
}

// ParsePointer splits an RFC 6901 JSON Pointer into unescaped reference
// tokens. "" is the whole document (no tokens); otherwise the pointer must
// start with "/", and "~" must be followed by "0" (for "~") or "1" (for "/").
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return []string{}, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("JSON pointer %q must be empty or start with '/'", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		if !strings.Contains(s, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(s); j++ {
			if s[j] != '~' {
				b.WriteByte(s[j])
				continue
			}
			if j+1 < len(s) && s[j+1] == '0' {
				b.WriteByte('~')
			} else if j+1 < len(s) && s[j+1] == '1' {
				b.WriteByte('/')
			} else {
				return nil, fmt.Errorf("JSON pointer %q has a '~' not followed by '0' or '1'", p)
			}
			j++
		}
		parts[i] = b.String()
	}
	return parts, nil
}

func decodeValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the value")
	}
	return v, nil
}

// Apply applies ops in order to a deep copy of doc and returns the copy.
// On any error it returns nil and a *Error; doc is never modified, and the
// result shares no memory with doc or with ops. Operations built by hand
// rather than by Decode are checked the same way; for them a non-empty
// Value implies HasValue and an empty From is the root pointer.
func Apply(doc map[string]any, ops []Operation) (map[string]any, error) {
	var root any = deepCopy(doc)
	if doc == nil {
		root = map[string]any{}
	}
	for i, op := range ops {
		op.HasValue = op.HasValue || len(op.Value) > 0
		op.Op = strings.ToLower(op.Op)
		if err := validate(op, true, i); err != nil {
			return nil, err
		}
		var err error
		root, err = applyOne(root, op)
		if err != nil {
			return nil, &Error{Index: i, Op: op.Op, Path: op.Path, Message: err.Error()}
		}
		if _, ok := root.(map[string]any); !ok {
			return nil, &Error{Index: i, Op: op.Op, Path: op.Path, Message: "the document root must remain a JSON object"}
		}
	}
	return root.(map[string]any), nil
}

func applyOne(root any, op Operation) (any, error) {
	path, _ := ParsePointer(op.Path)
	switch op.Op {
	case "add":
		v, _ := decodeValue(op.Value)
		return add(root, path, v)
	case "remove":
		if len(path) == 0 {
			return nil, errors.New("cannot remove the whole document")
		}
		r, _, err := remove(root, path)
		return r, err
	case "replace":
		if _, err := get(root, path); err != nil {
			return nil, err
		}
		v, _ := decodeValue(op.Value)
		if len(path) == 0 {
			return v, nil
		}
		return set(root, path, v)
	case "move":
		from, _ := ParsePointer(op.From)
		if isProperPrefix(from, path) {
			return nil, fmt.Errorf("cannot move %q into its own child %q", op.From, op.Path)
		}
		v, err := get(root, from)
		if err != nil {
			return nil, fmt.Errorf("from: %v", err)
		}
		if equalTokens(from, path) {
			return root, nil
		}
		root, _, err = remove(root, from)
		if err != nil {
			return nil, fmt.Errorf("from: %v", err)
		}
		return add(root, path, v)
	case "copy":
		from, _ := ParsePointer(op.From)
		v, err := get(root, from)
		if err != nil {
			return nil, fmt.Errorf("from: %v", err)
		}
		return add(root, path, deepCopy(v))
	case "test":
		cur, err := get(root, path)
		if err != nil {
			return nil, err
		}
		v, _ := decodeValue(op.Value)
		if !Equal(cur, v) {
			return nil, errors.New("test failed: the value at the path is not equal to the given value")
		}
		return root, nil
	}
	return nil, fmt.Errorf("unknown operation %q", op.Op)
}

func isProperPrefix(a, b []string) bool {
	return len(a) < len(b) && equalTokens(a, b[:len(a)])
}

func equalTokens(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// arrayIndex parses an array reference token: "0" or a decimal number
// without leading zeros. appendOK allows "-" (one past the end) and an
// index equal to the length, as add permits.
func arrayIndex(tok string, n int, appendOK bool) (int, error) {
	if tok == "-" {
		if appendOK {
			return n, nil
		}
		return 0, errors.New(`"-" refers to a nonexistent element (after the last)`)
	}
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return 0, fmt.Errorf("%q is not a valid array index", tok)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, fmt.Errorf("%q is not a valid array index", tok)
		}
	}
	idx, err := strconv.Atoi(tok)
	if err != nil || idx > n || idx == n && !appendOK {
		return 0, fmt.Errorf("array index %s is out of bounds (length %d)", tok, n)
	}
	return idx, nil
}

func pointerOf(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// get returns the value at path.
func get(node any, path []string) (any, error) {
	cur := node
	for i, tok := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("the path %s does not exist", pointerOf(path[:i+1]))
			}
			cur = v
		case []any:
			idx, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", pointerOf(path[:i+1]), err)
			}
			cur = c[idx]
		default:
			return nil, fmt.Errorf("the path %s does not exist: %s is not an object or array", pointerOf(path[:i+1]), describe(path[:i]))
		}
	}
	return cur, nil
}

func describe(path []string) string {
	if len(path) == 0 {
		return "the document"
	}
	return pointerOf(path)
}

// modify walks to the parent of path's last token and calls f on the
// parent container, storing the container f returns back in its place
// (arrays change identity when they grow or shrink). Callers check with get
// that the parent exists first.
func modify(node any, path []string, f func(parent any, tok string) (any, error)) (any, error) {
	if len(path) == 1 {
		return f(node, path[0])
	}
	tok := path[0]
	switch c := node.(type) {
	case map[string]any:
		child, ok := c[tok]
		if !ok {
			return nil, errors.New("the path does not exist")
		}
		nc, err := modify(child, path[1:], f)
		if err != nil {
			return nil, err
		}
		c[tok] = nc
		return c, nil
	case []any:
		idx, err := arrayIndex(tok, len(c), false)
		if err != nil {
			return nil, err
		}
		nc, err := modify(c[idx], path[1:], f)
		if err != nil {
			return nil, err
		}
		c[idx] = nc
		return c, nil
	}
	return nil, fmt.Errorf("cannot traverse a %s", kindOf(node))
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "number"
}

func wrapPath(err error, path []string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %v", pointerOf(path), err)
}

func add(root any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	if _, err := get(root, path[:len(path)-1]); err != nil {
		return nil, err
	}
	r, err := modify(root, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			c[tok] = v
			return c, nil
		case []any:
			idx, err := arrayIndex(tok, len(c), true)
			if err != nil {
				return nil, err
			}
			c = append(c, nil)
			copy(c[idx+1:], c[idx:])
			c[idx] = v
			return c, nil
		}
		return nil, fmt.Errorf("cannot add to a %s", kindOf(parent))
	})
	return r, wrapPath(err, path)
}

func set(root any, path []string, v any) (any, error) {
	r, err := modify(root, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			c[tok] = v
			return c, nil
		case []any:
			idx, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			c[idx] = v
			return c, nil
		}
		return nil, fmt.Errorf("cannot replace in a %s", kindOf(parent))
	})
	return r, wrapPath(err, path)
}

func remove(root any, path []string) (any, any, error) {
	var removed any
	if _, err := get(root, path); err != nil {
		return nil, nil, err
	}
	r, err := modify(root, path, func(parent any, tok string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			removed = c[tok]
			delete(c, tok)
			return c, nil
		case []any:
			idx, err := arrayIndex(tok, len(c), false)
			if err != nil {
				return nil, err
			}
			removed = c[idx]
			out := make([]any, 0, len(c)-1)
			out = append(out, c[:idx]...)
			return append(out, c[idx+1:]...), nil
		}
		return nil, fmt.Errorf("cannot remove from a %s", kindOf(parent))
	})
	return r, removed, wrapPath(err, path)
}

// Equal reports whether two JSON-decoded values are equal in the sense of
// RFC 6902 "test": same type; numbers numerically equal; strings equal;
// objects with the same members (in any order) and equal values; arrays of
// the same length with equal elements in order.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !Equal(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	ra, ok1 := toRat(a)
	rb, ok2 := toRat(b)
	return ok1 && ok2 && ra.Cmp(rb) == 0
}

func toRat(v any) (*big.Rat, bool) {
	r := new(big.Rat)
	switch x := v.(type) {
	case json.Number:
		_, ok := r.SetString(string(x))
		return r, ok
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
		return r.SetFloat64(x), true
	case float32:
		return toRat(float64(x))
	case int:
		return r.SetInt64(int64(x)), true
	case int64:
		return r.SetInt64(x), true
	case int32:
		return r.SetInt64(int64(x)), true
	case uint64:
		return r.SetUint64(x), true
	}
	return nil, false
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
