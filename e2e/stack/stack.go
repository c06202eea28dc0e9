package stack

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Dev credentials the stack gives the emulators and the services. They
// only ever protect local emulators.
const (
	PCTenantID     = "8c5a4b1e-0c4f-4d3e-9a55-2f1b6f3c9d10"
	PCClientID     = "cosell-local"
	PCClientSecret = "cosell-local-secret"
	PCUsername     = "admin@contoso-partner.example"
	PCPassword     = "cosell-local-password"
	SFClientID     = "cosell-local-connected-app"
	SFClientSecret = "cosell-local-sf-secret"
	SFUsername     = "integration@cosell.example"
)

// Config says what to run.
type Config struct {
	BinDir      string // built binaries (see Build)
	RunDir      string // logs, keys, CA, NATS data; created if absent
	DatabaseURL string // a Postgres server DSN; the stack creates its own database on it
	DBName      string // database to (re)create; default "cosell_" + a random suffix
	KeepDB      bool   // leave the database behind on Stop
	NATSURL     string // use this server instead of starting the pinned one
	Replicas    int    // replicas of every service (default 1)
	// PCSweepInterval is the partnercenter-adapter's reconciliation interval.
	PCSweepInterval time.Duration
	// OTLPEndpoint, when set, exports every service's traces there.
	OTLPEndpoint string
	// JaegerBinary, when set, starts that Jaeger v2 all-in-one (`make
	// jaeger` builds bin/jaeger) on free loopback ports before anything
	// else and exports every service's traces to it instead of
	// OTLPEndpoint; Stack.JaegerURL is then its query API.
	JaegerBinary string
	// JaegerConfig is Jaeger's configuration; default tools/jaeger/config.yaml.
	JaegerConfig string
	// ExtraEnv adds or overrides variables per service or emulator name.
	ExtraEnv map[string]map[string]string
	// PCEmulatorArgs and SFEmulatorArgs are appended to the emulators' flags.
	PCEmulatorArgs []string
	SFEmulatorArgs []string
}

// Stack is a running system.
type Stack struct {
	cfg         Config
	DatabaseURL string // DSN of the stack's own database
	NATSURL     string
	PCURL       string // partnercenter emulator base URL
	SFURL       string // salesforce emulator base URL
	IngressURL  string // base URL of the first ingress replica
	WebhookURL  string // ingress's Partner Center webhook endpoint
	CAFile      string // the Partner Center emulator's CA certificate (PEM)
	SFKeyFile   string // private key the salesforce-adapter signs JWT assertions with
	JaegerURL   string // Jaeger's query API (with Config.JaegerBinary)

	procs     map[string]*Process
	order     []string
	adminConn string // server DSN used to create/drop the database
}

// Start creates the database, starts NATS (unless given), both emulators,
// runs every service's migrations, then starts the services and waits
// until each is ready.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.PCSweepInterval == 0 {
		cfg.PCSweepInterval = 5 * time.Minute
	}
	if cfg.DBName == "" {
		cfg.DBName = "cosell_" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return nil, err
	}
	s := &Stack{cfg: cfg, procs: map[string]*Process{}, adminConn: cfg.DatabaseURL}
	defer func() {
		if err != nil {
			_ = s.Stop(context.Background())
		}
	}()

	if err := s.startJaeger(ctx); err != nil {
		return nil, err
	}
	if s.DatabaseURL, err = createDatabase(ctx, cfg.DatabaseURL, cfg.DBName); err != nil {
		return nil, err
	}
	if err := s.startNATS(ctx); err != nil {
		return nil, err
	}
	if err := s.startEmulators(ctx); err != nil {
		return nil, err
	}
	for _, svc := range Services() {
		if err := s.migrate(ctx, svc); err != nil {
			return nil, err
		}
	}
	if err := s.startServices(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stack) bin(name string) string { return filepath.Join(s.cfg.BinDir, name) }

func (s *Stack) add(p *Process) *Process {
	if p.LogPath == "" {
		p.LogPath = filepath.Join(s.cfg.RunDir, p.Name+".log")
	}
	s.procs[p.Name] = p
	s.order = append(s.order, p.Name)
	return p
}

func (s *Stack) startAndWait(ctx context.Context, p *Process) error {
	if err := p.Start(); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.WaitReady(waitCtx)
}

func (s *Stack) startNATS(ctx context.Context) error {
	if s.cfg.NATSURL != "" {
		s.NATSURL = s.cfg.NATSURL
		return nil
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	mon, err := FreePort()
	if err != nil {
		return err
	}
	dataDir := filepath.Join(s.cfg.RunDir, "nats")
	p := s.add(&Process{
		Name:     "nats-server",
		Binary:   s.bin("nats-server"),
		Args:     []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", dataDir, "-m", strconv.Itoa(mon), "-n", "cosell-local"},
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", mon),
	})
	s.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	return s.startAndWait(ctx, p)
}

// startJaeger starts Config.JaegerBinary, when set, with every listener on
// a free port, and points the services' OTLP exporters at it. It is started
// first so it is stopped last, after the services have flushed their spans.
func (s *Stack) startJaeger(ctx context.Context) error {
	if s.cfg.JaegerBinary == "" {
		return nil
	}
	if _, err := os.Stat(s.cfg.JaegerBinary); err != nil {
		return fmt.Errorf("no Jaeger binary (build it with `make jaeger`): %w", err)
	}
	if s.cfg.JaegerConfig == "" {
		root, err := RepoRoot()
		if err != nil {
			return err
		}
		s.cfg.JaegerConfig = filepath.Join(root, "tools", "jaeger", "config.yaml")
	}
	env := map[string]string{}
	ports := map[string]int{}
	for _, k := range []string{"OTLP_GRPC", "OTLP_HTTP", "QUERY_HTTP", "QUERY_GRPC", "HEALTH"} {
		port, err := FreePort()
		if err != nil {
			return err
		}
		ports[k] = port
		env["JAEGER_"+k+"_ENDPOINT"] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	p := s.add(&Process{
		Name:     "jaeger",
		Binary:   s.cfg.JaegerBinary,
		Args:     []string{"--config", s.cfg.JaegerConfig},
		Env:      env,
		ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/status", ports["HEALTH"]),
	})
	if err := s.startAndWait(ctx, p); err != nil {
		return err
	}
	s.JaegerURL = fmt.Sprintf("http://127.0.0.1:%d", ports["QUERY_HTTP"])
	s.cfg.OTLPEndpoint = fmt.Sprintf("http://127.0.0.1:%d", ports["OTLP_HTTP"])
	return nil
}

func (s *Stack) startEmulators(ctx context.Context) error {
	caDir := filepath.Join(s.cfg.RunDir, "pc-ca")
	pcPort, err := FreePort()
	if err != nil {
		return err
	}
	s.PCURL = fmt.Sprintf("http://127.0.0.1:%d", pcPort)
	pc := s.add(&Process{
		Name:   "partnercenter-emulator",
		Binary: s.bin("partnercenter-emulator"),
		Args: append([]string{
			"-addr", fmt.Sprintf("127.0.0.1:%d", pcPort),
			"-client-id", PCClientID, "-client-secret", PCClientSecret,
			"-username", PCUsername, "-password", PCPassword,
			"-ca-dir", caDir, "-tenant-id", PCTenantID,
		}, s.cfg.PCEmulatorArgs...),
		Env:      s.cfg.ExtraEnv["partnercenter-emulator"],
		ReadyURL: s.PCURL + "/healthz",
	})
	if err := s.startAndWait(ctx, pc); err != nil {
		return err
	}
	s.CAFile = filepath.Join(caDir, "webhook-ca.pem")
	if _, err := os.Stat(s.CAFile); err != nil {
		return fmt.Errorf("partnercenter emulator wrote no CA certificate: %w", err)
	}

	certFile, keyFile, err := writeJWTKeyPair(s.cfg.RunDir)
	if err != nil {
		return err
	}
	s.SFKeyFile = keyFile
	sfPort, err := FreePort()
	if err != nil {
		return err
	}
	s.SFURL = fmt.Sprintf("http://127.0.0.1:%d", sfPort)
	sf := s.add(&Process{
		Name:   "salesforce-emulator",
		Binary: s.bin("salesforce-emulator"),
		Args: append([]string{
			"-addr", fmt.Sprintf("127.0.0.1:%d", sfPort),
			"-client-id", SFClientID, "-client-secret", SFClientSecret,
			"-username", SFUsername, "-jwt-cert", certFile,
		}, s.cfg.SFEmulatorArgs...),
		Env:      s.cfg.ExtraEnv["salesforce-emulator"],
		ReadyURL: s.SFURL + "/healthz",
	})
	return s.startAndWait(ctx, sf)
}

// commonEnv is what every service gets.
func (s *Stack) commonEnv(svc string, httpPort int) map[string]string {
	env := map[string]string{
		"HTTP_ADDR":    fmt.Sprintf("127.0.0.1:%d", httpPort),
		"DATABASE_URL": s.DatabaseURL,
		"NATS_URL":     s.NATSURL,
		"LOG_LEVEL":    "info",
	}
	if s.cfg.OTLPEndpoint != "" {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = s.cfg.OTLPEndpoint
		env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
	}
	if s.cfg.JaegerBinary != "" {
		env["OTEL_METRICS_EXPORTER"] = "none"  // Jaeger takes traces only
		env["OTEL_BSP_SCHEDULE_DELAY"] = "500" // ms: spans show up in Jaeger quickly
	}
	return env
}

// ServiceEnv returns the environment of one service replica, exactly as the
// stack starts it.
func (s *Stack) ServiceEnv(svc string, httpPort int, ingressPort int) map[string]string {
	env := s.commonEnv(svc, httpPort)
	switch svc {
	case "ingress":
		// host:port, since an entry without a port matches only the default port.
		env["WEBHOOK_CERT_HOSTS"] = hostPort(s.PCURL)
		env["WEBHOOK_CERT_ALLOW_HTTP"] = "true"
		env["WEBHOOK_TRUSTED_CA_FILE"] = s.CAFile
	case "partnercenter-adapter":
		env["PC_API_BASE_URL"] = s.PCURL
		env["PC_WEBHOOK_API_BASE_URL"] = s.PCURL
		env["PC_LOGIN_BASE_URL"] = s.PCURL
		env["PC_TENANT_ID"] = PCTenantID
		env["PC_CLIENT_ID"] = PCClientID
		env["PC_CLIENT_SECRET"] = PCClientSecret
		env["PC_AUTH_MODE"] = "password"
		env["PC_USERNAME"] = PCUsername
		env["PC_PASSWORD"] = PCPassword
		env["PC_TOKEN_KEY"] = base64.StdEncoding.EncodeToString([]byte("cosell-local-token-key-32-bytes!"))
		env["PC_MODE"] = "webhook"
		env["PC_WEBHOOK_REGISTER"] = "true"
		env["PC_WEBHOOK_URL"] = fmt.Sprintf("http://127.0.0.1:%d/webhooks/partnercenter", ingressPort)
		env["PC_SWEEP_INTERVAL"] = s.cfg.PCSweepInterval.String()
	case "salesforce-adapter":
		env["SF_LOGIN_URL"] = s.SFURL
		env["SF_AUDIENCE"] = "https://login.salesforce.com"
		env["SF_AUTH_MODE"] = "jwt"
		env["SF_CLIENT_ID"] = SFClientID
		env["SF_CLIENT_SECRET"] = SFClientSecret
		env["SF_USERNAME"] = SFUsername
		env["SF_JWT_KEY_FILE"] = s.SFKeyFile
	case "mapper":
	}
	for k, v := range s.cfg.ExtraEnv[svc] {
		env[k] = v
	}
	return env
}

func (s *Stack) migrate(ctx context.Context, svc string) error {
	p := &Process{
		Name:    svc + "-migrate",
		Binary:  s.bin(svc),
		Args:    []string{"migrate"},
		Env:     s.commonEnv(svc, 0),
		LogPath: filepath.Join(s.cfg.RunDir, svc+"-migrate.log"),
	}
	if err := p.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		p.Kill()
		return ctx.Err()
	case <-p.done:
	}
	if err := p.exitErr(); err != nil {
		return fmt.Errorf("migrate %s: %w", svc, err)
	}
	return nil
}

func (s *Stack) startServices(ctx context.Context) error {
	ports := map[string][]int{}
	for _, svc := range Services() {
		for i := 0; i < s.cfg.Replicas; i++ {
			port, err := FreePort()
			if err != nil {
				return err
			}
			ports[svc] = append(ports[svc], port)
		}
	}
	ingressPort := ports["ingress"][0]
	s.IngressURL = fmt.Sprintf("http://127.0.0.1:%d", ingressPort)
	s.WebhookURL = s.IngressURL + "/webhooks/partnercenter"
	// Ingress first among the services is not needed: the adapter registers
	// the webhook URL and delivery retries until ingress is up. Consumers
	// start first so nothing waits on a missing consumer.
	for _, svc := range Services() {
		for i, port := range ports[svc] {
			p := s.add(&Process{
				Name:     fmt.Sprintf("%s-%d", svc, i+1),
				Binary:   s.bin(svc),
				Env:      s.ServiceEnv(svc, port, ingressPort),
				ReadyURL: fmt.Sprintf("http://127.0.0.1:%d/readyz", port),
			})
			if err := s.startAndWait(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Process returns a running process by name ("mapper-1", "salesforce-emulator", ...).
func (s *Stack) Process(name string) *Process { return s.procs[name] }

// CLIEnv returns the environment that points cosellctl at this stack: the
// database, NATS, each service's first replica and Jaeger when it runs.
func (s *Stack) CLIEnv() map[string]string {
	addr := func(proc string) string { return "http://" + s.Process(proc).Env["HTTP_ADDR"] }
	env := map[string]string{
		"DATABASE_URL":                     s.DatabaseURL,
		"NATS_URL":                         s.NATSURL,
		"COSELL_MAPPER_URL":                addr("mapper-1"),
		"COSELL_PARTNERCENTER_ADAPTER_URL": addr("partnercenter-adapter-1"),
		"COSELL_SALESFORCE_ADAPTER_URL":    addr("salesforce-adapter-1"),
		"COSELL_INGRESS_URL":               addr("ingress-1"),
	}
	if s.JaegerURL != "" {
		env["COSELL_JAEGER_URL"] = s.JaegerURL
	}
	return env
}

// Processes returns every long-running process of the stack in start order.
func (s *Stack) Processes() []*Process {
	var out []*Process
	for _, n := range s.order {
		if !strings.HasSuffix(n, "-migrate") {
			out = append(out, s.procs[n])
		}
	}
	return out
}

// ServiceProcesses returns the replicas of the four services.
func (s *Stack) ServiceProcesses() []*Process {
	var out []*Process
	for _, n := range s.order {
		for _, svc := range Services() {
			if strings.HasPrefix(n, svc+"-") && !strings.HasSuffix(n, "-migrate") {
				out = append(out, s.procs[n])
			}
		}
	}
	return out
}

// Restart starts a stopped or killed process again and waits until ready.
func (s *Stack) Restart(ctx context.Context, name string) error {
	p := s.procs[name]
	if p == nil {
		return fmt.Errorf("no process %q", name)
	}
	return s.startAndWait(ctx, p)
}

// Stop stops every process in reverse start order (services before the
// emulators and NATS) and drops the database unless KeepDB is set. It
// reports processes that did not exit cleanly.
func (s *Stack) Stop(ctx context.Context) error {
	var errs []error
	for i := len(s.order) - 1; i >= 0; i-- {
		if err := s.procs[s.order[i]].Stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if !s.cfg.KeepDB && s.DatabaseURL != "" {
		if err := dropDatabase(ctx, s.adminConn, s.cfg.DBName); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host
}

// createDatabase (re)creates dbName on the server at serverDSN and returns
// a DSN for it.
func createDatabase(ctx context.Context, serverDSN, dbName string) (string, error) {
	conn, err := pgx.Connect(ctx, serverDSN)
	if err != nil {
		return "", fmt.Errorf("connect to Postgres at %s: %w", redactDSN(serverDSN), err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{dbName}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop database %s: %w", dbName, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create database %s: %w", dbName, err)
	}
	u, err := url.Parse(serverDSN)
	if err != nil {
		return "", err
	}
	u.Path = "/" + dbName
	return u.String(), nil
}

func dropDatabase(ctx context.Context, serverDSN, dbName string) error {
	conn, err := pgx.Connect(ctx, serverDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)")
	return err
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparseable DSN>"
	}
	return u.Redacted()
}

// writeJWTKeyPair writes the RSA key the salesforce-adapter signs JWT
// bearer assertions with, and the self-signed certificate the Salesforce
// emulator checks them against (as a connected app's uploaded certificate).
func writeJWTKeyPair(dir string) (certFile, keyFile string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "cosell-local-connected-app"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	certFile = filepath.Join(dir, "sf-jwt.crt")
	keyFile = filepath.Join(dir, "sf-jwt.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	keyDER := x509.MarshalPKCS1PrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
