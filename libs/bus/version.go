package bus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MinServerVersion is the oldest nats-server Connect accepts. JetStream
// before 2.10 lacks consumers with several filter subjects and
// TermWithReason, and silently ignores settings the pipeline depends on, so
// running against it would fail in confusing ways later rather than at start.
const MinServerVersion = "2.10.0"

// minServerVersion is MinServerVersion parsed.
func minServerVersion() ServerVersion { return ServerVersion{Major: 2, Minor: 10} }

// ServerVersion is a nats-server version as announced in the server's INFO
// message, e.g. "2.10.22" or "2.12.1-beta".
type ServerVersion struct {
	// Major is the major version, 2 for every current server.
	Major int
	// Minor is the minor version; JetStream features arrive with it.
	Minor int
	// Patch is the patch version, 0 when the string omitted it.
	Patch int
	// Pre is the pre-release suffix without its dash ("beta", "RC.1"), empty
	// for a release.
	Pre string
}

// String formats the version the way nats-server announces it.
func (v ServerVersion) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}

// Less reports whether v is older than w. As in semantic versioning, a
// pre-release is older than its release (2.10.0-rc.1 < 2.10.0); two
// pre-releases of the same version compare as strings, which is enough to
// order the server's beta/RC suffixes.
func (v ServerVersion) Less(w ServerVersion) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	if v.Patch != w.Patch {
		return v.Patch < w.Patch
	}
	switch {
	case v.Pre == w.Pre:
		return false
	case v.Pre == "":
		return false
	case w.Pre == "":
		return true
	default:
		return v.Pre < w.Pre
	}
}

// ParseServerVersion parses the version string of a nats-server INFO
// message. It accepts an optional leading "v", a missing patch number and a
// pre-release or build suffix ("2.12.1-beta", "2.11.0+abc").
func ParseServerVersion(s string) (ServerVersion, error) {
	orig := s
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	var v ServerVersion
	if i := strings.IndexByte(s, '-'); i >= 0 {
		v.Pre = s[i+1:]
		s = s[:i]
		if v.Pre == "" {
			return ServerVersion{}, fmt.Errorf("parse server version %q: empty pre-release", orig)
		}
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return ServerVersion{}, fmt.Errorf("parse server version %q: want MAJOR.MINOR[.PATCH]", orig)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || strings.TrimLeft(p, "0123456789") != "" {
			return ServerVersion{}, fmt.Errorf("parse server version %q: bad number %q", orig, p)
		}
		nums[i] = n
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, nil
}

// ErrServerTooOld is returned by Connect when the server is older than
// MinServerVersion.
var ErrServerTooOld = errors.New("nats-server too old")

// CheckServerVersion returns an error unless announced is at least
// MinServerVersion. The message names both versions so an operator knows
// what to upgrade.
func CheckServerVersion(announced string) error {
	v, err := ParseServerVersion(announced)
	if err != nil {
		return fmt.Errorf("check nats-server version: %w", err)
	}
	if v.Less(minServerVersion()) {
		return fmt.Errorf("%w: server announces %s, cosell needs JetStream from nats-server %s or newer", ErrServerTooOld, v, MinServerVersion)
	}
	return nil
}
