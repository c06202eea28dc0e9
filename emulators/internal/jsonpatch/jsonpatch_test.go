package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func decodeDoc(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("bad test document %s: %v", s, err)
	}
	return m
}

func canonical(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// apply decodes and applies patch to doc and returns the result as
// canonical JSON, or the error.
func apply(t *testing.T, doc, patch string) (string, error) {
	t.Helper()
	ops, err := Decode([]byte(patch))
	if err != nil {
		return "", err
	}
	d := decodeDoc(t, doc)
	before := canonical(t, d)
	out, err := Apply(d, ops)
	if after := canonical(t, d); after != before {
		t.Errorf("Apply modified its input: %s -> %s", before, after)
	}
	if err != nil {
		if out != nil {
			t.Errorf("Apply returned a document together with an error")
		}
		return "", err
	}
	return canonical(t, out), nil
}

func TestRFC6902AppendixA(t *testing.T) {
	cases := []struct {
		name, doc, patch, want, err string
	}{
		{"A.1 add object member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`,
			`{"baz":"qux","foo":"bar"}`, ""},
		{"A.2 add array element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`,
			`{"foo":["bar","qux","baz"]}`, ""},
		{"A.3 remove object member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`,
			`{"foo":"bar"}`, ""},
		{"A.4 remove array element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`,
			`{"foo":["bar","baz"]}`, ""},
		{"A.5 replace value", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`,
			`{"baz":"boo","foo":"bar"}`, ""},
		{"A.6 move value", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`,
			`[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			`{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`, ""},
		{"A.7 move array element", `{"foo":["all","grass","cows","eat"]}`, `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`,
			`{"foo":["all","cows","eat","grass"]}`, ""},
		{"A.8 test success", `{"baz":"qux","foo":["a",2,"c"]}`,
			`[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`,
			`{"baz":"qux","foo":["a",2,"c"]}`, ""},
		{"A.9 test error", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, "", "test failed"},
		{"A.10 add nested member object", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`,
			`{"child":{"grandchild":{}},"foo":"bar"}`, ""},
		{"A.11 ignore unrecognized members", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","xyz":123}]`,
			`{"baz":"qux","foo":"bar"}`, ""},
		{"A.12 add to nonexistent target", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`,
			"", "/baz does not exist"},
		{"A.13 invalid patch document", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","op":"remove"}]`,
			"", `"op" appears more than once`},
		{"A.14 ~ escape ordering", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`,
			`{"/":9,"~1":10}`, ""},
		{"A.15 strings and numbers", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":"10"}]`, "", "test failed"},
		{"A.16 add array value", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`,
			`{"foo":["bar",["abc","def"]]}`, ""},
	}
	for _, c := range cases {
		got, err := apply(t, c.doc, c.patch)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := canonical(t, decodeDoc(t, c.want)); got != want {
			t.Errorf("%s: got %s, want %s", c.name, got, want)
		}
	}
}

func TestOperations(t *testing.T) {
	cases := []struct {
		name, doc, patch, want, err string
	}{
		// add
		{"add replaces an existing member", `{"a":1}`, `[{"op":"add","path":"/a","value":2}]`, `{"a":2}`, ""},
		{"add null", `{}`, `[{"op":"add","path":"/a","value":null}]`, `{"a":null}`, ""},
		{"add append with -", `{"a":[1]}`, `[{"op":"add","path":"/a/-","value":2},{"op":"add","path":"/a/-","value":3}]`, `{"a":[1,2,3]}`, ""},
		{"add at length appends", `{"a":[1]}`, `[{"op":"add","path":"/a/1","value":2}]`, `{"a":[1,2]}`, ""},
		{"add at 0 prepends", `{"a":[1]}`, `[{"op":"add","path":"/a/0","value":0}]`, `{"a":[0,1]}`, ""},
		{"add to empty array", `{"a":[]}`, `[{"op":"add","path":"/a/-","value":{"x":1}}]`, `{"a":[{"x":1}]}`, ""},
		{"add past the end", `{"a":[1]}`, `[{"op":"add","path":"/a/2","value":2}]`, "", "out of bounds"},
		{"add with leading zero", `{"a":[1,2]}`, `[{"op":"add","path":"/a/01","value":2}]`, "", `"01" is not a valid array index`},
		{"add with negative index", `{"a":[1,2]}`, `[{"op":"add","path":"/a/-1","value":2}]`, "", "not a valid array index"},
		{"add - on an object is a member name", `{"a":{}}`, `[{"op":"add","path":"/a/-","value":1}]`, `{"a":{"-":1}}`, ""},
		{"add empty member name", `{}`, `[{"op":"add","path":"/","value":1}]`, `{"":1}`, ""},
		{"add into a string", `{"a":"s"}`, `[{"op":"add","path":"/a/b","value":1}]`, "", "cannot add to a string"},
		{"add deep in arrays", `{"a":[{"b":[1]}]}`, `[{"op":"add","path":"/a/0/b/-","value":2}]`, `{"a":[{"b":[1,2]}]}`, ""},
		{"add through a missing array element", `{"a":[]}`, `[{"op":"add","path":"/a/0/b","value":2}]`, "", "out of bounds"},
		{"add replaces the root", `{"a":1}`, `[{"op":"add","path":"","value":{"b":2}}]`, `{"b":2}`, ""},
		{"add a non-object root", `{"a":1}`, `[{"op":"add","path":"","value":[1]}]`, "", "root must remain a JSON object"},
		{"add escaped names", `{}`, `[{"op":"add","path":"/a~1b","value":1},{"op":"add","path":"/m~0n","value":2}]`, `{"a/b":1,"m~n":2}`, ""},
		// remove
		{"remove missing member", `{"a":1}`, `[{"op":"remove","path":"/b"}]`, "", "/b does not exist"},
		{"remove last element", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/1"}]`, `{"a":[1]}`, ""},
		{"remove past the end", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/2"}]`, "", "out of bounds"},
		{"remove -", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/-"}]`, "", "nonexistent element"},
		{"remove the root", `{"a":1}`, `[{"op":"remove","path":""}]`, "", "cannot remove the whole document"},
		{"remove ignores value", `{"a":1}`, `[{"op":"remove","path":"/a","value":5}]`, `{}`, ""},
		// replace
		{"replace missing member", `{"a":1}`, `[{"op":"replace","path":"/b","value":2}]`, "", "/b does not exist"},
		{"replace array element", `{"a":[1,2]}`, `[{"op":"replace","path":"/a/0","value":9}]`, `{"a":[9,2]}`, ""},
		{"replace -", `{"a":[1,2]}`, `[{"op":"replace","path":"/a/-","value":9}]`, "", "nonexistent element"},
		{"replace a null member", `{"a":null}`, `[{"op":"replace","path":"/a","value":"x"}]`, `{"a":"x"}`, ""},
		{"replace the root", `{"a":1}`, `[{"op":"replace","path":"","value":{"z":0}}]`, `{"z":0}`, ""},
		{"replace the root with a string", `{"a":1}`, `[{"op":"replace","path":"","value":"x"}]`, "", "root must remain"},
		{"replace inside a number", `{"a":1}`, `[{"op":"replace","path":"/a/b","value":2}]`, "", "/a/b does not exist: /a is not an object or array"},
		// move
		{"move to itself", `{"a":1}`, `[{"op":"move","from":"/a","path":"/a"}]`, `{"a":1}`, ""},
		{"move into own child", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":"/a/b/c"}]`, "", "into its own child"},
		{"move missing", `{"a":1}`, `[{"op":"move","from":"/x","path":"/y"}]`, "", "from: the path /x does not exist"},
		{"move overwrites", `{"a":1,"b":2}`, `[{"op":"move","from":"/a","path":"/b"}]`, `{"b":1}`, ""},
		{"move between arrays", `{"a":[1,2],"b":[]}`, `[{"op":"move","from":"/a/0","path":"/b/-"}]`, `{"a":[2],"b":[1]}`, ""},
		{"move to a missing parent", `{"a":1}`, `[{"op":"move","from":"/a","path":"/x/y"}]`, "", "/x does not exist"},
		{"move a prefix that is not a parent", `{"a":1,"ab":2}`, `[{"op":"move","from":"/a","path":"/ab"}]`, `{"ab":1}`, ""},
		// copy
		{"copy member", `{"a":{"x":1}}`, `[{"op":"copy","from":"/a","path":"/b"}]`, `{"a":{"x":1},"b":{"x":1}}`, ""},
		{"copy then change the copy", `{"a":{"x":1}}`, `[{"op":"copy","from":"/a","path":"/b"},{"op":"replace","path":"/b/x","value":2}]`, `{"a":{"x":1},"b":{"x":2}}`, ""},
		{"copy into an array", `{"a":[1,2]}`, `[{"op":"copy","from":"/a/1","path":"/a/0"}]`, `{"a":[2,1,2]}`, ""},
		{"copy the root into itself", `{"a":1}`, `[{"op":"copy","from":"","path":"/b"}]`, `{"a":1,"b":{"a":1}}`, ""},
		{"copy missing", `{"a":1}`, `[{"op":"copy","from":"/x","path":"/b"}]`, "", "from: the path /x does not exist"},
		// test
		{"test numbers by value", `{"a":1}`, `[{"op":"test","path":"/a","value":1.0}]`, `{"a":1}`, ""},
		{"test 1e2 equals 100", `{"a":100}`, `[{"op":"test","path":"/a","value":1e2}]`, `{"a":100}`, ""},
		{"test objects in any order", `{"a":{"x":1,"y":[1,{"z":null}]}}`, `[{"op":"test","path":"/a","value":{"y":[1,{"z":null}],"x":1}}]`, `{"a":{"x":1,"y":[1,{"z":null}]}}`, ""},
		{"test array order matters", `{"a":[1,2]}`, `[{"op":"test","path":"/a","value":[2,1]}]`, "", "test failed"},
		{"test null vs missing", `{"a":1}`, `[{"op":"test","path":"/b","value":null}]`, "", "/b does not exist"},
		{"test null", `{"a":null}`, `[{"op":"test","path":"/a","value":null}]`, `{"a":null}`, ""},
		{"test bool vs number", `{"a":true}`, `[{"op":"test","path":"/a","value":1}]`, "", "test failed"},
		{"test the root", `{"a":1}`, `[{"op":"test","path":"","value":{"a":1}}]`, `{"a":1}`, ""},
		{"test extra member", `{"a":{"x":1}}`, `[{"op":"test","path":"/a","value":{"x":1,"y":2}}]`, "", "test failed"},
		// sequences are applied in order, atomically
		{"later ops see earlier ones", `{}`, `[{"op":"add","path":"/a","value":[]},{"op":"add","path":"/a/-","value":1},{"op":"test","path":"/a/0","value":1}]`, `{"a":[1]}`, ""},
		{"a failure undoes everything", `{"a":1}`, `[{"op":"replace","path":"/a","value":2},{"op":"remove","path":"/nope"}]`, "", "operation 1"},
		{"empty patch", `{"a":1}`, `[]`, `{"a":1}`, ""},
	}
	for _, c := range cases {
		got, err := apply(t, c.doc, c.patch)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := canonical(t, decodeDoc(t, c.want)); got != want {
			t.Errorf("%s: got %s, want %s", c.name, got, want)
		}
	}
}

func TestDecode(t *testing.T) {
	ops, err := Decode([]byte(`[
		{"Op":"Replace","Path":"/details/dealValue","Value":"10000"},
		{"OP":"add","PATH":"/team/-","VALUE":{"email":"jane.doe@contoso.com","firstName":"Jane"}},
		{"op":"move","from":"/a","path":"/b"},
		{"op":"add","path":"/n","value":12345678901234567890.5},
		{"op":"add","path":"/x","value":null}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Operation{
		{Op: "replace", Path: "/details/dealValue", Value: json.RawMessage(`"10000"`), HasValue: true},
		{Op: "add", Path: "/team/-", Value: json.RawMessage(`{"email":"jane.doe@contoso.com","firstName":"Jane"}`), HasValue: true},
		{Op: "move", Path: "/b", From: "/a"},
		{Op: "add", Path: "/n", Value: json.RawMessage(`12345678901234567890.5`), HasValue: true},
		{Op: "add", Path: "/x", Value: json.RawMessage(`null`), HasValue: true},
	}
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("Decode = %+v", ops)
	}
	// Values are decoded with UseNumber: the big number keeps its digits.
	out, err := Apply(map[string]any{}, ops[3:4])
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := out["n"].(json.Number); !ok || n != "12345678901234567890.5" {
		t.Errorf("value decoded as %T %v, want json.Number", out["n"], out["n"])
	}

	bad := []struct{ body, want string }{
		{``, "not valid JSON"},
		{`[`, "not valid JSON"},
		{`{"op":"add","path":"/a","value":1}`, "must be a JSON array"},
		{`null`, "must be a JSON array"},
		{`"x"`, "must be a JSON array"},
		{`[] []`, "not valid JSON"},
		{`[1]`, "operation 0 (op \"\", path \"\"): an operation must be a JSON object, found a number"},
		{`[{"op":"test","path":"","value":1}, "x"]`, "operation 1"},
		{`[[]]`, "found an array"},
		{`[null]`, "found null"},
		{`[{"path":"/a","value":1}]`, `no "op" member`},
		{`[{"op":"add","value":1}]`, `no "path" member`},
		{`[{"op":"add","path":"/a"}]`, `needs a "value" member`},
		{`[{"op":"replace","path":"/a"}]`, `needs a "value" member`},
		{`[{"op":"test","path":"/a"}]`, `needs a "value" member`},
		{`[{"op":"move","path":"/a"}]`, `needs a "from" member`},
		{`[{"op":"copy","path":"/a"}]`, `needs a "from" member`},
		{`[{"op":"delete","path":"/a"}]`, `unknown operation "delete"`},
		{`[{"op":"","path":"/a"}]`, `unknown operation ""`},
		{`[{"op":1,"path":"/a"}]`, `"op" must be a string`},
		{`[{"op":"remove","path":5}]`, `"path" must be a string`},
		{`[{"op":"move","path":"/a","from":null}]`, `"from" must be a string`},
		{`[{"op":"remove","path":"a"}]`, "must be empty or start with '/'"},
		{`[{"op":"remove","path":"/a~2"}]`, "'~' not followed by '0' or '1'"},
		{`[{"op":"remove","path":"/a~"}]`, "'~' not followed"},
		{`[{"op":"move","path":"/a","from":"b"}]`, "invalid from"},
		{`[{"op":"add","Path":"/a","path":"/b","value":1}]`, `"path" appears more than once`},
		{`[{"op":"add","path":"/a","value":1,"VALUE":2}]`, `"value" appears more than once`},
	}
	for _, c := range bad {
		_, err := Decode([]byte(c.body))
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Decode(%s) = %v, want *Error", c.body, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode(%s) error %q, want it to contain %q", c.body, err, c.want)
		}
	}
}

func TestParsePointer(t *testing.T) {
	// RFC 6901 §5 examples.
	doc := decodeDoc(t, `{"foo":["bar","baz"],"":0,"a/b":1,"c%d":2,"e^f":3,"g|h":4,"i\\j":5,"k\"l":6," ":7,"m~n":8}`)
	cases := []struct {
		ptr  string
		want string
	}{
		{"", canonical(t, doc)}, {"/foo", `["bar","baz"]`}, {"/foo/0", `"bar"`}, {"/", "0"},
		{"/a~1b", "1"}, {"/c%d", "2"}, {"/e^f", "3"}, {"/g|h", "4"}, {`/i\j`, "5"},
		{`/k"l`, "6"}, {"/ ", "7"}, {"/m~0n", "8"},
	}
	for _, c := range cases {
		toks, err := ParsePointer(c.ptr)
		if err != nil {
			t.Errorf("ParsePointer(%q): %v", c.ptr, err)
			continue
		}
		v, err := get(doc, toks)
		if err != nil {
			t.Errorf("get(%q): %v", c.ptr, err)
			continue
		}
		if got := canonical(t, v); got != c.want {
			t.Errorf("%q -> %s, want %s", c.ptr, got, c.want)
		}
	}
	toks, _ := ParsePointer("/a~01/~10/b//")
	if want := []string{"a~1", "/0", "b", "", ""}; !reflect.DeepEqual(toks, want) {
		t.Errorf("ParsePointer tokens = %q, want %q", toks, want)
	}
	if toks, _ := ParsePointer(""); toks == nil || len(toks) != 0 {
		t.Errorf("ParsePointer(\"\") = %#v, want empty non-nil", toks)
	}
	for _, bad := range []string{"a", "#/a", "/~", "/~x", "/a~"} {
		if _, err := ParsePointer(bad); err == nil {
			t.Errorf("ParsePointer(%q) succeeded", bad)
		}
	}
}

func TestApplyIsAtomicAndIndependent(t *testing.T) {
	doc := decodeDoc(t, `{"team":[{"email":"a"}],"details":{"dealValue":1,"tags":["x"]}}`)
	before := canonical(t, doc)
	ops, err := Decode([]byte(`[
		{"op":"add","path":"/team/-","value":{"email":"b"}},
		{"op":"replace","path":"/details/dealValue","value":2},
		{"op":"remove","path":"/details/tags/0"},
		{"op":"test","path":"/details/dealValue","value":3}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Apply(doc, ops)
	var pe *Error
	if !errors.As(err, &pe) || pe.Index != 3 || pe.Op != "test" || pe.Path != "/details/dealValue" || out != nil {
		t.Fatalf("Apply = %v, %#v", out, err)
	}
	if got := canonical(t, doc); got != before {
		t.Fatalf("failed Apply changed the input: %s", got)
	}
	out, err = Apply(doc, ops[:3])
	if err != nil {
		t.Fatal(err)
	}
	if got := canonical(t, doc); got != before {
		t.Fatalf("successful Apply changed the input: %s", got)
	}
	if got, want := canonical(t, out), `{"details":{"dealValue":2,"tags":[]},"team":[{"email":"a"},{"email":"b"}]}`; got != want {
		t.Errorf("Apply = %s, want %s", got, want)
	}
	// The result shares nothing with the input.
	out["team"].([]any)[0].(map[string]any)["email"] = "changed"
	if doc["team"].([]any)[0].(map[string]any)["email"] != "a" {
		t.Error("result shares memory with the input")
	}
	// A nil document is an empty object.
	out, err = Apply(nil, []Operation{{Op: "add", Path: "/a", Value: json.RawMessage(`1`)}})
	if err != nil || canonical(t, out) != `{"a":1}` {
		t.Errorf("Apply(nil) = %v, %v", out, err)
	}
}

func TestApplyHandBuiltOperations(t *testing.T) {
	doc := map[string]any{"a": 1.0, "b": []any{"x"}}
	cases := []struct {
		op   Operation
		want string
		err  string
	}{
		{Operation{Op: "Replace", Path: "/a", Value: json.RawMessage(`2`)}, `{"a":2,"b":["x"]}`, ""},
		{Operation{Op: "add", Path: "/c", Value: json.RawMessage(`null`), HasValue: true}, `{"a":1,"b":["x"],"c":null}`, ""},
		{Operation{Op: "add", Path: "/c"}, "", `needs a "value" member`},
		{Operation{Op: "test", Path: "/a", Value: json.RawMessage(`1`)}, `{"a":1,"b":["x"]}`, ""},
		{Operation{Op: "test", Path: "/a", Value: json.RawMessage(`{`)}, "", "invalid value"},
		{Operation{Op: "nope", Path: "/a"}, "", "unknown operation"},
		{Operation{Op: "remove", Path: "a"}, "", "invalid path"},
		{Operation{Op: "move", Path: "/z"}, "", "into its own child"}, // From "" is the root
	}
	for _, c := range cases {
		out, err := Apply(doc, []Operation{c.op})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: error %v, want %q", c.op, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c.op, err)
			continue
		}
		if got := canonical(t, out); got != c.want {
			t.Errorf("%+v: got %s, want %s", c.op, got, c.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Index: 2, Op: "replace", Path: "/status", Message: "boom"}
	if got := e.Error(); got != `json patch operation 2 (op "replace", path "/status"): boom` {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{Index: -1, Message: "bad"}).Error(); got != "json patch: bad" {
		t.Errorf("Error() = %q", got)
	}
}

func TestEqual(t *testing.T) {
	yes := [][2]any{
		{json.Number("1"), 1.0}, {json.Number("1.50"), 1.5}, {json.Number("1e3"), json.Number("1000")},
		{1, json.Number("1")}, {nil, nil}, {"a", "a"},
		{[]any{1.0, "x"}, []any{json.Number("1"), "x"}},
		{map[string]any{"a": []any{}}, map[string]any{"a": []any{}}},
	}
	no := [][2]any{
		{json.Number("1"), "1"}, {nil, false}, {map[string]any{}, []any{}}, {[]any{1.0}, []any{1.0, 1.0}},
		{map[string]any{"a": nil}, map[string]any{"b": nil}}, {0.1, json.Number("0.1")},
	}
	for _, c := range yes {
		if !Equal(c[0], c[1]) || !Equal(c[1], c[0]) {
			t.Errorf("Equal(%#v, %#v) = false", c[0], c[1])
		}
	}
	for _, c := range no {
		if Equal(c[0], c[1]) || Equal(c[1], c[0]) {
			t.Errorf("Equal(%#v, %#v) = true", c[0], c[1])
		}
	}
}

func TestReferenceSamplePatch(t *testing.T) {
	// The merged Microsoft sample of reference §2.9.
	doc := `{"status":"Active","substatus":"Accepted","details":{"dealValue":5000,"notes":""},"team":[]}`
	patch := `[
		{"op":"replace","path":"/details/dealValue","value":"10000"},
		{"op":"replace","path":"/details/notes","value":"Lorem ipsum dolor sit amet."},
		{"op":"replace","path":"/status","value":"Closed"},
		{"op":"replace","path":"/substatus","value":"Won"},
		{"op":"add","path":"/team/-","value":{"email":"jane.doe@contoso.com","firstName":"Jane","lastName":"Doe","phoneNumber":"0000000001"}}
	]`
	got, err := apply(t, doc, patch)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"details":{"dealValue":"10000","notes":"Lorem ipsum dolor sit amet."},"status":"Closed","substatus":"Won","team":[{"email":"jane.doe@contoso.com","firstName":"Jane","lastName":"Doe","phoneNumber":"0000000001"}]}`
	if got != want {
		t.Errorf("got %s", got)
	}
}

func FuzzDecodeApply(f *testing.F) {
	for _, s := range []string{
		`[{"op":"add","path":"/a/-","value":1}]`,
		`[{"op":"move","from":"/a/0","path":"/b"}]`,
		`[{"op":"copy","from":"","path":"/c"},{"op":"test","path":"/c/a","value":[1,2]}]`,
		`[{"Op":"Replace","Path":"/b/x","Value":{"y":null}}]`,
		`[{"op":"remove","path":"/a/1"},{"op":"replace","path":"","value":{}}]`,
	} {
		f.Add([]byte(s))
	}
	const docJSON = `{"a":[1,2,{"k":"v"}],"b":{"x":true,"m~n":{"/":0}},"":null}`
	f.Fuzz(func(t *testing.T, body []byte) {
		ops, err := Decode(body)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Decode returned a non-*Error: %v", err)
			}
			return
		}
		doc := decodeDoc(t, docJSON)
		out, err := Apply(doc, ops)
		if got := canonical(t, doc); got != canonical(t, decodeDoc(t, docJSON)) {
			t.Fatalf("Apply modified its input: %s", got)
		}
		if err == nil {
			// The result must be plain JSON.
			b, merr := json.Marshal(out)
			if merr != nil || !json.Valid(b) || !bytes.HasPrefix(b, []byte("{")) {
				t.Fatalf("Apply produced %s, %v", b, merr)
			}
		} else if out != nil {
			t.Fatal("document returned with an error")
		}
	})
}
