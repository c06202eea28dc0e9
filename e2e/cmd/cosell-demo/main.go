// Command cosell-demo builds cosell, runs the whole system on this machine
// (a pinned nats-server, both emulators, the four services, a fresh
// Postgres database), plays a Microsoft seller sharing co-sell referrals and
// waits for each to become a Salesforce opportunity. With -keep it leaves
// the system running until interrupted (make run).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cosell/cosell/e2e/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cosell-demo", flag.ContinueOnError)
	dbURL := fs.String("database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "Postgres server DSN; the demo creates its own database on it")
	natsURL := fs.String("nats-url", os.Getenv("NATS_URL"), "use this NATS server (JetStream, 2.10+) instead of starting the pinned one")
	binDir := fs.String("bin", "bin", "where to build the binaries")
	runDir := fs.String("run-dir", ".run/demo", "logs, keys and NATS data")
	n := fs.Int("n", 20, "inbound referrals to seed")
	nOut := fs.Int("outbound", 10, "opportunities sellers opt in to co-sell (0 skips the outbound scenario)")
	poll := fs.Duration("sf-poll-interval", time.Second, "how often the salesforce-adapter polls for changed opportunities")
	keep := fs.Bool("keep", false, "keep the system running until interrupted (make run)")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the opportunities")
	otlp := fs.String("otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "export the services' traces to this OTLP/HTTP endpoint")
	jaeger := fs.String("jaeger", os.Getenv("COSELL_DEMO_JAEGER"), "start this Jaeger binary (make jaeger builds bin/jaeger; make run JAEGER=1 sets it) and export the services' traces to it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.RemoveAll(*runDir); err != nil {
		return err
	}

	fmt.Println("demo: building binaries ...")
	if err := stack.Build(ctx, *binDir); err != nil {
		return err
	}
	fmt.Println("demo: starting nats-server, emulators and services ...")
	s, err := stack.Start(ctx, stack.Config{
		BinDir: *binDir, RunDir: *runDir, DatabaseURL: *dbURL, DBName: "cosell_demo", KeepDB: *keep,
		NATSURL: *natsURL, OTLPEndpoint: *otlp, JaegerBinary: *jaeger,
		ExtraEnv: map[string]map[string]string{"salesforce-adapter": {"SF_POLL_INTERVAL": poll.String()}},
	})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if serr := s.Stop(stopCtx); serr != nil {
			fmt.Fprintln(os.Stderr, "demo: stop:", serr)
		}
	}()
	abs, _ := filepath.Abs(*runDir)
	fmt.Printf("demo: running — Partner Center emulator %s, Salesforce emulator %s, webhook %s, NATS %s, logs in %s\n",
		s.PCURL, s.SFURL, s.WebhookURL, s.NATSURL, abs)
	if s.JaegerURL != "" {
		fmt.Printf("demo: Jaeger query API %s — a referral's journey: COSELL_JAEGER_URL=%s cosellctl trace <referral-id>\n", s.JaegerURL, s.JaegerURL)
	}

	if *keep {
		envFile := filepath.Join(abs, "cosellctl.env")
		if err := writeCLIEnv(envFile, s); err != nil {
			return err
		}
		fmt.Printf("demo: for cosellctl and curl in another terminal: source %s\n", envFile)
		fmt.Println("demo: the system is up; press Ctrl-C to stop it")
		<-ctx.Done()
		return nil
	}
	if err := inbound(ctx, s, *n, *timeout); err != nil {
		return err
	}
	if *nOut > 0 {
		return outbound(ctx, s, *nOut, *timeout)
	}
	return nil
}

// writeCLIEnv writes the shell exports that point cosellctl (and curl, as
// $PC and $SF) at the running system.
func writeCLIEnv(path string, s *stack.Stack) error {
	env := s.CLIEnv()
	env["PC"], env["SF"] = s.PCURL, s.SFURL
	var b strings.Builder
	b.WriteString("# written by make run: the running demo system, for cosellctl and curl\n")
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "export %s='%s'\n", k, env[k])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func inbound(ctx context.Context, s *stack.Stack, n int, timeout time.Duration) error {
	pc := stack.NewPartnerCenter(s.PCURL)
	sf := stack.NewSalesforce(s.SFURL)
	fmt.Printf("demo: a Microsoft seller shares %d co-sell referrals ...\n", n)
	seeded, err := stack.SeedInbound(ctx, pc, "Demo", n, 4, 0)
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	synced, werr := stack.WaitForOpportunities(waitCtx, sf, seeded, 50*time.Millisecond)

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERRAL\tCUSTOMER\tDEAL VALUE\tOPPORTUNITY\tSTAGE\tAMOUNT\tLATENCY")
	var lat []time.Duration
	for _, r := range seeded {
		if r == nil {
			continue
		}
		l := "-"
		if r.OpportunityID != "" {
			lat = append(lat, r.Latency())
			l = fmt.Sprintf("%d ms", r.Latency().Milliseconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%s\t%.2f\t%s\n", r.ReferralID, r.Customer, r.DealValue, dash(r.OpportunityID), dash(r.StageName), r.Amount, l)
	}
	tw.Flush()
	fmt.Printf("demo: %d/%d referrals synced, p50 %d ms, p99 %d ms\n", synced, n,
		stack.Percentile(lat, 50).Milliseconds(), stack.Percentile(lat, 99).Milliseconds())
	if synced != n {
		if werr != nil && !errors.Is(werr, context.DeadlineExceeded) {
			return werr
		}
		return fmt.Errorf("only %d of %d referrals became opportunities within %s (logs in the run directory)", synced, n, timeout)
	}
	return nil
}

// outbound plays sellers opting opportunities in to co-sell, waits for the
// referrals and the write-back, then has them change the deal value and
// waits for Partner Center to follow.
func outbound(ctx context.Context, s *stack.Stack, n int, timeout time.Duration) error {
	pc := stack.NewPartnerCenter(s.PCURL)
	sf := stack.NewSalesforce(s.SFURL)
	fmt.Printf("demo: %d sellers opt opportunities in to co-sell ...\n", n)
	opts, err := stack.SeedOutbound(ctx, sf, "Demo", n, 4)
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	created, werr := stack.WaitForReferrals(waitCtx, pc, sf, opts, 200*time.Millisecond)

	fmt.Println("demo: sellers change the deal value ...")
	changed := 0
	if werr == nil {
		for _, o := range opts {
			if err := stack.ChangeAmount(ctx, sf, o.OpportunityID, o.Amount+1000); err != nil {
				return err
			}
		}
		changed, werr = stack.WaitForDealValues(waitCtx, pc, opts, func(o *stack.OptedIn) float64 { return o.Amount + 1000 })
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPPORTUNITY\tNAME\tREFERRAL\tWRITTEN BACK\tDEAL VALUE\tLATENCY")
	var lat []time.Duration
	for _, o := range opts {
		l := "-"
		if o.ReferralID != "" {
			lat = append(lat, o.Latency())
			l = fmt.Sprintf("%d ms", o.Latency().Milliseconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%.2f\t%s\n", o.OpportunityID, o.Name, dash(o.ReferralID), o.WrittenBack, o.DealValue, l)
	}
	tw.Flush()
	fmt.Printf("demo-outbound: %d/%d referrals created, p50 %d ms, p99 %d ms\n", created, n,
		stack.Percentile(lat, 50).Milliseconds(), stack.Percentile(lat, 99).Milliseconds())
	fmt.Printf("demo-outbound: %d/%d deal value changes reached Partner Center\n", changed, n)
	if created != n || changed != n {
		if werr != nil && !errors.Is(werr, context.DeadlineExceeded) {
			return werr
		}
		return fmt.Errorf("outbound: %d of %d referrals created, %d of %d changes synced within %s (logs in the run directory)", created, n, changed, n, timeout)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
