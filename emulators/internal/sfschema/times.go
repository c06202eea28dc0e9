package sfschema

import (
	"fmt"
	"time"
)

// Layouts of the values the REST API returns: dates as calendar days and
// datetimes in UTC with milliseconds and a colon-less offset.
const (
	DateLayout     = "2006-01-02"
	DateTimeLayout = "2006-01-02T15:04:05.000-0700"
)

// FormatDate renders t's calendar day (in t's location) as Salesforce
// returns date fields.
func FormatDate(t time.Time) string { return t.Format(DateLayout) }

// FormatDateTime renders t in UTC as Salesforce returns datetime fields,
// e.g. 2026-01-02T15:04:05.000+0000.
func FormatDateTime(t time.Time) string { return t.UTC().Format(DateTimeLayout) }

// ParseDateTime parses a datetime as the REST API accepts it in JSON
// bodies: ISO 8601 with "Z", "+hh:mm", "+hhmm" or "+hh" offsets, optional
// fractional seconds, and no offset meaning UTC. The result is in UTC.
func ParseDateTime(s string) (time.Time, error) {
	// The accepted ISO 8601 forms, most common first. Go's parser accepts
	// fractional seconds of any length after the seconds field.
	layouts := [...]string{
		"2006-01-02T15:04:05Z07:00",
		"2006-01-02T15:04:05Z0700",
		"2006-01-02T15:04:05Z07",
		"2006-01-02T15:04:05",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
	}
	for _, layout := range layouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid datetime %q: want ISO 8601 such as 2026-01-02T15:04:05.000+0000", s)
}

// ParseDate parses a date as the REST API accepts it: "2006-01-02", or a
// datetime whose UTC calendar day is taken (Salesforce truncates a datetime
// sent to a date field the same way).
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse(DateLayout, s); err == nil {
		return t, nil
	}
	if len(s) > len(DateLayout) {
		if t, err := ParseDateTime(s); err == nil {
			y, m, d := t.Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q: want yyyy-mm-dd", s)
}
