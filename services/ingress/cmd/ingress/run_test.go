package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/ingress/internal/signature/signaturetest"
)

// TestRunServesAndShutsDown runs the real wiring: configuration from the
// environment, the certificate downloaded over HTTP from an allowed host,
// JetStream, Postgres; then cancels and expects a clean, ordered exit.
func TestRunServesAndShutsDown(t *testing.T) {
	ca := signaturetest.NewCA(t, signaturetest.Organization)
	signer := ca.Issue(t, signaturetest.LeafOptions{})
	certSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(signer.DER) }))
	defer certSrv.Close()
	caFile := filepath.Join(t.TempDir(), "webhook-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	natsURL := bustest.RunServer(t)
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: "ingress", FS: storetest.RepoMigrations(t, "ingress")})
	addr := freeAddr(t)

	t.Setenv("HTTP_ADDR", addr)
	t.Setenv("NATS_URL", natsURL)
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("LOG_LEVEL", "error")
	t.Setenv("WEBHOOK_CERT_HOSTS", strings.TrimPrefix(certSrv.URL, "http://"))
	t.Setenv("WEBHOOK_CERT_ALLOW_HTTP", "true")
	t.Setenv("WEBHOOK_TRUSTED_CA_FILE", caFile)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler)) }()
	base := "http://" + addr
	waitReady(t, base, done)

	body := []byte(`{"EventName":"referral-created","ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/r-1","ResourceName":"referral","AuditUri":null,"ResourceChangeUtcDate":"2026-03-01T10:00:00Z"}`)
	if code, text := post(t, base, signer.Headers(t, body, certSrv.URL+"/cert/pcnotifications-dispatch.microsoft.com.cer"), body); code != http.StatusOK {
		t.Fatalf("signed delivery answered %d %s", code, text)
	}
	test := []byte(`{"EventName":"test-created","ResourceUri":"https://api.partnercenter.microsoft.com/webhooks/v1/registration/validationEvents/c1","ResourceName":"test","AuditUri":null,"ResourceChangeUtcDate":"2026-03-01T10:00:00Z"}`)
	if code, text := post(t, base, signer.Headers(t, test, certSrv.URL+"/cert/pcnotifications-dispatch.microsoft.com.cer"), test); code != http.StatusOK {
		t.Fatalf("test event answered %d %s", code, text)
	}
	if code, text := post(t, base, signer.Headers(t, body, "https://evil.example/cert.cer"), body); code != http.StatusUnauthorized {
		t.Fatalf("untrusted certificate host answered %d %s", code, text)
	}

	metrics := get(t, base+"/metrics")
	for _, want := range []string{`outcome="accepted"} 1`, `outcome="test_recorded"} 1`, `outcome="untrusted_cert_host"} 1`, "ingress_webhook_verification_duration_seconds_bucket"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}

	conn, err := bus.Connect(context.Background(), natsURL, "ingress-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := conn.JetStream().Stream(context.Background(), bus.StreamNotifications)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("%d notifications stored, want 1", info.State.Msgs)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls /readyz until it answers 200; run failing ends the wait.
func waitReady(t *testing.T, base string, done <-chan error) {
	t.Helper()
	for range 200 {
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v", err)
		default:
		}
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("ingress never became ready")
}

func post(t *testing.T, base string, hdr http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/webhooks/partnercenter", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}
