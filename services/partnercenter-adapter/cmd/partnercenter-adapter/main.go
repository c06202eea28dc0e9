// Command partnercenter-adapter owns every call to Partner Center: it
// reads the referral behind each webhook notification and publishes its
// snapshot, sweeps for changes webhooks missed, creates and patches
// referrals for the mapper (idempotently), serves the operator's admin
// reads, and keeps the webhook registration pointing at ingress.
//
// Usage:
//
//	partnercenter-adapter                         serve (configuration from the environment; see README.md)
//	partnercenter-adapter migrate                 apply the adapter's migrations to DATABASE_URL and exit
//	partnercenter-adapter login                   one-time device-code consent (PC_AUTH_MODE=sam)
//	partnercenter-adapter backfill --since DATE   publish every referral updated since DATE (YYYY-MM-DD or RFC 3339)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cosell/cosell/libs/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log := telemetry.NewLogger(serviceName, slog.LevelInfo, os.Stdout)

	var err error
	switch args := os.Args[1:]; {
	case len(args) == 0:
		err = run(ctx, log, nil)
	case args[0] == "migrate" && len(args) == 1:
		err = migrateUp(ctx, log, nil)
	case args[0] == "login" && len(args) == 1:
		err = login(ctx, log, nil, os.Stdout)
	case args[0] == "backfill":
		err = backfill(ctx, log, nil, args[1:])
	default:
		err = fmt.Errorf("unknown arguments %q (usage: partnercenter-adapter [migrate | login | backfill --since DATE])", args)
	}
	stop()
	if err != nil {
		log.Error("partnercenter-adapter failed", "err", err)
		os.Exit(1)
	}
}
