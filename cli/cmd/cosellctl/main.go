// Command cosellctl is the cosell operator CLI: status, links, the audit
// timeline, dead letters and replays, resync, backfill, the mapping
// file's validation and dry-run, and the Partner Center webhook
// registration. Run 'cosellctl --help'.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cosell/cosell/cli/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := (&ctl.App{Stdout: os.Stdout, Stderr: os.Stderr}).Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
