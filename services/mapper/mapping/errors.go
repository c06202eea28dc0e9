package mapping

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a mapping file.
type Problem struct {
	// File is the mapping file's name.
	File string
	// Line and Column locate the problem (1-based; 0 when unknown).
	Line, Column int
	// Field is the setting at fault, as a path into the file, e.g.
	// "inbound.fields[3].as".
	Field string
	// Message says what is wrong, in plain words.
	Message string
}

// String renders the problem as file:line:column: field: message, the
// form editors and CI logs link to.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ValidationError lists every problem found in a mapping file, so one run
// shows them all.
type ValidationError struct {
	Problems []Problem
}

// Error renders every problem, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("invalid mapping (%d problems):", len(e.Problems)))
	if len(e.Problems) == 1 {
		lines[0] = "invalid mapping:"
	}
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

// FieldError says why one field rule could not map a referral: a required
// value is missing, or a value cannot be converted. Nothing is sent for
// such a referral; the message is written to the audit log.
type FieldError struct {
	// Field is the Salesforce field the rule writes.
	Field string
	// Line is the rule's line in the mapping file.
	Line int
	// Message says what is wrong with the referral's data.
	Message string
}

// Error renders the field and message.
func (e *FieldError) Error() string {
	return fmt.Sprintf("field %s (mapping line %d): %s", e.Field, e.Line, e.Message)
}

// ProjectionError collects the FieldErrors of one referral.
type ProjectionError struct {
	Fields []*FieldError
}

// Error renders every field error.
func (e *ProjectionError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "the referral cannot be mapped: " + strings.Join(parts, "; ")
}
