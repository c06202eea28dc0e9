// Command ingress is cosell's public edge for Partner Center webhooks: it
// verifies each signed delivery and publishes it to JetStream, answering
// 2xx only once the event is durable.
//
// Usage:
//
//	ingress           serve (configuration from the environment; see README.md)
//	ingress migrate   apply the ingress migrations to DATABASE_URL and exit
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
		err = run(ctx, log)
	case len(args) == 1 && args[0] == "migrate":
		err = migrateUp(ctx, log)
	default:
		err = fmt.Errorf("unknown arguments %q (usage: ingress [migrate])", args)
	}
	stop()
	if err != nil {
		log.Error("ingress failed", "err", err)
		os.Exit(1)
	}
}
