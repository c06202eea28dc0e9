// Command mapper is cosell's sync brain: it consumes Partner Center
// referral snapshots, Salesforce opportunity snapshots and both adapters'
// results, keeps the referral ↔ opportunity links and the audit log in
// Postgres, applies the declarative mapping and lifecycle, and publishes
// opportunity upserts and write-backs and referral creates and patches. It
// never talks to Partner Center or Salesforce itself.
//
// Usage:
//
//	mapper                          serve (the default)
//	mapper migrate                  apply the mapper's database migrations
//	mapper replay <referralId>      re-apply a link's latest snapshot and resume it
//	mapper mapping validate [file] [--describe describe.json]
//	                                validate a mapping file (default MAPPING_FILE, else the embedded default),
//	                                and against a saved Salesforce describe of the object when given
//	mapper mapping default          print the embedded default mapping
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mapper:", err)
		os.Exit(1)
	}
}

// dispatch runs the subcommand named by args.
func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return run(ctx)
	}
	switch args[0] {
	case "serve":
		return run(ctx)
	case "migrate":
		return migrateUp(ctx)
	case "replay":
		if len(args) != 2 || args[1] == "" {
			return fmt.Errorf("usage: mapper replay <referralId>")
		}
		return replay(ctx, args[1], os.Stdout)
	case "mapping":
		if len(args) >= 2 && args[1] == "validate" {
			file, describe := "", ""
			rest := args[2:]
			for len(rest) > 0 {
				switch {
				case rest[0] == "--describe" && len(rest) > 1:
					describe, rest = rest[1], rest[2:]
				case file == "" && !strings.HasPrefix(rest[0], "-"):
					file, rest = rest[0], rest[1:]
				default:
					return fmt.Errorf("usage: mapper mapping validate [file] [--describe describe.json]")
				}
			}
			return validateMapping(ctx, file, describe, os.Stdout)
		}
		if len(args) == 2 && args[1] == "default" {
			return printDefaultMapping(os.Stdout)
		}
		return fmt.Errorf("usage: mapper mapping validate [file] [--describe describe.json] | mapper mapping default")
	default:
		return fmt.Errorf("unknown command %q (commands: serve, migrate, replay, mapping)", args[0])
	}
}
