package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReadyURL(t *testing.T) {
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:8080/readyz",
		":9090":          "http://127.0.0.1:9090/readyz",
		"0.0.0.0:8080":   "http://127.0.0.1:8080/readyz",
		"[::]:8080":      "http://127.0.0.1:8080/readyz",
		"127.0.0.1:7000": "http://127.0.0.1:7000/readyz",
	} {
		got, err := readyURL(addr)
		if err != nil || got != want {
			t.Errorf("readyURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	if _, err := readyURL("8080"); err == nil {
		t.Error("readyURL(\"8080\") accepted an address without a colon")
	}
}

func TestRunProbesHTTPAddrAndWritesFiles(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/readyz" && ready.Load():
			io.WriteString(w, "ok")
		case r.URL.Path == "/ca.pem":
			io.WriteString(w, "-----BEGIN CERTIFICATE-----\n")
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	env := func(k string) string {
		if k == "HTTP_ADDR" {
			return ":" + port
		}
		return ""
	}
	if err := run(nil, env, io.Discard); err != nil {
		t.Fatalf("ready service: %v", err)
	}
	ready.Store(false)
	if err := run(nil, env, io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unready service: err = %v, want a 503 failure", err)
	}

	out := filepath.Join(t.TempDir(), "ca.pem")
	if err := run([]string{"-url", srv.URL + "/ca.pem", "-o", out}, env, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || string(b) != "-----BEGIN CERTIFICATE-----\n" {
		t.Fatalf("written file = %q, %v", b, err)
	}
	if err := run([]string{"extra"}, env, io.Discard); err == nil {
		t.Error("stray argument accepted")
	}
}
