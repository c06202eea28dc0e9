// Package config loads a service's configuration from environment variables
// into one typed struct, with defaults declared next to the fields, and
// prints it without secrets.
//
// Fields use go-envconfig tags:
//
//	type Config struct {
//		config.Common
//		SweepInterval time.Duration `env:"SWEEP_INTERVAL, default=5m"`
//		ClientSecret  config.Secret `env:"PC_CLIENT_SECRET"`
//	}
//
// Values set on the struct before Load act as defaults that beat the tag's
// default, so a service can give Common's HTTP_ADDR its own port; a variable
// in the environment always wins.
package config

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/cosell/cosell/libs/telemetry"
)

// Common holds the settings every cosell service has. Services embed it in
// their own Config.
type Common struct {
	// DatabaseURL is the Postgres connection string (pgx syntax; pool_*
	// parameters tune the pool).
	DatabaseURL DSN `env:"DATABASE_URL, default=postgres://postgres@127.0.0.1:5432/cosell?sslmode=disable"`
	// NATSURL is the NATS server list, comma-separated.
	NATSURL DSN `env:"NATS_URL, default=nats://127.0.0.1:4222"`
	// HTTPAddr is where /healthz, /readyz, /metrics and the service's own
	// routes listen.
	HTTPAddr string `env:"HTTP_ADDR, default=:8080"`
	// LogLevel is debug, info, warn or error.
	LogLevel slog.Level `env:"LOG_LEVEL, default=info"`
	// ShutdownTimeout bounds the whole ordered shutdown; Kubernetes' grace
	// period (30s by default) must be longer.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT, default=20s"`
	// StreamMaxAge is how long the pipeline's JetStream streams keep
	// messages. Zero (unset) means: create them with bus.DefaultMaxAge and
	// leave an existing stream's max age as it is; a value is applied at
	// every start. Set it in every service's environment or in none.
	StreamMaxAge time.Duration `env:"STREAM_MAX_AGE"`
	// DeadLetterMaxAge is StreamMaxAge for the dead-letter stream (default
	// bus.DefaultDeadLetterMaxAge), with the same rule.
	DeadLetterMaxAge time.Duration `env:"DEAD_LETTER_MAX_AGE"`
}

// Logger builds the service's JSON logger at the configured level, writing
// to w (os.Stdout when nil).
func (c Common) Logger(service string, w io.Writer) *slog.Logger {
	if w == nil {
		w = os.Stdout
	}
	return telemetry.NewLogger(service, c.LogLevel, w)
}

// Load fills cfg, a pointer to a struct, from the process environment.
func Load(ctx context.Context, cfg any) error {
	return load(ctx, cfg, envconfig.OsLookuper())
}

// LoadFrom fills cfg from env alone, ignoring the process environment; it
// is how tests build a service's configuration without t.Setenv.
func LoadFrom(ctx context.Context, cfg any, env map[string]string) error {
	return load(ctx, cfg, envconfig.MapLookuper(env))
}

func load(ctx context.Context, cfg any, l envconfig.Lookuper) error {
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{
		Target:   cfg,
		Lookuper: l,
		// Pre-set values are per-service defaults, and the environment
		// overrides them.
		DefaultOverwrite: true,
	}); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	return nil
}

// LogEffective logs cfg, the configuration the service will run with, as one
// record whose attributes are named by environment variable. Secret values
// print masked and connection strings without their passwords.
func LogEffective(logger *slog.Logger, cfg any) {
	attrs := Effective(cfg)
	args := make([]any, len(attrs))
	for i, a := range attrs {
		args[i] = a
	}
	logger.Info("effective configuration", slog.Group("config", args...))
}

// Effective returns cfg's fields as attributes keyed by their environment
// variable names, the way LogEffective logs them.
func Effective(cfg any) []slog.Attr {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var attrs []slog.Attr
	collect(v, "", &attrs)
	return attrs
}

func collect(v reflect.Value, prefix string, attrs *[]slog.Attr) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		key, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
		key = strings.TrimSpace(key)
		if key == "" {
			// A nested struct, possibly with a prefix= option.
			inner := fv
			for inner.Kind() == reflect.Pointer && !inner.IsNil() {
				inner = inner.Elem()
			}
			if inner.Kind() == reflect.Struct {
				collect(inner, prefix+tagPrefix(opts), attrs)
			}
			continue
		}
		*attrs = append(*attrs, slog.Any(prefix+key, display(fv)))
	}
}

func tagPrefix(opts string) string {
	for _, o := range strings.Split(opts, ",") {
		o = strings.TrimSpace(o)
		if p, ok := strings.CutPrefix(o, "prefix="); ok {
			return p
		}
	}
	return ""
}

// display turns a field into what may be logged: types that know how to
// print themselves safely (Secret, DSN) do so, durations and levels print as
// text, everything else as its value.
func display(v reflect.Value) any {
	if !v.CanInterface() {
		return nil
	}
	x := v.Interface()
	switch x := x.(type) {
	case slog.LogValuer:
		return x.LogValue()
	case fmt.Stringer:
		return x.String()
	}
	return x
}
