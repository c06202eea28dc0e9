// Package ctl is cosellctl, the operator CLI: its command tree, options and
// output. Commands read Postgres and NATS directly for what has no HTTP
// endpoint (links, the audit log, dead letters, consumer lag) and call the
// services' admin endpoints for everything that acts (replays) or that only
// a service can answer (readiness, the Salesforce API budget, the
// adapters' view of a referral or opportunity). Nothing here talks to
// Partner Center or Salesforce directly; the only changes at Partner Center
// (the webhook registration and its test events) are made by the
// partnercenter-adapter, with its credentials and its rules.
package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cosell/cosell/cli/internal/opsdb"
	"github.com/cosell/cosell/cli/internal/svc"
)

// Defaults of the connection options.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/cosell?sslmode=disable"
	DefaultNATSURL     = "nats://127.0.0.1:4222"
	DefaultMapperURL   = "http://127.0.0.1:8092"
	DefaultPCURL       = "http://127.0.0.1:8090"
	DefaultSFURL       = "http://127.0.0.1:8091"
	DefaultIngressURL  = "http://127.0.0.1:8080"
)

// App runs cosellctl with its output streams and environment.
type App struct {
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// errUsage marks a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// errFailed is returned by commands that already printed why they failed
// (a mapping with problems, a service not ready): exit status 1, no more
// output.
var errFailed = errors.New("failed")

// options are the settings every command accepts.
type options struct {
	json        bool
	databaseURL string
	natsURL     string
	mapperURL   string
	pcURL       string
	sfURL       string
	ingressURL  string
	timeout     time.Duration
}

// env is what a running command works with.
type env struct {
	app  *App
	opts options
	out  io.Writer
	db   *opsdb.DB
}

// command is a node of the command tree: a group with subcommands or a
// leaf with run.
type command struct {
	name    string
	summary string
	sub     []*command
	run     func(ctx context.Context, e *env, path string, args []string) error
}

func (a *App) getenv(k string) string {
	if a.Getenv != nil {
		return a.Getenv(k)
	}
	return os.Getenv(k)
}

func tree() *command {
	return &command{name: "cosellctl", sub: []*command{
		{name: "status", summary: "health of each service, consumer lag, Salesforce API budget, last sweep, dead letters", run: runStatus},
		{name: "links", summary: "referral ↔ opportunity links", sub: []*command{
			{name: "list", summary: "list links, most recently changed first", run: runLinksList},
			{name: "show", summary: "one link (by referral or opportunity id) with its recent audit", run: runLinksShow},
		}},
		{name: "audit", summary: "the timeline of a referral or opportunity", run: runAudit},
		{name: "trace", summary: "a referral's journey through the services, from Jaeger's traces", run: runTrace},
		{name: "dead-letters", summary: "messages and syncs the services gave up on", sub: []*command{
			{name: "list", summary: "list dead letters of every service", run: runDLList},
			{name: "show", summary: "one dead letter with its headers and payload", run: runDLShow},
			{name: "replay", summary: "replay a dead letter once its cause is fixed", run: runDLReplay},
		}},
		{name: "resync", summary: "send a referral's latest snapshot through the mapper again", run: runResync},
		{name: "backfill", summary: "publish every referral updated since a date (runs partnercenter-adapter backfill)", run: runBackfill},
		{name: "mapping", summary: "validate and dry-run the mapping file", sub: []*command{
			{name: "validate", summary: "check a mapping file (and against the Salesforce describe)", run: runMappingValidate},
			{name: "dry-run", summary: "print exactly what would be sent for a referral or opportunity, writing nothing", run: runMappingDryRun},
		}},
		{name: "purge", summary: "remove one customer's data from cosell's tables (dry run unless --yes; never Salesforce or Partner Center)", run: runPurge},
		{name: "partnercenter", summary: "Partner Center credentials", sub: []*command{
			{name: "login", summary: "the one-time device-code consent (runs partnercenter-adapter login)", run: runPCLogin},
		}},
		{name: "webhook", summary: "the Partner Center webhook registration (through the partnercenter-adapter)", sub: []*command{
			{name: "show", summary: "the current registration, what this install registers, and a verdict", run: runWebhookShow},
			{name: "register", summary: "register this install's webhook with the adapter's start-up code (idempotent)", run: runWebhookRegister},
			{name: "test", summary: "ask Partner Center for a test event; --wait confirms ingress received it", run: runWebhookTest},
		}},
	}}
}

// Run executes the command line args (without the program name) and
// returns the exit status: 0 success, 1 failure, 2 usage error.
func (a *App) Run(ctx context.Context, args []string) int {
	root := tree()
	cmd, path, rest := root, "cosellctl", args
	for len(cmd.sub) > 0 {
		if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
			a.groupUsage(a.Stdout, cmd, path)
			if len(rest) == 0 {
				return 2
			}
			return 0
		}
		var next *command
		for _, c := range cmd.sub {
			if c.name == rest[0] {
				next = c
			}
		}
		if next == nil {
			fmt.Fprintf(a.Stderr, "%s: unknown command %q\n\n", path, rest[0])
			a.groupUsage(a.Stderr, cmd, path)
			return 2
		}
		cmd, path, rest = next, path+" "+next.name, rest[1:]
	}
	e := &env{app: a, out: a.Stdout}
	defer func() {
		if e.db != nil {
			e.db.Close()
		}
	}()
	err := cmd.run(ctx, e, path, rest)
	var uerr *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errFailed):
		return 1
	case errors.As(err, &uerr):
		fmt.Fprintf(a.Stderr, "%s: %v\nRun '%s --help' for usage.\n", path, err, path)
		return 2
	default:
		fmt.Fprintf(a.Stderr, "%s: %v\n", path, err)
		return 1
	}
}

func (a *App) groupUsage(w io.Writer, c *command, path string) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", path)
	names := make([]string, 0, len(c.sub))
	for _, s := range c.sub {
		names = append(names, s.name)
	}
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for _, s := range c.sub {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for a command's flags.\n", path)
}

// flags returns a flag set for the leaf command at path, with the common
// options registered; usage is the one-line synopsis after the path.
func (e *env) flags(path, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := e.app
	def := func(k, d string) string {
		if v := a.getenv(k); v != "" {
			return v
		}
		return d
	}
	fs.BoolVar(&e.opts.json, "json", false, "print JSON instead of tables")
	fs.StringVar(&e.opts.databaseURL, "database-url", def("DATABASE_URL", DefaultDatabaseURL), "Postgres `URL` (env DATABASE_URL)")
	fs.StringVar(&e.opts.natsURL, "nats-url", def("NATS_URL", DefaultNATSURL), "NATS `URL` (env NATS_URL)")
	fs.StringVar(&e.opts.mapperURL, "mapper-url", def("COSELL_MAPPER_URL", DefaultMapperURL), "mapper `URL` (env COSELL_MAPPER_URL)")
	fs.StringVar(&e.opts.pcURL, "partnercenter-adapter-url", def("COSELL_PARTNERCENTER_ADAPTER_URL", DefaultPCURL), "partnercenter-adapter `URL` (env COSELL_PARTNERCENTER_ADAPTER_URL)")
	fs.StringVar(&e.opts.sfURL, "salesforce-adapter-url", def("COSELL_SALESFORCE_ADAPTER_URL", DefaultSFURL), "salesforce-adapter `URL` (env COSELL_SALESFORCE_ADAPTER_URL)")
	fs.StringVar(&e.opts.ingressURL, "ingress-url", def("COSELL_INGRESS_URL", DefaultIngressURL), "ingress `URL` (env COSELL_INGRESS_URL)")
	fs.DurationVar(&e.opts.timeout, "timeout", 10*time.Second, "bound of each call to a service, Postgres or NATS")
	fs.Usage = func() {
		w := e.app.Stdout
		fmt.Fprintf(w, "Usage: %s %s\n\n%s\n\nFlags:\n", path, synopsis, strings.TrimSpace(description))
		printFlags(w, fs)
	}
	return fs
}

// printFlags lists a flag set's flags, the command's own before the
// common ones.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	common := map[string]bool{"json": true, "database-url": true, "nats-url": true, "mapper-url": true,
		"partnercenter-adapter-url": true, "salesforce-adapter-url": true, "ingress-url": true, "timeout": true}
	var own, shared []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if common[f.Name] {
			shared = append(shared, f)
		} else {
			own = append(own, f)
		}
	})
	line := func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if name != "" {
			left += " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  %-40s %s%s\n", left, usage, def)
	}
	sort.Slice(own, func(i, j int) bool { return own[i].Name < own[j].Name })
	for _, f := range own {
		line(f)
	}
	fmt.Fprintln(w, "\nCommon flags:")
	for _, f := range shared {
		line(f)
	}
}

// parse parses args, allowing flags after positional arguments
// ("links show R-1 --json"). --help prints the usage and returns
// flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				// FlagSet.Parse has already called fs.Usage.
				return nil, flag.ErrHelp
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// openDB connects to Postgres once per command.
func (e *env) openDB(ctx context.Context) (*opsdb.DB, error) {
	if e.db != nil {
		return e.db, nil
	}
	cctx, cancel := context.WithTimeout(ctx, e.opts.timeout)
	defer cancel()
	db, err := opsdb.Open(cctx, e.opts.databaseURL)
	if err != nil {
		return nil, err
	}
	e.db = db
	return db, nil
}

func (e *env) mapper() *svc.Client { return svc.New("mapper", e.opts.mapperURL, e.opts.timeout) }
func (e *env) pcAdapter() *svc.Client {
	return svc.New("partnercenter-adapter", e.opts.pcURL, e.opts.timeout)
}
func (e *env) sfAdapter() *svc.Client {
	return svc.New("salesforce-adapter", e.opts.sfURL, e.opts.timeout)
}
func (e *env) ingress() *svc.Client { return svc.New("ingress", e.opts.ingressURL, e.opts.timeout) }

// oneArg checks that exactly one positional argument named what was given.
func oneArg(args []string, what string) (string, error) {
	switch len(args) {
	case 1:
		if strings.TrimSpace(args[0]) == "" {
			return "", usagef("%s must not be empty", what)
		}
		return args[0], nil
	case 0:
		return "", usagef("missing %s", what)
	default:
		return "", usagef("want one %s, got %d arguments: %s", what, len(args), strings.Join(args, " "))
	}
}

// noArgs refuses positional arguments.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}
