package sfschema

import "strings"

// base62 is the digit alphabet of the record-number part of an id.
const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// checksumAlphabet maps a 5-bit case mask to the suffix character.
const checksumAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

// idPod is the two-character instance part and reserved character of the
// ids this emulator issues (real ids carry the pod that created them).
const idPod = "8d0"

// NewID returns the 18-character id of the seq-th record of the object with
// the given three-character key prefix. The 15-character case-sensitive id is
// prefix + pod + seq in base 62 (nine digits, so seq wraps at 62^9), followed
// by the real case-safe checksum suffix, so clients that convert between 15
// and 18 characters see consistent ids.
func NewID(prefix string, seq uint64) string {
	var digits [9]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = base62[seq%62]
		seq /= 62
	}
	id15 := prefix + idPod + string(digits[:])
	return id15 + checksum(id15)
}

// checksum computes the three-character suffix that makes a 15-character id
// case-insensitive: for each five-character chunk, a bit per upper-case
// letter, least significant first.
func checksum(id15 string) string {
	var out [3]byte
	for chunk := 0; chunk < 3; chunk++ {
		n := 0
		for i := 0; i < 5; i++ {
			c := id15[chunk*5+i]
			if c >= 'A' && c <= 'Z' {
				n |= 1 << i
			}
		}
		out[chunk] = checksumAlphabet[n]
	}
	return string(out[:])
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a well-formed record id: 15 alphanumeric
// characters, or 18 whose last three are the checksum of the first fifteen.
// Ids whose case was lost (an 18-character id lower-cased as a whole) are not
// recognised; Salesforce would restore the case from the suffix, the
// emulator reports MALFORMED_ID instead.
func ValidID(s string) bool {
	_, ok := CanonicalID(s)
	return ok
}

// CanonicalID returns the 18-character form of a valid 15- or 18-character
// id, so stores can key records by one spelling; ok is false for malformed
// ids.
func CanonicalID(s string) (id string, ok bool) {
	switch len(s) {
	case 15:
		if !alnum(s) {
			return "", false
		}
		return s + checksum(s), true
	case 18:
		if !alnum(s) {
			return "", false
		}
		want := checksum(s[:15])
		if !strings.EqualFold(want, s[15:]) {
			return "", false
		}
		return s[:15] + want, true
	}
	return "", false
}
