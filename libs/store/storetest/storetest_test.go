package storetest

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestTemplateNameFollowsContent(t *testing.T) {
	fsA := fstest.MapFS{"000001_a.up.sql": {Data: []byte("CREATE TABLE a (id int);")}}
	fsA2 := fstest.MapFS{"000001_a.up.sql": {Data: []byte("CREATE TABLE a (id bigint);")}}
	fsB := fstest.MapFS{"000001_b.up.sql": {Data: []byte("CREATE TABLE b (id int);")}}

	name := func(sets ...Migrations) string {
		t.Helper()
		n, err := templateName(sets)
		if err != nil {
			t.Fatalf("templateName: %v", err)
		}
		if len(n) > 63 || !strings.HasPrefix(n, templatePrefix) {
			t.Fatalf("bad template name %q", n)
		}
		return n
	}
	base := name(Migrations{"a", fsA})
	if name(Migrations{"a", fsA}) != base {
		t.Error("same migrations, different names")
	}
	for label, other := range map[string]string{
		"changed file":     name(Migrations{"a", fsA2}),
		"other service":    name(Migrations{"x", fsA}),
		"extra set":        name(Migrations{"a", fsA}, Migrations{"b", fsB}),
		"sets reordered":   name(Migrations{"b", fsB}, Migrations{"a", fsA}),
		"file under other": name(Migrations{"a", fsB}),
	} {
		if other == base {
			t.Errorf("%s: name did not change", label)
		}
	}
	if _, err := templateName(nil); err == nil {
		t.Error("no migrations accepted")
	}
}

func TestWithDatabase(t *testing.T) {
	tests := map[string]string{
		"postgres://u:p@h:5432/postgres?sslmode=disable": "postgres://u:p@h:5432/x?sslmode=disable",
		"postgresql://h/":               "postgresql://h/x",
		"host=h user=u dbname=postgres": "host=h user=u dbname=postgres dbname=x",
	}
	for in, want := range tests {
		got, err := withDatabase(in, "x")
		if err != nil || got != want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
