package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Masked is what a non-empty Secret prints as.
const Masked = "******"

// Secret is a configuration value that must never be printed: client
// secrets, private keys, passwords, encryption keys. Every way of printing
// it (fmt verbs including %#v, slog, JSON, text marshalling) shows Masked, or
// "" when it is unset so operators can still see whether it was provided.
// Reveal returns the value for the code that actually needs it.
type Secret string

// Reveal returns the secret itself; call it only where the value is used,
// never to log it.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) masked() string {
	if s == "" {
		return ""
	}
	return Masked
}

// String implements fmt.Stringer with the masked form.
func (s Secret) String() string { return s.masked() }

// GoString implements fmt.GoStringer with the masked form, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.masked()) }

// Format implements fmt.Formatter so that every verb, %s %v %q %x and the
// rest, prints the masked form.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, s.GoString())
			return
		}
		fmt.Fprint(f, s.masked())
	case 'q':
		fmt.Fprintf(f, "%q", s.masked())
	default:
		fmt.Fprint(f, s.masked())
	}
}

// LogValue implements slog.LogValuer with the masked form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.masked()) }

// MarshalJSON implements json.Marshaler with the masked form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.masked()) }

// MarshalText implements encoding.TextMarshaler with the masked form, for
// encoders other than JSON.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.masked()), nil }

// DSN is a connection string (Postgres, NATS) that may carry a password. It
// prints with the password replaced by Masked, so that the host and database
// stay visible in logs; Reveal returns the full string for connecting.
type DSN string

// Reveal returns the connection string with its password.
func (d DSN) Reveal() string { return string(d) }

// keywordPassword matches password=… in keyword/value connection strings,
// quoted or not.
var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redacted returns the connection string with any password masked.
func (d DSN) Redacted() string {
	s := string(d)
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		return keywordPassword.ReplaceAllString(s, "${1}"+Masked)
	}
	// NATS accepts a comma-separated server list.
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: do not risk printing a password.
		return Masked
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Masked)
		}
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, Masked)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	// Query encoding escapes the mask's asterisks; undo that for readability.
	return strings.ReplaceAll(u.String(), url.QueryEscape(Masked), Masked)
}

// String implements fmt.Stringer with the password masked.
func (d DSN) String() string { return d.Redacted() }

// GoString implements fmt.GoStringer with the password masked.
func (d DSN) GoString() string { return fmt.Sprintf("config.DSN(%q)", d.Redacted()) }

// Format implements fmt.Formatter so that every verb prints the redacted
// form.
func (d DSN) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, d.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", d.Redacted())
	default:
		fmt.Fprint(f, d.Redacted())
	}
}

// LogValue implements slog.LogValuer with the password masked.
func (d DSN) LogValue() slog.Value { return slog.StringValue(d.Redacted()) }

// MarshalJSON implements json.Marshaler with the password masked.
func (d DSN) MarshalJSON() ([]byte, error) { return json.Marshal(d.Redacted()) }

// MarshalText implements encoding.TextMarshaler with the password masked.
func (d DSN) MarshalText() ([]byte, error) { return []byte(d.Redacted()), nil }
