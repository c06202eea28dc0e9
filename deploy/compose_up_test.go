package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/jackc/pgx/v5"

	"github.com/cosell/cosell/e2e/stack"
	"github.com/cosell/cosell/libs/store/storetest"
)

// localCompose runs a compose project as local processes: every container
// port a service exposes becomes a free port on 127.0.0.1, named volumes
// become directories, bind mounts their sources, postgres a fresh database
// on the test server and Jaeger's OTLP/HTTP receiver an in-memory trace
// sink. Values in environments and commands are rewritten accordingly and
// nothing else, so a wrong variable name or value in the compose file fails
// here as it would in `docker compose up`.
type localCompose struct {
	t       *testing.T
	p       *types.Project
	binDir  string
	runDir  string
	dsn     string            // the fresh database standing in for postgres:5432
	ports   map[string]int    // "service:containerPort" -> local port
	volumes map[string]string // named volume -> local directory
	procs   []*stack.Process  // started long-running processes, in start order
}

// rewrite maps one environment value or argument of service name to its
// local equivalent.
func (l *localCompose) rewrite(name, key, v string) string {
	svc := l.p.Services[name]
	if u, err := url.Parse(v); err == nil && strings.HasPrefix(u.Scheme, "postgres") && u.Host == "postgres:5432" {
		local, err := url.Parse(l.dsn)
		if err != nil {
			l.t.Fatal(err)
		}
		local.RawQuery = u.RawQuery
		return local.String()
	}
	// Mount targets, longest first so nested targets win.
	mounts := slices.Clone(svc.Volumes)
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Target) > len(mounts[j].Target) })
	for _, m := range mounts {
		local := m.Source
		if m.Type == types.VolumeTypeVolume {
			local = l.volumes[m.Source]
		}
		v = strings.ReplaceAll(v, m.Target, local)
	}
	// The service's own listen addresses.
	for _, port := range exposed(svc) {
		local := fmt.Sprintf("127.0.0.1:%d", l.ports[fmt.Sprintf("%s:%d", name, port)])
		if key == "HTTP_ADDR" && v == fmt.Sprintf(":%d", port) {
			return local
		}
		for _, host := range []string{"0.0.0.0", "127.0.0.1", "localhost"} {
			v = strings.ReplaceAll(v, fmt.Sprintf("%s:%d", host, port), local)
		}
	}
	// Other services by host name.
	return hostPortRef.ReplaceAllStringFunc(v, func(ref string) string {
		if p, ok := l.ports[ref]; ok {
			return fmt.Sprintf("127.0.0.1:%d", p)
		}
		return ref
	})
}

// environment is the service's compose environment, rewritten.
func (l *localCompose) environment(name string) map[string]string {
	out := map[string]string{}
	for k, v := range env(l.p.Services[name]) {
		out[k] = l.rewrite(name, k, v)
	}
	return out
}

// args rewrites a list of arguments (a command or a healthcheck).
func (l *localCompose) args(name string, in []string) []string {
	out := make([]string, len(in))
	for i, a := range in {
		out[i] = l.rewrite(name, "", a)
	}
	return out
}

// startOrder is the services in dependency order (ties by name).
func startOrder(p *types.Project) ([]string, error) {
	done := map[string]bool{}
	var order []string
	for len(order) < len(p.Services) {
		var ready []string
		for name, svc := range p.Services {
			if done[name] {
				continue
			}
			ok := true
			for dep := range svc.DependsOn {
				ok = ok && done[dep]
			}
			if ok {
				ready = append(ready, name)
			}
		}
		if len(ready) == 0 {
			return nil, errors.New("depends_on has a cycle")
		}
		sort.Strings(ready)
		done[ready[0]] = true
		order = append(order, ready[0])
	}
	return order, nil
}

// freshDatabase creates an empty database on the test server (the
// migrations are the compose migrate service's job) and drops it when the
// test ends.
func freshDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin := storetest.AdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to the test Postgres (set TEST_DATABASE_URL): %v", err)
	}
	defer conn.Close(ctx)
	name := "cosell_deploy_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// logTail returns the end of a process log for failure messages.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitHealthy runs the service's compose healthcheck until it passes.
func (l *localCompose) waitHealthy(ctx context.Context, name string, proc *stack.Process) {
	l.t.Helper()
	hc := l.p.Services[name].HealthCheck
	if hc == nil || len(hc.Test) < 2 || hc.Test[0] != "CMD" {
		l.t.Fatalf("%s: healthcheck %v is not in CMD form", name, hc)
	}
	test := l.args(name, hc.Test[1:])
	var check func() error
	switch filepath.Base(test[0]) {
	case "probe":
		// The image's probe, with the container's environment.
		e := l.environment(name)
		check = func() error {
			cmd := exec.CommandContext(ctx, filepath.Join(l.binDir, "probe"), test[1:]...)
			for k, v := range e {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}
	case "wget":
		// Images with busybox: a GET of the last argument.
		target := test[len(test)-1]
		check = func() error {
			resp, err := http.Get(target)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", target, resp.Status)
			}
			return nil
		}
	default:
		l.t.Fatalf("%s: no local equivalent of healthcheck %v", name, test)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if proc != nil && !proc.Running() {
			l.t.Fatalf("%s exited before becoming healthy: %v\n%s", name, err, logTail(proc.LogPath))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log := ""
			if proc != nil {
				log = logTail(proc.LogPath)
			}
			l.t.Fatalf("%s not healthy: %v\n%s", name, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runToCompletion runs a one-shot process and requires exit status 0.
func (l *localCompose) runToCompletion(ctx context.Context, name string, args []string, e map[string]string) {
	l.t.Helper()
	logPath := filepath.Join(l.runDir, name+".log")
	cmd := exec.CommandContext(ctx, filepath.Join(l.binDir, args[0]), args[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range e {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// start launches a long-running process and records it for shutdown.
func (l *localCompose) start(name, binary string, args []string, e map[string]string) *stack.Process {
	l.t.Helper()
	p := &stack.Process{Name: name, Binary: filepath.Join(l.binDir, binary), Args: args, Env: e, LogPath: filepath.Join(l.runDir, name+".log")}
	if err := p.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.procs = append(l.procs, p)
	return p
}

// TestComposeStackComesUp starts the compose project's processes locally,
// each with exactly the environment and command docker-compose.yml gives
// it, in depends_on order; requires each to pass its compose healthcheck
// (the services' /readyz), then syncs one referral through the whole
// system, checks that the services export every metric of their own the
// alert rules select (checkAlertMetrics), stops everything within its
// stop_grace_period and checks that every service's traces reached
// "Jaeger".
func TestComposeStackComesUp(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	binDir := t.TempDir()
	if err := stack.Build(ctx, binDir); err != nil {
		t.Fatal(err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, "probe"), "./deploy/cmd/probe")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}

	l := &localCompose{t: t, p: p, binDir: binDir, runDir: t.TempDir(), ports: map[string]int{}, volumes: map[string]string{}}
	l.dsn = freshDatabase(t)
	sink, err := stack.StartTraceSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sinkURL, _ := url.Parse(sink.URL)
	sinkPort, _ := strconv.Atoi(sinkURL.Port())
	for name, svc := range p.Services {
		for _, port := range exposed(svc) {
			key := fmt.Sprintf("%s:%d", name, port)
			switch {
			case name == "postgres":
				// The database DSN is rewritten as a whole.
			case name == "jaeger" && port == 4318:
				l.ports[key] = sinkPort
			case name == "jaeger":
				// Nothing of ours talks to the UI or OTLP/gRPC.
			default:
				if l.ports[key], err = stack.FreePort(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for name := range p.Volumes {
		l.volumes[name] = filepath.Join(l.runDir, "volumes", name)
		if err := os.MkdirAll(l.volumes[name], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for i := len(l.procs) - 1; i >= 0; i-- {
			l.procs[i].Kill()
		}
	}()

	order, err := startOrder(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start order: %v", order)
	for _, name := range order {
		svc := p.Services[name]
		switch {
		case name == "postgres" || name == "jaeger":
			// Stood in for above.
		case strings.HasPrefix(svc.Image, "nats:"):
			args := l.args(name, svc.Command)
			for i := range args {
				if (args[i] == "--http_port" || args[i] == "-m") && i+1 < len(args) {
					args[i+1] = strconv.Itoa(l.ports[name+":"+args[i+1]])
				}
			}
			args = append(args, "-a", "127.0.0.1", "-p", strconv.Itoa(l.ports[name+":4222"]))
			l.waitHealthy(ctx, name, l.start(name, "nats-server", args, nil))
		case svc.Build != nil && svc.Build.Target == "migrate":
			if len(svc.Command) > 0 || len(svc.Entrypoint) > 0 {
				t.Fatalf("%s overrides the bundle's entrypoint; this test runs each service's migrate", name)
			}
			for _, s := range stack.Services() {
				l.runToCompletion(ctx, name+"-"+s, []string{s, "migrate"}, l.environment(name))
			}
		case serviceBinary(svc) != "":
			proc := l.start(name, serviceBinary(svc), l.args(name, svc.Command), l.environment(name))
			l.waitHealthy(ctx, name, proc)
			if slices.Contains(stack.Services(), name) {
				ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", l.ports[name+":8080"])
				resp, err := http.Get(ready)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: GET %s: %v %v", name, ready, resp, err)
				}
				resp.Body.Close()
			}
		default:
			t.Fatalf("%s: no local stand-in for image %q", name, svc.Image)
		}
	}

	// The same wiring as the harness: the rewritten compose environment
	// equals e2e/stack's for every variable the harness sets.
	harness := &stack.Stack{
		DatabaseURL: l.dsn,
		NATSURL:     fmt.Sprintf("nats://127.0.0.1:%d", l.ports["nats:4222"]),
		PCURL:       fmt.Sprintf("http://127.0.0.1:%d", l.ports["partnercenter-emulator:8081"]),
		SFURL:       fmt.Sprintf("http://127.0.0.1:%d", l.ports["salesforce-emulator:8082"]),
		CAFile:      filepath.Join(l.volumes["pc-ca"], "webhook-ca.pem"),
		SFKeyFile:   filepath.Join(l.volumes["sf-jwt"], "jwt-key.pem"),
	}
	for _, name := range stack.Services() {
		got := l.environment(name)
		port := l.ports[name+":8080"]
		for k, v := range harness.ServiceEnv(name, port, l.ports["ingress:8080"]) {
			if k == "PC_SWEEP_INTERVAL" || k == "LOG_LEVEL" {
				continue // tuning, not wiring
			}
			if got[k] != v {
				t.Errorf("%s: %s=%q from compose, %q in the harness", name, k, got[k], v)
			}
		}
	}

	// One referral end to end: webhook → ingress → adapter → mapper →
	// Salesforce upsert.
	pc := stack.NewPartnerCenter(harness.PCURL)
	sf := stack.NewSalesforce(harness.SFURL)
	seeded, err := stack.SeedInbound(ctx, pc, "compose-"+strconv.FormatInt(time.Now().UnixNano(), 36), 1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	found, err := stack.WaitForOpportunities(waitCtx, sf, seeded, 100*time.Millisecond)
	waitCancel()
	if found != 1 {
		var logs strings.Builder
		for _, pr := range l.procs {
			fmt.Fprintf(&logs, "--- %s\n%s\n", pr.Name, logTail(pr.LogPath))
		}
		t.Fatalf("referral %s has no opportunity: %v\n%s", seeded[0].ReferralID, err, logs.String())
	}

	// Every metric of cosell's own that alerts.yaml selects is exported.
	metricsURLs := map[string]string{}
	for _, name := range stack.Services() {
		metricsURLs[name] = fmt.Sprintf("http://127.0.0.1:%d/metrics", l.ports[name+":8080"])
	}
	checkAlertMetrics(ctx, t, metricsURLs)

	// Stop like compose does (SIGTERM, then SIGKILL after
	// stop_grace_period), services first; a clean exit flushes traces.
	for i := len(l.procs) - 1; i >= 0; i-- {
		pr := l.procs[i]
		grace := 10 * time.Second
		if g := p.Services[pr.Name].StopGracePeriod; g != nil {
			grace = time.Duration(*g)
		}
		if err := pr.Stop(grace); err != nil {
			t.Errorf("stop %s: %v\n%s", pr.Name, err, logTail(pr.LogPath))
		}
	}
	seen := map[string]bool{}
	for _, s := range sink.Spans() {
		seen[s.Service] = true
	}
	for _, name := range stack.Services() {
		if !seen[name] {
			t.Errorf("no spans from %s reached the OTLP endpoint (services seen: %v)", name, seen)
		}
	}
}
