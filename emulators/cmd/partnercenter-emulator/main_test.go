package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestHelpListsFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h: %v", err)
	}
	for _, f := range []string{"-addr", "-client-id", "-client-secret", "-username", "-password", "-ca-dir", "-public-url", "-page-size", "-access-token-lifetime"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("usage does not mention %s", f)
		}
	}
}

func TestInvalidConfigIsAnError(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-closed-write-status", "418"}, &out); err == nil {
		t.Fatal("closed-write-status 418 accepted")
	}
	if err := run(context.Background(), []string{"-log-level", "loud"}, &out); err == nil {
		t.Fatal("bad log level accepted")
	}
	if err := run(context.Background(), []string{"extra"}, &out); err == nil {
		t.Fatal("positional argument accepted")
	}
}

func TestDefaultPublicURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8081": "http://127.0.0.1:8081",
		":8081":          "http://127.0.0.1:8081",
		"0.0.0.0:9000":   "http://127.0.0.1:9000",
		"localhost:1":    "http://localhost:1",
	} {
		if got := defaultPublicURL(in); got != want {
			t.Errorf("defaultPublicURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServesAndTokenWorksUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- run(ctx, []string{"-addr", addr, "-ca-dir", t.TempDir()}, &logs) }()

	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator did not become healthy: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.PostForm(base+"/common/oauth2/token", url.Values{
		"grant_type": {"password"}, "resource": {"https://api.partner.microsoft.com"},
		"client_id": {"5e1c0a7d-9b3f-4c2e-8d6a-1f4b7e9c2a35"}, "client_secret": {"dev-client-secret"},
		"username": {"referrals-admin@contoso-partner.onmicrosoft.com"}, "password": {"dev-password"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token with dev defaults: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
