package deploy

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/cosell/cosell/e2e/stack"
)

// emulators are the binaries under emulators/cmd that compose runs.
var emulators = []string{"partnercenter-emulator", "salesforce-emulator"}

// repoRoot is the workspace root (the directory holding go.work).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// loadCompose parses docker-compose.yml the way `docker compose` does
// (interpolation with an empty environment, so defaults apply; schema
// validation; normalisation).
func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// dockerfileStages returns the named stages of the root Dockerfile.
func dockerfileStages(t testing.TB) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{}
	re := regexp.MustCompile(`(?im)^FROM\s+\S+(?:\s+\S+)*?\s+AS\s+([a-z0-9_.-]+)\s*$`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		stages[strings.ToLower(m[1])] = true
	}
	return stages
}

// binaryPackage returns the workspace directory a SERVICE build argument
// builds, mirroring the Dockerfile's lookup, or "" when there is none.
func binaryPackage(root, name string) string {
	for _, dir := range []string{
		filepath.Join(root, "services", name, "cmd", name),
		filepath.Join(root, "emulators", "cmd", name),
	} {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
	}
	return ""
}

// serviceBinary is the binary a built compose service runs: its SERVICE
// build argument ("" for the migrate bundle or an image pulled as is).
func serviceBinary(svc types.ServiceConfig) string {
	if svc.Build == nil || svc.Build.Args["SERVICE"] == nil {
		return ""
	}
	return *svc.Build.Args["SERVICE"]
}

// isOneShot reports a service that runs to completion (the migrations).
func isOneShot(svc types.ServiceConfig) bool { return svc.Restart == "no" }

// env returns a service's environment as a plain map.
func env(svc types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// exposed returns the container ports a service declares with `expose`.
func exposed(svc types.ServiceConfig) []int {
	var out []int
	for _, e := range svc.Expose {
		p, err := strconv.Atoi(strings.TrimSuffix(e, "/tcp"))
		if err == nil {
			out = append(out, p)
		}
	}
	return out
}

// hostPortRef finds host:port references (URLs, allow-lists, flags).
var hostPortRef = regexp.MustCompile(`([A-Za-z0-9][A-Za-z0-9-]*):([0-9]+)\b`)

// TestComposeWiring checks the compose file statically: images build from
// the root Dockerfile with targets and binaries that exist, dependencies
// exist with sensible conditions, every service gets the variables the
// local harness (e2e/stack) gives it, and host:port references point at a
// port some service listens on.
func TestComposeWiring(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	stages := dockerfileStages(t)
	if !stages["migrate"] || !stages["service"] {
		t.Fatalf("Dockerfile stages = %v; want migrate and service", stages)
	}

	// Every service and emulator of the system, exactly once, from its own image.
	want := append(slices.Clone(stack.Services()), emulators...)
	images := map[string]string{}
	for name, svc := range p.Services {
		if svc.Build == nil {
			continue
		}
		t.Run("build/"+name, func(t *testing.T) {
			b := svc.Build
			if filepath.Clean(b.Context) != root {
				t.Errorf("build context %q, want the repository root %q", b.Context, root)
			}
			if b.Dockerfile != "Dockerfile" && filepath.Clean(b.Dockerfile) != filepath.Join(root, "Dockerfile") {
				t.Errorf("dockerfile %q, want the root Dockerfile", b.Dockerfile)
			}
			if b.Target != "" && !stages[b.Target] {
				t.Errorf("target %q is not a stage of the Dockerfile", b.Target)
			}
			bin := serviceBinary(svc)
			switch {
			case b.Target == "migrate":
				if bin != "" {
					t.Errorf("migrate bundle built with SERVICE=%s", bin)
				}
			case bin == "":
				t.Errorf("no SERVICE build argument")
			case binaryPackage(root, bin) == "":
				t.Errorf("SERVICE=%s: no services/%[1]s/cmd/%[1]s or emulators/cmd/%[1]s", bin)
			case bin != name:
				t.Errorf("compose service %q builds SERVICE=%s; name them alike", name, bin)
			}
			if prev, dup := images[svc.Image]; dup {
				t.Errorf("image %q also built by %s", svc.Image, prev)
			}
			images[svc.Image] = name
			if svc.User != "" && (svc.User == "root" || svc.User == "0") {
				t.Errorf("runs as %s", svc.User)
			}
			if !svc.ReadOnly {
				t.Errorf("root filesystem is writable (set read_only)")
			}
			if !slices.Contains(svc.CapDrop, "ALL") {
				t.Errorf("cap_drop lacks ALL")
			}
			if isOneShot(svc) {
				return
			}
			if svc.HealthCheck == nil || len(svc.HealthCheck.Test) < 2 || svc.HealthCheck.Test[0] != "CMD" {
				t.Errorf("healthcheck %v, want [CMD /usr/local/bin/probe ...]", svc.HealthCheck)
			} else if svc.HealthCheck.Test[1] != "/usr/local/bin/probe" {
				t.Errorf("healthcheck runs %q, which the distroless image lacks; use /usr/local/bin/probe", svc.HealthCheck.Test[1])
			}
			if slices.Contains(stack.Services(), name) {
				shutdown := 20 * time.Second
				if v, ok := env(svc)["SHUTDOWN_TIMEOUT"]; ok {
					d, err := time.ParseDuration(v)
					if err != nil {
						t.Fatalf("SHUTDOWN_TIMEOUT %q: %v", v, err)
					}
					shutdown = d
				}
				if svc.StopGracePeriod == nil || time.Duration(*svc.StopGracePeriod) <= shutdown {
					t.Errorf("stop_grace_period %v must outlast SHUTDOWN_TIMEOUT %s", svc.StopGracePeriod, shutdown)
				}
			}
		})
	}
	for _, name := range want {
		svc, ok := p.Services[name]
		if !ok || svc.Build == nil {
			t.Errorf("compose service %q missing or not built from the Dockerfile", name)
		}
	}
	var migrators []string
	for name, svc := range p.Services {
		if svc.Build != nil && svc.Build.Target == "migrate" {
			migrators = append(migrators, name)
		}
	}
	if len(migrators) != 1 {
		t.Fatalf("services built as the migrate bundle: %v, want exactly one", migrators)
	}
	migrate := migrators[0]
	// The bundle builds ./services/*/cmd/*: that must be exactly the services.
	dirs, _ := filepath.Glob(filepath.Join(root, "services", "*", "cmd", "*"))
	var bundled []string
	for _, d := range dirs {
		bundled = append(bundled, filepath.Base(d))
	}
	sort.Strings(bundled)
	if wantSvc := slices.Sorted(slices.Values(stack.Services())); !slices.Equal(bundled, wantSvc) {
		t.Errorf("services/*/cmd/* = %v, the migrate bundle would run %v; want %v", bundled, bundled, wantSvc)
	}

	// Dependencies exist, with conditions the dependency can meet; the
	// services wait for the migrations and the broker.
	for name, svc := range p.Services {
		for dep, cond := range svc.DependsOn {
			d, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %q", name, dep)
				continue
			}
			switch cond.Condition {
			case types.ServiceConditionCompletedSuccessfully:
				if !isOneShot(d) {
					t.Errorf("%s waits for %s to complete, but %s keeps running", name, dep, dep)
				}
			case types.ServiceConditionHealthy:
				if d.HealthCheck == nil || d.HealthCheck.Disable {
					t.Errorf("%s waits for %s to be healthy, but it has no healthcheck", name, dep)
				}
			}
		}
	}
	for _, name := range stack.Services() {
		deps := p.Services[name].DependsOn
		if deps[migrate].Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s does not wait for %s to complete successfully", name, migrate)
		}
		if deps["nats"].Condition != types.ServiceConditionHealthy {
			t.Errorf("%s does not wait for a healthy nats", name)
		}
	}

	// Every listening port other services refer to is declared, and every
	// host:port reference names a declared port.
	listens := map[string]bool{}
	for name, svc := range p.Services {
		for _, port := range exposed(svc) {
			listens[fmt.Sprintf("%s:%d", name, port)] = true
		}
	}
	for name, svc := range p.Services {
		values := slices.Collect(func(yield func(string) bool) {
			for _, v := range env(svc) {
				if !yield(v) {
					return
				}
			}
			for _, a := range svc.Command {
				if !yield(a) {
					return
				}
			}
		})
		for _, v := range values {
			for _, m := range hostPortRef.FindAllStringSubmatch(v, -1) {
				if _, isService := p.Services[m[1]]; isService && !listens[m[0]] {
					t.Errorf("%s refers to %s, which no service exposes", name, m[0])
				}
			}
		}
	}

	// Each service gets every variable the harness gives it; values that
	// are not addresses or files must be the harness's.
	fake := &stack.Stack{DatabaseURL: "postgres://x", NATSURL: "nats://x", PCURL: "http://x:1", SFURL: "http://x:2", CAFile: "/x", SFKeyFile: "/y"}
	addressLike := map[string]bool{
		"HTTP_ADDR": true, "DATABASE_URL": true, "NATS_URL": true, "LOG_LEVEL": true,
		"WEBHOOK_CERT_HOSTS": true, "WEBHOOK_TRUSTED_CA_FILE": true, "PC_API_BASE_URL": true,
		"PC_WEBHOOK_API_BASE_URL": true, "PC_LOGIN_BASE_URL": true, "PC_WEBHOOK_URL": true,
		"PC_SWEEP_INTERVAL": true, "SF_LOGIN_URL": true, "SF_JWT_KEY_FILE": true,
	}
	for _, name := range stack.Services() {
		got := env(p.Services[name])
		for k, v := range fake.ServiceEnv(name, 1, 2) {
			gv, ok := got[k]
			switch {
			case !ok:
				t.Errorf("%s: compose does not set %s (the harness sets %s=%q)", name, k, k, v)
			case !addressLike[k] && gv != v:
				t.Errorf("%s: %s=%q in compose, %q in the harness", name, k, gv, v)
			}
		}
		if got["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://jaeger:4318" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT=%q, want Jaeger's OTLP/HTTP http://jaeger:4318", name, got["OTEL_EXPORTER_OTLP_ENDPOINT"])
		}
	}

	// The services' database credentials are the ones Postgres is created with.
	pg := env(p.Services["postgres"])
	for name, svc := range p.Services {
		dsn, ok := env(svc)["DATABASE_URL"]
		if !ok {
			continue
		}
		u, err := url.Parse(dsn)
		if err != nil {
			t.Errorf("%s: DATABASE_URL: %v", name, err)
			continue
		}
		pw, _ := u.User.Password()
		if u.Host != "postgres:5432" || u.User.Username() != pg["POSTGRES_USER"] || pw != pg["POSTGRES_PASSWORD"] || strings.TrimPrefix(u.Path, "/") != pg["POSTGRES_DB"] {
			t.Errorf("%s: DATABASE_URL %s does not match the postgres service's user, password and database", name, u.Redacted())
		}
	}

	// Files shared through volumes: the CA ingress trusts is in the volume
	// the Partner Center emulator writes it to; the key the
	// salesforce-adapter signs with is in the emulator's key directory.
	checkShared(t, p, "ingress", env(p.Services["ingress"])["WEBHOOK_TRUSTED_CA_FILE"], "partnercenter-emulator", "-ca-dir=", "webhook-ca.pem")
	checkShared(t, p, "salesforce-adapter", env(p.Services["salesforce-adapter"])["SF_JWT_KEY_FILE"], "salesforce-emulator", "-key-dir=", "jwt-key.pem")
	if got := env(p.Services["ingress"])["WEBHOOK_CERT_HOSTS"]; !strings.Contains(got, "partnercenter-emulator:8081") {
		t.Errorf("ingress WEBHOOK_CERT_HOSTS=%q does not allow the emulator's certificate host", got)
	}
	if got := env(p.Services["partnercenter-adapter"])["PC_WEBHOOK_URL"]; got != "http://ingress:8080/webhooks/partnercenter" {
		t.Errorf("PC_WEBHOOK_URL=%q, want ingress's endpoint on the compose network", got)
	}
	for _, v := range p.Services["mapper"].Volumes {
		if v.Type == types.VolumeTypeBind {
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("mapper bind mount: %v", err)
			}
		}
	}
}

// checkShared asserts that file (a path in consumer) lies in a named volume
// that producer mounts at the directory its flag names, and that the file's
// name is the one the producer writes.
func checkShared(t *testing.T, p *types.Project, consumer, file, producer, flag, base string) {
	t.Helper()
	if filepath.Base(file) != base {
		t.Errorf("%s reads %q; %s writes %s", consumer, file, producer, base)
	}
	var dir string
	for _, a := range p.Services[producer].Command {
		if strings.HasPrefix(a, flag) {
			dir = strings.TrimPrefix(a, flag)
		}
	}
	volumeAt := func(svc, target string) string {
		for _, v := range p.Services[svc].Volumes {
			if v.Type == types.VolumeTypeVolume && v.Target == target {
				return v.Source
			}
		}
		return ""
	}
	pv, cv := volumeAt(producer, dir), volumeAt(consumer, filepath.Dir(file))
	if pv == "" || pv != cv {
		t.Errorf("%s writes to %q (volume %q) but %s reads %q (volume %q)", producer, dir, pv, consumer, file, cv)
	}
}

// TestDockerfile checks what the compose file and the manifests rely on:
// static binaries, a non-root user in every runnable stage, the probe the
// health checks call, and the entrypoint the Kubernetes args follow.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	// Resolve the global ARG defaults used in FROM lines.
	for _, m := range regexp.MustCompile(`(?m)^ARG\s+([A-Z_]+)=(\S+)`).FindAllStringSubmatch(text, -1) {
		text = strings.ReplaceAll(text, "${"+m[1]+"}", m[2])
	}
	for _, want := range []string{
		"CGO_ENABLED=0",
		"./deploy/cmd/probe",
		"COPY --from=build-base /out/probe /usr/local/bin/probe",
		`ENTRYPOINT ["/usr/local/bin/app"]`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "cmd", "probe", "main.go")); err != nil {
		t.Errorf("probe source: %v", err)
	}
	// Each runnable stage (migrate, service) ends as a non-root user.
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)
	for _, st := range stages[1:] {
		name := strings.Fields(st)[len(strings.Fields(strings.SplitN(st, "\n", 2)[0]))-1]
		if name != "migrate" && name != "service" {
			continue
		}
		users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(st, -1)
		if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "0") || strings.HasPrefix(users[len(users)-1][1], "root") {
			t.Errorf("stage %s does not end as a non-root user", name)
		}
		if !strings.Contains(strings.SplitN(st, "\n", 2)[0], "distroless") {
			t.Errorf("stage %s is not built on distroless", name)
		}
	}
	// The last stage is the default target docker compose builds.
	if last := strings.SplitN(stages[len(stages)-1], "\n", 2)[0]; !strings.HasSuffix(strings.TrimSpace(last), "AS service") {
		t.Errorf("the default (last) stage is %q, want the service stage", last)
	}
}
