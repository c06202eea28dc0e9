// Command partnercenter-emulator serves an emulated Microsoft Partner
// Center (Entra ID token endpoint, Referrals API, webhook registration and
// signed delivery, and a control API under /_emulator/) on one address, so
// cosell can be tested end to end without reaching Microsoft. See
// emulators/docs/partnercenter.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cosell/cosell/emulators/internal/emucore"
	"github.com/cosell/cosell/emulators/internal/partnercenter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "partnercenter-emulator:", err)
		os.Exit(1)
	}
}

// run parses flags, builds the server and serves until ctx is cancelled.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	d := partnercenter.DefaultConfig()
	fs := flag.NewFlagSet("partnercenter-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address host:port")
	publicURL := fs.String("public-url", "", "base URL clients use to reach the emulator (links, nextLink, webhook ResourceUri, certificate URL); default http://<addr>")
	cfg := partnercenter.Config{}
	fs.StringVar(&cfg.ClientID, "client-id", d.ClientID, "application (client) id the token endpoint accepts")
	fs.StringVar(&cfg.ClientSecret, "client-secret", d.ClientSecret, "client secret of that application")
	fs.StringVar(&cfg.Username, "username", d.Username, "Partner Center user (Referrals admin) for the password grant")
	fs.StringVar(&cfg.Password, "password", d.Password, "password of that user")
	fs.StringVar(&cfg.TenantID, "tenant-id", d.TenantID, "partner Entra tenant id (tid claim)")
	fs.StringVar(&cfg.OrganizationID, "org-id", d.OrganizationID, "partner organisation id that owns created referrals")
	fs.StringVar(&cfg.OrganizationName, "org-name", d.OrganizationName, "partner organisation name")
	fs.StringVar(&cfg.MPNID, "mpn-id", d.MPNID, "partner MPN id (mpnId)")
	fs.StringVar(&cfg.CADir, "ca-dir", "", "directory the webhook-signing CA certificate and key are read from, or written to when absent (empty: in memory only)")
	fs.DurationVar(&cfg.AccessTokenLifetime, "access-token-lifetime", d.AccessTokenLifetime, "access token lifetime")
	fs.DurationVar(&cfg.RefreshTokenLifetime, "refresh-token-lifetime", d.RefreshTokenLifetime, "refresh token lifetime")
	fs.DurationVar(&cfg.DeviceCodeLifetime, "device-code-lifetime", d.DeviceCodeLifetime, "device code lifetime")
	fs.DurationVar(&cfg.DeviceCodeInterval, "device-code-interval", d.DeviceCodeInterval, "polling interval advertised by /oauth2/devicecode")
	fs.IntVar(&cfg.PageSize, "page-size", d.PageSize, "server-driven page size of the referral list")
	fs.IntVar(&cfg.ClosedWriteStatus, "closed-write-status", d.ClosedWriteStatus, "HTTP status for writes to closed referrals (400 or 409)")
	fs.DurationVar(&cfg.ExpireAfter, "expire-after", d.ExpireAfter, "expirationDateTime of inbound referrals, after creation")
	fs.IntVar(&cfg.WebhookOptions.Workers, "webhook-workers", 16, "concurrent webhook deliveries (Partner Center delivers in parallel, without ordering)")
	fs.IntVar(&cfg.WebhookOptions.MaxLogEntries, "webhook-log-entries", 10000, "settled deliveries the delivery log keeps (oldest evicted first); a benchmark raises it to cover its run")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("invalid -log-level: %w", err)
	}
	log := emucore.NewLogger("partnercenter-emulator", level)

	cfg.PublicURL = *publicURL
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(*addr)
	}
	cfg.Logger = log
	srv, err := partnercenter.New(cfg)
	if err != nil {
		return err
	}
	eff := srv.Config()
	log.Info("starting", "addr", *addr, "public_url", eff.PublicURL, "client_id", eff.ClientID,
		"username", eff.Username, "tenant_id", eff.TenantID, "org_id", eff.OrganizationID,
		"ca_dir", eff.CADir, "page_size", eff.PageSize, "access_token_lifetime", eff.AccessTokenLifetime.String(),
		"certificate_url", srv.Webhooks().CertificateURL())

	serveErr := emucore.Serve(ctx, *addr, srv, log, nil)
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(closeCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// defaultPublicURL is http://<addr>, with a wildcard or empty host replaced
// by 127.0.0.1 so the URL is one a client can actually call.
func defaultPublicURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
