package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
)

// waitGuard bounds waiting for asynchronous work; reaching it is a
// failure, never a measurement.
const waitGuard = 30 * time.Second

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// eventually polls cond until it holds or waitGuard passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeEndToEnd runs the service as main does, against a real Postgres
// and JetStream: a snapshot becomes a command, a rejection parks the link,
// the admin API replays it, a malformed message is dead-lettered, and the
// service stops cleanly.
func TestServeEndToEnd(t *testing.T) {
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: "mapper", FS: storetest.RepoMigrations(t, "mapper")})
	natsURL := bustest.RunServer(t)
	addr := freeAddr(t)
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("NATS_URL", natsURL)
	t.Setenv("HTTP_ADDR", addr)
	t.Setenv("LOG_LEVEL", "error")
	t.Setenv("SHUTDOWN_TIMEOUT", "10s")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	t.Setenv("MAPPING_FILE", "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- dispatch(ctx, nil) }()
	base := "http://" + addr
	eventually(t, "/readyz", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	cctx, ccancel := context.WithTimeout(context.Background(), waitGuard)
	defer ccancel()
	client, err := bus.Connect(cctx, natsURL, "test-client")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cmds, err := client.JetStream().OrderedConsumer(cctx, bus.StreamSalesforceCommands, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	next := func() *cosellv1.UpsertOpportunityCommand {
		t.Helper()
		m, err := cmds.Next(jetstream.FetchMaxWait(waitGuard))
		if err != nil {
			t.Fatalf("no command: %v", err)
		}
		var c cosellv1.UpsertOpportunityCommand
		if err := proto.Unmarshal(m.Data(), &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}

	const id = "0f8e2b55-3b8a-4d1e-9a55-7d1c6c1e2a10"
	updated := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	doc := `{"id":"` + id + `","name":"Fabrikam rollout","status":"New","substatus":"Pending","organizationId":"partner",
		"customerProfile":{"name":"Fabrikam","address":{"country":"DE","postalCode":"10115"}},
		"details":{"dealValue":1200,"currency":"EUR","closingDateTime":"2026-06-30T00:00:00Z","notes":"n"}}`
	ev := &cosellv1.ReferralObserved{ReferralId: id, EngagementId: "e1", UpdatedAt: timestamppb.New(updated), Etag: `"1"`, ReferralJson: []byte(doc)}
	if err := client.Publish(cctx, bus.SubjectReferralObserved, "obs-1", ev); err != nil {
		t.Fatal(err)
	}
	first := next()
	var fields map[string]any
	if err := json.Unmarshal(first.GetFieldsJson(), &fields); err != nil {
		t.Fatal(err)
	}
	if first.GetReferralId() != id || fields["StageName"] != "On Hold" || fields["CurrencyIsoCode"] != "EUR" || first.GetAccount().GetCountry() != "DE" {
		t.Fatalf("command = %v", first)
	}

	rej := &cosellv1.SalesforceResult{CommandId: first.GetCommandId(), ReferralId: id, Outcome: cosellv1.Outcome_OUTCOME_REJECTED,
		ErrorCode: "FIELD_CUSTOM_VALIDATION_EXCEPTION", ErrorMessage: "Amount must be at least 5000"}
	if err := client.Publish(cctx, bus.SubjectSalesforceResult, "res-1", rej); err != nil {
		t.Fatal(err)
	}
	var link struct {
		State string `json:"state"`
		Audit []struct {
			Kind, Message string
		} `json:"audit"`
	}
	eventually(t, "the link to park", func() bool {
		resp, err := http.Get(base + "/admin/links/" + id)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&link) == nil && link.State == "parked"
	})
	if last := link.Audit[len(link.Audit)-1]; !strings.Contains(last.Message, "Amount must be at least 5000") {
		t.Errorf("audit = %+v", link.Audit)
	}

	resp, err := http.Post(base+"/admin/links/"+id+"/replay", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var replayed struct{ State, CommandID string }
	if err := json.NewDecoder(resp.Body).Decode(&replayed); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("replay: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if again := next(); again.GetCommandId() == first.GetCommandId() || replayed.State != "active" {
		t.Errorf("replayed command %s (first %s), state %s", again.GetCommandId(), first.GetCommandId(), replayed.State)
	}
	if resp, err := http.Post(base+"/admin/links/unknown/replay", "application/json", nil); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown referral: %v %v", resp.StatusCode, err)
	}

	// A payload that does not decode is dead-lettered into mapper.dead_letters.
	if _, err := client.JetStream().PublishMsg(cctx, natsMsg{bus.SubjectReferralObserved, []byte{0xff, 0xff, 0xff}}.msg()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	eventually(t, "the dead letter", func() bool {
		var n int
		return conn.QueryRow(cctx, `SELECT count(*) FROM mapper.dead_letters WHERE referral_id IS NULL AND subject = $1`, bus.SubjectReferralObserved).Scan(&n) == nil && n == 1
	})

	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), `cosell_mapper_messages_total{kind="referral_observed"`) {
		t.Errorf("/metrics lacks the mapper's counter:\n%.2000s", metrics.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(waitGuard):
		t.Fatal("run did not return after cancel")
	}
}

func TestMappingValidateCommand(t *testing.T) {
	var out bytes.Buffer
	if err := validateMapping(context.Background(), "", "", &out); err != nil || !strings.Contains(out.String(), "ok") {
		t.Errorf("default: %v %q", err, out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\ninbound:\n  fields:\n    - {to: Name, from: name, as: text}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := dispatch(context.Background(), []string{"mapping", "validate", bad})
	if err == nil || !strings.Contains(err.Error(), bad+":4:") || !strings.Contains(err.Error(), "inbound.fields[0] (Name).as") {
		t.Errorf("err = %v", err)
	}
	if err := dispatch(context.Background(), []string{"frobnicate"}); err == nil {
		t.Error("unknown command accepted")
	}
	// Against a describe whose StageName lacks the lifecycle's stages.
	describe, err := os.ReadFile("../../mapping/testdata/opportunity-describe.json")
	if err != nil {
		t.Fatal(err)
	}
	narrowed := filepath.Join(t.TempDir(), "describe.json")
	if err := os.WriteFile(narrowed, bytes.ReplaceAll(describe, []byte(`"Qualification"`), []byte(`"Qualify"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	err = dispatch(context.Background(), []string{"mapping", "validate", "--describe", narrowed})
	if err == nil || !strings.Contains(err.Error(), "lifecycle.stages.Qualification") {
		t.Errorf("validate against a narrowed describe: %v", err)
	}
}

func TestWithSearchPath(t *testing.T) {
	tests := map[string]string{
		"postgres://u@h:5432/db?sslmode=disable": "postgres://u@h:5432/db?search_path=mapper%2Cpublic&sslmode=disable",
		"postgres://u@h/db?search_path=x":        "postgres://u@h/db?search_path=x",
		"host=h dbname=db":                       "host=h dbname=db search_path=mapper,public",
	}
	for in, want := range tests {
		if got, err := withSearchPath(in); err != nil || got != want {
			t.Errorf("withSearchPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// natsMsg builds a raw message without the bus's headers or Msg-Id.
type natsMsg struct {
	subject string
	data    []byte
}

func (n natsMsg) msg() *nats.Msg { return &nats.Msg{Subject: n.subject, Data: n.data} }
