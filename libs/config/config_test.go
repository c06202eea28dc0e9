package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/config"
)

type pcConfig struct {
	config.Common
	SweepInterval time.Duration `env:"SWEEP_INTERVAL, default=5m"`
	ClientID      string        `env:"PC_CLIENT_ID"`
	ClientSecret  config.Secret `env:"PC_CLIENT_SECRET"`
	Allowed       []string      `env:"CERT_HOSTS, default=api.partnercenter.microsoft.com,login.microsoftonline.com"`
	Token         tokenConfig   `env:", prefix=TOKEN_"`
}

type tokenConfig struct {
	URL string        `env:"URL, default=https://login.microsoftonline.com"`
	Key config.Secret `env:"ENCRYPTION_KEY, required"`
}

const secretValue = "sup3r-s3cret-value"

func TestDefaults(t *testing.T) {
	var cfg pcConfig
	if err := config.LoadFrom(t.Context(), &cfg, map[string]string{"TOKEN_ENCRYPTION_KEY": "k"}); err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if got := cfg.DatabaseURL.Reveal(); got != "postgres://postgres@127.0.0.1:5432/cosell?sslmode=disable" {
		t.Errorf("DATABASE_URL default = %q", got)
	}
	if got := cfg.NATSURL.Reveal(); got != "nats://127.0.0.1:4222" {
		t.Errorf("NATS_URL default = %q", got)
	}
	if cfg.HTTPAddr != ":8080" || cfg.LogLevel != slog.LevelInfo || cfg.ShutdownTimeout != 20*time.Second {
		t.Errorf("common defaults: addr=%q level=%v timeout=%v", cfg.HTTPAddr, cfg.LogLevel, cfg.ShutdownTimeout)
	}
	if cfg.SweepInterval != 5*time.Minute {
		t.Errorf("SWEEP_INTERVAL default = %v", cfg.SweepInterval)
	}
	if len(cfg.Allowed) != 2 || cfg.Allowed[1] != "login.microsoftonline.com" {
		t.Errorf("CERT_HOSTS default = %v", cfg.Allowed)
	}
	if cfg.Token.URL != "https://login.microsoftonline.com" {
		t.Errorf("TOKEN_URL default = %q", cfg.Token.URL)
	}
}

func TestEnvOverridesDefaultsAndPresetValues(t *testing.T) {
	cfg := pcConfig{Common: config.Common{HTTPAddr: ":8081"}}
	env := map[string]string{
		"DATABASE_URL":         "postgres://app:pw@db:5432/cosell",
		"LOG_LEVEL":            "debug",
		"SHUTDOWN_TIMEOUT":     "7s",
		"SWEEP_INTERVAL":       "30s",
		"PC_CLIENT_SECRET":     secretValue,
		"TOKEN_ENCRYPTION_KEY": "k",
		"TOKEN_URL":            "http://127.0.0.1:9000",
	}
	if err := config.LoadFrom(t.Context(), &cfg, env); err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if cfg.HTTPAddr != ":8081" {
		t.Errorf("pre-set HTTP_ADDR = %q, want the service's :8081 over the tag default", cfg.HTTPAddr)
	}
	if cfg.DatabaseURL.Reveal() != env["DATABASE_URL"] || cfg.LogLevel != slog.LevelDebug ||
		cfg.ShutdownTimeout != 7*time.Second || cfg.SweepInterval != 30*time.Second ||
		cfg.ClientSecret.Reveal() != secretValue || cfg.Token.URL != env["TOKEN_URL"] {
		t.Errorf("environment not applied: %+v", cfg)
	}

	env["HTTP_ADDR"] = ":9999"
	cfg = pcConfig{Common: config.Common{HTTPAddr: ":8081"}}
	if err := config.LoadFrom(t.Context(), &cfg, env); err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if cfg.HTTPAddr != ":9999" {
		t.Errorf("HTTP_ADDR = %q, want the environment's :9999", cfg.HTTPAddr)
	}
}

func TestLoadReportsBadValuesAndMissingRequired(t *testing.T) {
	var cfg pcConfig
	if err := config.LoadFrom(t.Context(), &cfg, map[string]string{}); err == nil {
		t.Error("missing required TOKEN_ENCRYPTION_KEY accepted")
	}
	cfg = pcConfig{}
	if err := config.LoadFrom(t.Context(), &cfg, map[string]string{"TOKEN_ENCRYPTION_KEY": "k", "SWEEP_INTERVAL": "often"}); err == nil {
		t.Error("bad duration accepted")
	}
	cfg = pcConfig{}
	if err := config.LoadFrom(t.Context(), &cfg, map[string]string{"TOKEN_ENCRYPTION_KEY": "k", "LOG_LEVEL": "loud"}); err == nil {
		t.Error("bad log level accepted")
	}
}

func TestLoadReadsTheProcessEnvironment(t *testing.T) {
	t.Setenv("TOKEN_ENCRYPTION_KEY", "k")
	t.Setenv("SWEEP_INTERVAL", "2m")
	var cfg pcConfig
	if err := config.Load(t.Context(), &cfg); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.SweepInterval != 2*time.Minute {
		t.Errorf("SWEEP_INTERVAL = %v", cfg.SweepInterval)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := config.Secret(secretValue)
	type holder struct {
		Name   string
		Secret config.Secret
		Ptr    *config.Secret
	}
	h := holder{Name: "x", Secret: s, Ptr: &s}

	var outputs []string
	for _, f := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s", "%T %v"} {
		outputs = append(outputs, fmt.Sprintf(f, s), fmt.Sprintf(f, h))
	}
	outputs = append(outputs, fmt.Sprint(s), fmt.Sprintln(s, h), s.String(), s.GoString())
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	outputs = append(outputs, string(j))
	txt, _ := s.MarshalText()
	outputs = append(outputs, string(txt))

	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("s", "secret", s, "holder", h, "ptr", &s)
	tbuf := bytes.Buffer{}
	slog.New(slog.NewTextHandler(&tbuf, nil)).Info("s", "secret", s, "holder", h)
	outputs = append(outputs, buf.String(), tbuf.String())

	for _, out := range outputs {
		if strings.Contains(out, secretValue) || strings.Contains(out, fmt.Sprintf("%x", secretValue)) {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if !strings.Contains(string(j), config.Masked) || !strings.Contains(buf.String(), config.Masked) {
		t.Errorf("masked form missing: %s / %s", j, buf.String())
	}
	if s.Reveal() != secretValue {
		t.Error("Reveal lost the value")
	}
	if config.Secret("").String() != "" {
		t.Error("an unset secret should print empty, so operators see it is unset")
	}
}

func TestDSNHidesOnlyThePassword(t *testing.T) {
	tests := map[string]string{
		"postgres://app:pw-123@db:5432/cosell?sslmode=disable": "postgres://app:" + config.Masked + "@db:5432/cosell?sslmode=disable",
		"postgres://postgres@127.0.0.1:5432/cosell":            "postgres://postgres@127.0.0.1:5432/cosell",
		"postgres://db/cosell?password=pw-123&sslmode=require": "postgres://db/cosell?password=" + config.Masked + "&sslmode=require",
		"host=db user=app password=pw-123 dbname=cosell":       "host=db user=app password=" + config.Masked + " dbname=cosell",
		"host=db password='pw 123' dbname=cosell":              "host=db password=" + config.Masked + " dbname=cosell",
		"nats://u:pw-123@n1:4222,nats://u:pw-123@n2:4222":      "nats://u:" + config.Masked + "@n1:4222,nats://u:" + config.Masked + "@n2:4222",
	}
	for in, want := range tests {
		d := config.DSN(in)
		if got := d.String(); got != want {
			t.Errorf("DSN(%q).String() = %q, want %q", in, got, want)
		}
		for _, out := range []string{fmt.Sprintf("%v %s %q %#v %+v", d, d, d, d, d), mustJSON(t, d)} {
			if strings.Contains(out, "pw-123") || strings.Contains(out, "pw 123") {
				t.Errorf("password leaked: %s", out)
			}
		}
		if d.Reveal() != in {
			t.Errorf("Reveal = %q", d.Reveal())
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	return string(b)
}

func TestLogEffectiveMasksSecrets(t *testing.T) {
	var cfg pcConfig
	env := map[string]string{
		"DATABASE_URL":         "postgres://app:pw-123@db:5432/cosell",
		"PC_CLIENT_SECRET":     secretValue,
		"PC_CLIENT_ID":         "client-1",
		"TOKEN_ENCRYPTION_KEY": secretValue,
	}
	if err := config.LoadFrom(t.Context(), &cfg, env); err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	var buf bytes.Buffer
	config.LogEffective(slog.New(slog.NewJSONHandler(&buf, nil)), &cfg)
	out := buf.String()
	if strings.Contains(out, secretValue) || strings.Contains(out, "pw-123") {
		t.Fatalf("effective config leaks a secret: %s", out)
	}
	var rec struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	want := map[string]any{
		"DATABASE_URL":         "postgres://app:" + config.Masked + "@db:5432/cosell",
		"HTTP_ADDR":            ":8080",
		"LOG_LEVEL":            "INFO",
		"SHUTDOWN_TIMEOUT":     "20s",
		"SWEEP_INTERVAL":       "5m0s",
		"PC_CLIENT_ID":         "client-1",
		"PC_CLIENT_SECRET":     config.Masked,
		"TOKEN_URL":            "https://login.microsoftonline.com",
		"TOKEN_ENCRYPTION_KEY": config.Masked,
	}
	for k, v := range want {
		if rec.Config[k] != v {
			t.Errorf("%s = %v, want %v", k, rec.Config[k], v)
		}
	}
	if _, ok := rec.Config["CERT_HOSTS"]; !ok {
		t.Error("CERT_HOSTS missing from the effective config")
	}
}

func TestCommonLogger(t *testing.T) {
	c := config.Common{LogLevel: slog.LevelWarn}
	var buf bytes.Buffer
	l := c.Logger("ingress", &buf)
	l.Info("hidden")
	l.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"service":"ingress"`) {
		t.Errorf("logger output: %s", buf.String())
	}
}
