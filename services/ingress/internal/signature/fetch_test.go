package signature_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/services/ingress/internal/signature"
)

func TestHTTPFetcher(t *testing.T) {
	cert := []byte("0123456789")
	mux := http.NewServeMux()
	mux.HandleFunc("/cert/ok.cer", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(cert) })
	mux.HandleFunc("/cert/big.cer", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(strings.Repeat("x", 11))) })
	mux.HandleFunc("/cert/missing.cer", http.NotFound)
	mux.HandleFunc("/cert/down.cer", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	mux.HandleFunc("/cert/redirect.cer", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()

	f := signature.NewHTTPFetcher(srv.Client().Transport, 5*time.Second, 10)
	tests := []struct {
		path string
		want error
	}{
		{path: "/cert/ok.cer"},
		{path: "/cert/big.cer", want: signature.ErrCertificate},
		{path: "/cert/missing.cer", want: signature.ErrCertificate},
		{path: "/cert/down.cer", want: signature.ErrCertUnavailable},
		{path: "/cert/redirect.cer", want: signature.ErrCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			u, err := url.Parse(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Fetch(context.Background(), u)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("Fetch: %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil || string(got) != string(cert) {
				t.Fatalf("Fetch = %q, %v; want %q", got, err, cert)
			}
		})
	}

	t.Run("unreachable host", func(t *testing.T) {
		closed := httptest.NewServer(mux)
		u, _ := url.Parse(closed.URL + "/cert/ok.cer")
		closed.Close()
		if _, err := f.Fetch(context.Background(), u); !errors.Is(err, signature.ErrCertUnavailable) {
			t.Fatalf("Fetch: %v, want ErrCertUnavailable", err)
		}
	})
}

func TestURLPolicy(t *testing.T) {
	p := signature.URLPolicy{Hosts: []string{"3psostorageacct.blob.core.windows.net", "127.0.0.1:8081", "[::1]:9000"}}
	allowed := []string{
		"https://3psostorageacct.blob.core.windows.net/cert/x.cer",
		"https://3PSOSTORAGEACCT.blob.core.windows.net/cert/x.cer",
		"https://3psostorageacct.blob.core.windows.net:443/cert/x.cer",
		"https://127.0.0.1:8081/cert/x.cer",
		"https://127.0.0.1:8081/cert/x.cer?variant=wrong-org",
		"https://[::1]:9000/cert/x.cer",
	}
	refused := []string{
		"",
		"https://3psostorageacct.blob.core.windows.net.evil.com/cert/x.cer",
		"https://evil.com/3psostorageacct.blob.core.windows.net/cert/x.cer",
		"https://user@3psostorageacct.blob.core.windows.net/cert/x.cer",
		"https://3psostorageacct.blob.core.windows.net/cert/x.cer#f",
		"https://127.0.0.1/cert/x.cer",
		"https://127.0.0.1:8082/cert/x.cer",
		"http://127.0.0.1:8081/cert/x.cer",
		"ftp://127.0.0.1:8081/cert/x.cer",
		"//3psostorageacct.blob.core.windows.net/cert/x.cer",
	}
	for _, raw := range allowed {
		if _, err := p.Check(raw); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", raw, err)
		}
	}
	for _, raw := range refused {
		if _, err := p.Check(raw); !errors.Is(err, signature.ErrUntrustedCertURL) {
			t.Errorf("Check(%q) = %v, want ErrUntrustedCertURL", raw, err)
		}
	}
	p.AllowHTTP = true
	if _, err := p.Check("http://127.0.0.1:8081/cert/x.cer"); err != nil {
		t.Errorf("Check(http) with AllowHTTP = %v, want allowed", err)
	}
}
