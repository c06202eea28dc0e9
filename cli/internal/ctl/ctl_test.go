package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/services/mapper/mapping"
)

// offline runs cosellctl with no environment and services that do not
// exist, for what needs none of them.
func offline(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{
		"COSELL_MAPPER_URL": "http://127.0.0.1:1", "COSELL_PARTNERCENTER_ADAPTER_URL": "http://127.0.0.1:1",
		"COSELL_SALESFORCE_ADAPTER_URL": "http://127.0.0.1:1", "DATABASE_URL": "postgres://postgres@127.0.0.1:1/none?connect_timeout=1",
		"NATS_URL": "nats://127.0.0.1:1",
	}
	app := &App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return app.Run(ctx, args), out.String(), errOut.String()
}

// TestEveryCommandHasHelp walks the command tree: every group and leaf
// answers --help with its usage and exit 0, and every leaf documents --json.
func TestEveryCommandHasHelp(t *testing.T) {
	var walk func(c *command, path []string)
	n := 0
	walk = func(c *command, path []string) {
		args := append(append([]string(nil), path...), "--help")
		code, out, errOut := offline(t, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: cosellctl") {
			t.Errorf("cosellctl %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		if len(c.sub) == 0 {
			n++
			if !strings.Contains(out, "--json") || !strings.Contains(out, "--database-url URL") {
				t.Errorf("cosellctl %s --help lacks the common flags:\n%s", strings.Join(path, " "), out)
			}
		}
		for _, s := range c.sub {
			walk(s, append(append([]string(nil), path...), s.name))
		}
	}
	walk(tree(), nil)
	if n < 12 {
		t.Errorf("walked %d leaf commands, want at least 12", n)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"links", "show"}, "missing referral or opportunity id"},
		{[]string{"links", "show", "a", "b"}, "want one referral or opportunity id, got 2 arguments"},
		{[]string{"links", "list", "--state", "gone"}, `--state "gone": want active, parked, orphaned or stopped`},
		{[]string{"audit", "--bogus", "x"}, "flag provided but not defined: -bogus"},
		{[]string{"mapping", "dry-run"}, "give exactly one of --referral ID or --opportunity ID"},
		{[]string{"mapping", "dry-run", "--referral", "a", "--opportunity", "b"}, "give exactly one"},
		{[]string{"mapping", "dry-run", "--referral", "a", "--event", "delete"}, `--event "delete": want create or update`},
		{[]string{"dead-letters", "show", "12"}, `want <service>:<id>`},
		{[]string{"dead-letters", "replay", "ingress:1"}, `unknown service "ingress"`},
		{[]string{"dead-letters", "show", "mapper:x"}, `"x" is not a row id`},
		{[]string{"backfill"}, "--since is required"},
		{[]string{"backfill", "--since", "yesterday"}, `--since "yesterday": want a date`},
		{[]string{"status", "extra"}, `unexpected argument "extra"`},
		{[]string{"backfill", "--since", "2026-01-01", "--json"}, "backfill: --json does not apply"},
		{[]string{"partnercenter", "login", "--json"}, "partnercenter login: --json does not apply"},
	} {
		code, _, errOut := offline(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("cosellctl %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// TestUnreachableServicesAreNamed: errors say which service at which URL.
func TestUnreachableServicesAreNamed(t *testing.T) {
	code, _, errOut := offline(t, "resync", "R-1")
	if code != 1 || !strings.Contains(errOut, "mapper at http://127.0.0.1:1 is not reachable") {
		t.Errorf("resync: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = offline(t, "links", "list")
	if code != 1 || !strings.Contains(errOut, "postgres at postgres://postgres@127.0.0.1:1/none") || !strings.Contains(errOut, "not reachable") {
		t.Errorf("links list: exit %d, stderr %q", code, errOut)
	}
	code, out, _ := offline(t, "status")
	if code != 1 || !containsAll(out, "ingress", "NO", "salesforce-adapter at http://127.0.0.1:1 is not reachable", "NATS at nats://127.0.0.1:1 is not reachable") {
		t.Errorf("status: exit %d:\n%s", code, out)
	}
	code, _, errOut = offline(t, "mapping", "validate")
	if code != 1 || !strings.Contains(errOut, "--offline") {
		t.Errorf("validate against an unreachable describe: exit %d, stderr %q", code, errOut)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func TestMappingValidateFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, mapping.DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := offline(t, "mapping", "validate", "--file", good, "--offline")
	if code != 0 || !strings.Contains(out, good+": valid (") {
		t.Errorf("validate good: exit %d\n%s%s", code, out, errOut)
	}

	// Break one rule's conversion and name a value map that does not exist.
	text := strings.Replace(string(mapping.DefaultYAML()), "as: date", "as: dat", 1)
	text = strings.Replace(text, "map: stage", "map: stages", 1)
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	lineOf := func(needle string) int {
		for i, l := range strings.Split(text, "\n") {
			if strings.Contains(l, needle) {
				return i + 1
			}
		}
		t.Fatalf("%q not in the file", needle)
		return 0
	}
	code, out, _ = offline(t, "mapping", "validate", "--file", bad, "--offline")
	if code != 1 {
		t.Errorf("validate bad: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		bad + ":" + strconv.Itoa(lineOf("as: dat")) + ":", `(CloseDate).as: unknown type "dat"`,
		bad + ":" + strconv.Itoa(lineOf("map: stages")) + ":", "(StageName).map", "2 problem(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate bad lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = offline(t, "mapping", "validate", "--file", bad, "--offline", "--json")
	var res struct {
		Valid    bool
		Problems []mapping.Problem
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Valid || len(res.Problems) != 2 {
		t.Fatalf("validate bad --json: exit %d, %v\n%s", code, err, out)
	}
	if p := res.Problems[0]; p.File != bad || p.Line != lineOf("as: dat") || !strings.HasSuffix(p.Field, "(CloseDate).as") {
		t.Errorf("first problem = %+v", p)
	}

	code, _, errOut = offline(t, "mapping", "validate", "--file", filepath.Join(dir, "missing.yaml"))
	if code != 1 || !strings.Contains(errOut, "read mapping file") {
		t.Errorf("validate a missing file: exit %d, %q", code, errOut)
	}
}

func TestParseAllowsFlagsAfterArguments(t *testing.T) {
	e := &env{app: &App{Stdout: &bytes.Buffer{}, Getenv: func(string) string { return "" }}}
	fs := e.flags("x", "", "")
	limit := fs.Int("limit", 1, "")
	args, err := parse(fs, []string{"R-1", "--json", "--limit", "7", "--", "--not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(args, "|") != "R-1|--not-a-flag" || !e.opts.json || *limit != 7 {
		t.Errorf("args %q json %v limit %d", args, e.opts.json, *limit)
	}
	if e.opts.mapperURL != DefaultMapperURL || e.opts.databaseURL != DefaultDatabaseURL {
		t.Errorf("defaults: %+v", e.opts)
	}
}

func TestEnvironmentOverridesDefaults(t *testing.T) {
	vars := map[string]string{"DATABASE_URL": "postgres://db/x", "COSELL_MAPPER_URL": "http://mapper:1"}
	e := &env{app: &App{Stdout: &bytes.Buffer{}, Getenv: func(k string) string { return vars[k] }}}
	fs := e.flags("x", "", "")
	if _, err := parse(fs, []string{"--mapper-url", "http://flag:2"}); err != nil {
		t.Fatal(err)
	}
	if e.opts.databaseURL != "postgres://db/x" || e.opts.mapperURL != "http://flag:2" || e.opts.sfURL != DefaultSFURL {
		t.Errorf("options %+v", e.opts)
	}
}

func TestInlineJSONBytes(t *testing.T) {
	doc := []byte(`{"referral_id":"R-1","referral_json":"eyJpZCI6IlItMSJ9"}`) // base64 of {"id":"R-1"}
	var got map[string]any
	if err := json.Unmarshal(inlineJSONBytes(doc), &got); err != nil {
		t.Fatal(err)
	}
	if m, ok := got["referral_json"].(map[string]any); !ok || m["id"] != "R-1" {
		t.Errorf("referral_json = %#v", got["referral_json"])
	}
}

func TestTableAndAgo(t *testing.T) {
	var b bytes.Buffer
	tb := newTable("A", "LONGER")
	tb.add("x\ty", "")
	tb.add("wide value", "z\nz")
	if err := tb.print(&b); err != nil {
		t.Fatal(err)
	}
	want := "A           LONGER\nx y         -\nwide value  z z\n"
	if b.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", b.String(), want)
	}
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{5 * time.Second: "5s ago", 3 * time.Minute: "3m ago", 26*time.Hour + 5*time.Minute: "26h05m ago", 72 * time.Hour: "3d ago"} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
	if truncate("abcdef", 4) != "abc…" || truncate("abc", 4) != "abc" {
		t.Errorf("truncate")
	}
}

// TestMappingValidateAgainstDescribeFile checks the default mapping against
// the Salesforce emulator's Opportunity describe, then against one whose
// StageName picklist lacks the on-hold stage the mapping writes.
func TestMappingValidateAgainstDescribeFile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "services", "mapper", "mapping", "testdata", "opportunity-describe.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "describe.json")
	if err := os.WriteFile(good, src, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := offline(t, "mapping", "validate", "--describe-file", good)
	if code != 0 || !strings.Contains(out, ": valid (") || !strings.Contains(out, "checked against") {
		t.Fatalf("validate against the emulator's describe: exit %d\n%s%s", code, out, errOut)
	}

	var d map[string]any
	if err := json.Unmarshal(src, &d); err != nil {
		t.Fatal(err)
	}
	removed := false
	for _, f := range d["fields"].([]any) {
		fm := f.(map[string]any)
		if fm["name"] != "StageName" {
			continue
		}
		var kept []any
		for _, v := range fm["picklistValues"].([]any) {
			if v.(map[string]any)["value"] == "On Hold" {
				removed = true
				continue
			}
			kept = append(kept, v)
		}
		fm["picklistValues"] = kept
	}
	if !removed {
		t.Fatal("the describe fixture has no On Hold stage to remove")
	}
	b, _ := json.Marshal(d)
	bad := filepath.Join(dir, "describe-without-on-hold.json")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = offline(t, "mapping", "validate", "--describe-file", bad)
	if code != 1 || !strings.Contains(out, "On Hold") || !strings.Contains(out, "default.yaml (embedded):") {
		t.Errorf("validate against a describe without On Hold: exit %d\n%s%s", code, out, errOut)
	}
}
