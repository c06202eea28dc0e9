// Command salesforce-emulator serves an emulated Salesforce org (OAuth
// token endpoint, REST API under /services/data and a control API under
// /_emulator/) so cosell can be tested end to end without a real org. See
// emulators/docs/salesforce.md.
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
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cosell/cosell/emulators/internal/emucore"
	"github.com/cosell/cosell/emulators/internal/salesforce"
	"github.com/cosell/cosell/emulators/internal/sfschema"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "salesforce-emulator:", err)
		os.Exit(1)
	}
}

// run parses flags, builds the server and serves until ctx is cancelled.
// ready, when non-nil, learns the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) error {
	fs := flag.NewFlagSet("salesforce-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", salesforce.DefaultAddr, "listen address host:port")
	publicURL := fs.String("public-url", "", "instance_url handed to clients; default http://<addr>")
	cfg := salesforce.Config{}
	fs.StringVar(&cfg.ClientID, "client-id", salesforce.DefaultClientID, "connected app consumer key (JWT iss, client_credentials client_id)")
	fs.StringVar(&cfg.ClientSecret, "client-secret", salesforce.DefaultClientSecret, "connected app consumer secret (client_credentials; keys the token signature)")
	fs.StringVar(&cfg.Username, "username", salesforce.DefaultUsername, "integration user: client_credentials run-as user and the only JWT sub accepted")
	fs.StringVar(&cfg.SellerUsername, "seller-username", salesforce.DefaultSellerName, "seeded seller the control API edits records as")
	jwtCert := fs.String("jwt-cert", "", "PEM certificate JWT-bearer assertions must be signed with; empty: generate (or reuse) a dev key pair in -key-dir")
	keyDir := fs.String("key-dir", filepath.Join(os.TempDir(), "cosell-salesforce-emulator"), "where the dev JWT key pair is kept when -jwt-cert is empty")
	fs.Int64Var(&cfg.APILimit, "api-limit", salesforce.DefaultAPILimit, "daily API request allocation (rolling 24 h)")
	stages := fs.String("stages", "", "Opportunity stages, comma-separated Name[:open|closed|won][:probability]; default Salesforce's ten plus On Hold and Declined")
	currencies := fs.String("currencies", "", "enabled CurrencyIsoCode values, comma-separated, corporate currency first; default USD,EUR,GBP,…")
	fs.DurationVar(&cfg.TokenLifetime, "token-lifetime", salesforce.DefaultTokenLifetime, "session inactivity timeout of access tokens")
	fs.IntVar(&cfg.MaxPageSize, "max-page-size", salesforce.DefaultPageSize, "largest query page (Salesforce: 2000); lower it to exercise paging with few records")
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
	log := emucore.NewLogger("salesforce-emulator", level)

	if *stages != "" {
		st, err := salesforce.ParseStages(*stages)
		if err != nil {
			return fmt.Errorf("invalid -stages: %w", err)
		}
		cfg.Stages = st
	}
	if *currencies != "" {
		cfg.Currencies = splitList(*currencies)
	} else {
		cfg.Currencies = sfschema.DefaultCurrencies()
	}
	certPath := *jwtCert
	if certPath == "" {
		cp, kp, err := salesforce.EnsureDevKeyPair(*keyDir)
		if err != nil {
			return err
		}
		certPath = cp
		log.Info("no -jwt-cert given: using the dev key pair; sign JWT assertions with the key", "certificate", cp, "private_key", kp)
	}
	certs, err := salesforce.LoadCertificates(certPath)
	if err != nil {
		return err
	}
	cfg.JWTCerts = certs
	cfg.PublicURL = *publicURL
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(*addr)
	}
	cfg.Logger = log
	srv, err := salesforce.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("salesforce emulator configured",
		"public_url", cfg.PublicURL, "client_id", cfg.ClientID, "username", cfg.Username,
		"integration_user_id", srv.IntegrationUserID(), "seller_user_id", srv.SellerUserID(),
		"org_id", srv.OrgID(), "api_limit", cfg.APILimit, "token_lifetime", cfg.TokenLifetime.String())
	return emucore.Serve(ctx, *addr, srv, log, ready)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// defaultPublicURL turns the listen address into a URL clients can dial:
// an empty or unspecified host (":8082", "0.0.0.0:8082") becomes 127.0.0.1.
func defaultPublicURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
