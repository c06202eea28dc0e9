package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cosell/cosell/emulators/internal/salesforce"
)

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-addr", "-client-id", "-client-secret", "-username", "-jwt-cert", "-api-limit", "-stages", "-token-lifetime", "-public-url"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("usage lacks %s", f)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-stages", "Won:maybe"}, {"-log-level", "loud"}, {"extra"}, {"-jwt-cert", "/nonexistent.pem"}} {
		if err := run(context.Background(), args, io.Discard, nil); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}

// TestServes starts the binary's run on a free port with a generated dev
// key pair, takes a client-credentials token, calls the API, and shuts
// down when the context ends.
func TestServes(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-addr", "127.0.0.1:0", "-key-dir", dir, "-log-level", "warn", "-stages", "Open,Done:won,Lost:closed"}, io.Discard, func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("run: %v", err)
	}
	for _, f := range []string{salesforce.DevCertFile, salesforce.DevKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("dev key pair: %v", err)
		}
	}
	base := "http://" + addr.String()
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.PostForm(base+"/services/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {salesforce.DefaultClientID}, "client_secret": {salesforce.DefaultClientSecret},
	})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestDefaultPublicURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8082": "http://127.0.0.1:8082",
		":8082":          "http://127.0.0.1:8082",
		"0.0.0.0:9000":   "http://127.0.0.1:9000",
		"[::]:9000":      "http://127.0.0.1:9000",
		"emu.local:8082": "http://emu.local:8082",
	} {
		if got := defaultPublicURL(addr); got != want {
			t.Errorf("defaultPublicURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
