package bus

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// HeaderCarrier adapts NATS message headers to OpenTelemetry's
// propagation.TextMapCarrier. NATS headers are case-sensitive, unlike HTTP
// headers, so the HTTP carrier (which canonicalises "traceparent" to
// "Traceparent") would write keys other W3C implementations and the
// server's own message tracing do not look for. This carrier writes keys
// exactly as the propagator names them and, when reading, falls back to a
// case-insensitive match so messages from producers that capitalised the
// key still join their trace.
type HeaderCarrier nats.Header

// Get returns the first value of key, matched exactly, else ignoring case.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Set replaces the values of key, keeping the key's case as given.
func (c HeaderCarrier) Set(key, value string) {
	c[key] = []string{value}
}

// Keys lists the header keys present.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
