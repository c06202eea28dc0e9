package mapping

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeExampleIsValid keeps the README's complete example a mapping
// that loads and fits the emulated org.
func TestReadmeExampleIsValid(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, after, ok := strings.Cut(doc, "## Mapping file (format version 2)")
	if !ok {
		t.Fatal("README has no mapping section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("no yaml example")
	}
	block, _, _ = strings.Cut(block, "```")
	cfg, err := Parse("README.md example", []byte(block))
	if err != nil {
		t.Fatalf("the README example does not load:\n%v", err)
	}
	if err := ValidateAgainstDescribe(cfg, describeFixture(t)); err != nil {
		t.Fatalf("the README example does not fit the emulated org:\n%v", err)
	}
	if _, err := DryRunOutbound(cfg, []byte(opportunityJSON), nil); err != nil {
		t.Fatal(err)
	}
}
