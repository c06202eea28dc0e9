// Command salesforce-adapter owns every call cosell makes to Salesforce: it
// consumes UpsertOpportunityCommand messages, finds or creates the
// customer's Account, upserts opportunities by External ID in sObject
// Collections batches, applies SalesforceWriteback commands (update by Id),
// and publishes a SalesforceResult per command; it polls for changed
// opportunities and publishes OpportunityObserved, and serves read-only
// admin endpoints for the operator CLI, all within a configured share of
// the org's daily API allocation.
//
// Usage:
//
//	salesforce-adapter           serve (configuration from the environment; see README.md)
//	salesforce-adapter migrate   apply the salesforce-adapter migrations to DATABASE_URL and exit
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

// service names the service in logs, traces, metrics, its NATS connection,
// its Postgres application_name and its migrations.
const service = "salesforce-adapter"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	log := telemetry.NewLogger(service, slog.LevelInfo, os.Stdout)

	var err error
	switch args := os.Args[1:]; {
	case len(args) == 0:
		err = run(ctx)
	case len(args) == 1 && args[0] == "migrate":
		err = migrateUp(ctx, log)
	default:
		err = fmt.Errorf("unknown arguments %q (usage: %s [migrate])", args, service)
	}
	stop()
	if err != nil {
		log.Error(service+" failed", "err", err)
		os.Exit(1)
	}
}
