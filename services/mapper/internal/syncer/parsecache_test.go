package syncer

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseCacheParsesEachDocumentOnce(t *testing.T) {
	calls := map[string]int{}
	c := newParseCache(2, func(b []byte) (string, error) {
		calls[string(b)]++
		if string(b) == "bad" {
			return "", errors.New("bad document")
		}
		return "parsed " + string(b), nil
	})
	get := func(doc string) string {
		t.Helper()
		v, err := c.get([]byte(doc))
		if err != nil {
			t.Fatalf("get %q: %v", doc, err)
		}
		if v != "parsed "+doc {
			t.Fatalf("get %q = %q", doc, v)
		}
		return v
	}
	get("a")
	get("a")
	get("b")
	if calls["a"] != 1 || calls["b"] != 1 {
		t.Errorf("parses = %v, want each document parsed once", calls)
	}
	// A third document evicts the oldest.
	get("c")
	get("a")
	if calls["a"] != 2 {
		t.Errorf("a parsed %d times after eviction, want 2", calls["a"])
	}
	// Errors are returned every time, never cached.
	for range 2 {
		if _, err := c.get([]byte("bad")); err == nil {
			t.Fatal("bad document parsed without error")
		}
	}
	if calls["bad"] != 2 {
		t.Errorf("bad parsed %d times, want 2 (errors are not cached)", calls["bad"])
	}
	if len(c.items) != 2 || len(c.order) != 2 {
		t.Errorf("cache holds %d items in an order of %d, want its capacity 2", len(c.items), len(c.order))
	}
}

func BenchmarkReferralParse(b *testing.B) {
	doc := []byte(fmt.Sprintf(`{"id":"r1","name":"Deal","status":"New","substatus":"Pending","details":{"dealValue":1234.5,"currency":"USD","closingDateTime":"2027-01-01T00:00:00Z","notes":%q},"customerProfile":{"name":"Contoso","address":{"country":"US","postalCode":"98052"}}}`,
		"a long note about the customer's plans"))
	c := newReferralCache()
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.get(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.parse(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
