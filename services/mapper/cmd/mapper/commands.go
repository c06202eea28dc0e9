package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/migrate"
	"github.com/cosell/cosell/libs/telemetry"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// migrateUp applies the mapper's migrations.
func migrateUp(ctx context.Context) error {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return err
	}
	log := cfg.Logger(service, os.Stdout)
	fsys, err := migrations.FS(service)
	if err != nil {
		return err
	}
	if err := migrate.Up(ctx, cfg.DatabaseURL.Reveal(), service, fsys); err != nil {
		return err
	}
	log.Info("migrations applied")
	return nil
}

// replay re-applies a link's latest snapshot, as POST
// /admin/links/{referralId}/replay does, without needing a running server.
func replay(ctx context.Context, referralID string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cfg, err := loadConfig(ctx)
	if err != nil {
		return err
	}
	log := cfg.Logger(service, os.Stderr)
	m, err := mapping.LoadFile(cfg.MappingFile)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: service, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := tel.Shutdown(context.WithoutCancel(ctx)); err != nil {
			log.Warn("flush telemetry", "err", err)
		}
	}()
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := bus.Connect(ctx, cfg.NATSURL.Reveal(), service, bus.WithLogger(log),
		bus.WithTracerProvider(tel.TracerProvider), bus.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		return err
	}
	defer conn.Close()
	svc, err := syncer.New(pool, conn, m, log, tel.TracerProvider, tel.MeterProvider, service)
	if err != nil {
		return err
	}
	res, err := svc.Replay(ctx, referralID)
	if err != nil {
		if syncer.IsNotFound(err) {
			return fmt.Errorf("no link for referral %s", referralID)
		}
		return err
	}
	if err := conn.Drain(ctx); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("print result: %w", err)
	}
	if res.State != "active" {
		return errors.New("the link is still parked: " + res.Message)
	}
	return nil
}

// validateMapping checks a mapping file: file, else MAPPING_FILE, else the
// embedded default; with describe (a saved Salesforce describe of the
// object, e.g. from the salesforce-adapter's GET /admin/describe/Opportunity)
// also against the org's fields and picklists.
func validateMapping(ctx context.Context, file, describe string, out io.Writer) error {
	if file == "" {
		cfg, err := loadConfig(ctx)
		if err != nil {
			return err
		}
		file = cfg.MappingFile
	}
	m, err := mapping.LoadFile(file)
	if err != nil {
		return err
	}
	against := ""
	if describe != "" {
		d, err := os.ReadFile(describe)
		if err != nil {
			return fmt.Errorf("read describe: %w", err)
		}
		if err := mapping.ValidateAgainstDescribe(m, d); err != nil {
			return err
		}
		against = ", fits " + describe
	}
	outbound := "no outbound section: Partner Center to Salesforce only"
	if m.Outbound != nil {
		outbound = fmt.Sprintf("%d outbound rules, %d lifecycle stages", len(m.Outbound.Fields), len(m.Lifecycle.Stages))
	}
	_, err = fmt.Fprintf(out, "%s: ok (version %d, %d inbound rules, %d ignore rules, %s; object %s, External ID %s%s)\n",
		m.File, m.Version, len(m.Inbound.Fields), len(m.Inbound.Ignore), outbound, m.Object, m.ExternalIDField, against)
	return err
}

// printDefaultMapping prints the embedded default, to start a custom file.
func printDefaultMapping(out io.Writer) error {
	if _, err := out.Write(mapping.DefaultYAML()); err != nil {
		return fmt.Errorf("print default mapping: %w", err)
	}
	return nil
}
