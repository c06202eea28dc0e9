package opsdb

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	svc, id, err := ParseRef("salesforce-adapter:42")
	if err != nil || svc != "salesforce-adapter" || id != 42 {
		t.Errorf("ParseRef = %q %d %v", svc, id, err)
	}
	for ref, want := range map[string]string{
		"42":          "want <service>:<id>",
		"ingress:1":   `unknown service "ingress"`,
		"mapper:0":    `"0" is not a row id`,
		"mapper:abc":  `"abc" is not a row id`,
		"mapper:-3":   `"-3" is not a row id`,
		"nope:1:2":    `unknown service "nope"`,
		"mapper:1:2:": `"1:2:" is not a row id`,
	} {
		if _, _, err := ParseRef(ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRef(%q) = %v, want %q", ref, err, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db":   "postgres://u:***@h:5432/db",
		"postgres://u@h/db":               "postgres://u@h/db",
		"host=h user=u password=x port=1": "host=h user=u password=*** port=1",
		"postgres://u:p@ss@h/db?x=1":      "postgres://u:***@h/db?x=1",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
