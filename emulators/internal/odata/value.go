package odata

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// num is a number as read from JSON or a literal. f is its float64 value;
// s, when set, is its exact decimal text, used to break ties that float64
// rounding would otherwise create (so 0.1000000000000000001 ne 0.1).
type num struct {
	f float64
	s string
}

func parseNum(s string) (num, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return num{}, false
	}
	return num{f: f, s: s}, true
}

func (n num) rat() *big.Rat {
	r := new(big.Rat)
	if n.s != "" {
		if _, ok := r.SetString(n.s); ok {
			return r
		}
	}
	r.SetFloat64(n.f)
	return r
}

// cmpNum compares two numbers. When both carry their decimal text the
// comparison is exact: rounding to float64 is monotonic, so a strict float64
// order is the exact order and only float64 ties need the text. A number
// that arrived as a float64 has already been rounded, so it compares as a
// float64 (0.1 from a float64 document equals the literal 0.1).
func cmpNum(a, b num) int {
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	if a.s == "" || b.s == "" {
		return 0
	}
	return a.rat().Cmp(b.rat())
}

// parseLiteralDateTime parses an OData DateTimeOffset literal:
// yyyy-mm-ddThh:mm[:ss[.fffffffffff]](Z|±hh:mm). The offset is required.
func parseLiteralDateTime(s string) (time.Time, bool) {
	return parseISODateTime(s, false)
}

// parseStoredDateTime parses a date-time stored in a document. It accepts
// what parseLiteralDateTime accepts, a missing offset (read as UTC) and a
// bare date (midnight UTC), so data written by clients in those forms still
// compares sensibly.
func parseStoredDateTime(s string) (time.Time, bool) {
	if t, ok := parseISODateTime(s, true); ok {
		return t, true
	}
	if len(s) == 10 {
		if y, m, d, ok := parseDate(s); ok {
			return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
		}
	}
	return time.Time{}, false
}

func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseDate parses yyyy-mm-dd and validates the calendar date.
func parseDate(s string) (y, m, d int, ok bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	y, ok1 := digits(s[0:4])
	m, ok2 := digits(s[5:7])
	d, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 {
		return 0, 0, 0, false
	}
	if d > time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func parseISODateTime(s string, offsetOptional bool) (time.Time, bool) {
	if len(s) < 16 || s[10] != 'T' {
		return time.Time{}, false
	}
	y, mo, d, ok := parseDate(s[:10])
	if !ok {
		return time.Time{}, false
	}
	rest := s[11:]
	// hh:mm
	if len(rest) < 5 || rest[2] != ':' {
		return time.Time{}, false
	}
	hh, ok1 := digits(rest[0:2])
	mi, ok2 := digits(rest[3:5])
	if !ok1 || !ok2 || hh > 23 || mi > 59 {
		return time.Time{}, false
	}
	rest = rest[5:]
	sec, nsec := 0, 0
	if strings.HasPrefix(rest, ":") {
		if len(rest) < 3 {
			return time.Time{}, false
		}
		var ok bool
		sec, ok = digits(rest[1:3])
		if !ok || sec > 59 {
			return time.Time{}, false
		}
		rest = rest[3:]
		if strings.HasPrefix(rest, ".") {
			j := 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			frac := rest[1:j]
			if frac == "" || len(frac) > 12 {
				return time.Time{}, false
			}
			for k := 0; k < 9; k++ {
				nsec *= 10
				if k < len(frac) {
					nsec += int(frac[k] - '0')
				}
			}
			rest = rest[j:]
		}
	}
	loc := time.UTC
	switch {
	case rest == "Z" || rest == "z":
	case rest == "" && offsetOptional:
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		off := oh*3600 + om*60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, hh, mi, sec, nsec, loc), true
}

// parseGuid normalises a GUID in 8-4-4-4-12 form to lower case.
func parseGuid(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !isHex(c) {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
