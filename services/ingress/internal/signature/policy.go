package signature

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// DefaultCertHosts are the hosts Partner Center's signing certificate is
// served from. Microsoft documents only the example URL
// https://3psostorageacct.blob.core.windows.net/cert/pcnotifications-dispatch.microsoft.com.cer
// and hardened receivers pin exactly that host, so that is the default.
func DefaultCertHosts() []string {
	return []string{"3psostorageacct.blob.core.windows.net"}
}

// URLPolicy decides which certificate URLs may be fetched at all. It is
// checked before any network call, so an attacker who controls the
// x-ms-certificate-url header cannot make ingress reach an arbitrary host
// (SSRF) nor present a certificate of their own choosing.
type URLPolicy struct {
	// Hosts is the allow-list. An entry "host" matches that host name on the
	// scheme's default port only; "host:port" matches exactly that port.
	// Host names compare case-insensitively.
	Hosts []string
	// AllowHTTP permits plain http:// certificate URLs. It exists for the
	// local emulator; production keeps it false so the certificate cannot be
	// swapped in transit.
	AllowHTTP bool
}

// Check parses raw and returns it when the policy allows fetching it. The
// error wraps ErrUntrustedCertURL.
func (p URLPolicy) Check(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a URL", ErrUntrustedCertURL)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return nil, fmt.Errorf("%w: plain http is not allowed", ErrUntrustedCertURL)
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrUntrustedCertURL, u.Scheme)
	}
	if u.User != nil || u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("%w: malformed authority", ErrUntrustedCertURL)
	}
	// A query is allowed: it cannot leave the host, and a varying path
	// could bust the cache just as well. A fragment is never sent, so one
	// in the header means someone is playing games.
	if u.Fragment != "" {
		return nil, fmt.Errorf("%w: fragment present", ErrUntrustedCertURL)
	}
	if !p.hostAllowed(u) {
		return nil, fmt.Errorf("%w: host %q is not on the allow-list", ErrUntrustedCertURL, u.Host)
	}
	return u, nil
}

func (p URLPolicy) hostAllowed(u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	defaultPort := "443"
	if u.Scheme == "http" {
		defaultPort = "80"
	}
	if port == "" {
		port = defaultPort
	}
	for _, entry := range p.Hosts {
		entry = strings.ToLower(strings.TrimSpace(entry))
		if entry == "" {
			continue
		}
		eHost, ePort, err := net.SplitHostPort(entry)
		if err != nil {
			// No port in the entry: the scheme's default port only.
			eHost, ePort = strings.Trim(entry, "[]"), defaultPort
		}
		if eHost == host && ePort == port {
			return true
		}
	}
	return false
}
