package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
)

// TestStreamMaxAgeRule: a max age is applied when set; a service without
// one creates streams with the defaults and leaves an existing stream's
// max age alone, so two services with different settings cannot flip the
// streams back and forth on every start.
func TestStreamMaxAgeRule(t *testing.T) {
	url := bustest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	connect := func(service string) *bus.Conn {
		c, err := bus.Connect(ctx, url, service)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		t.Cleanup(c.Close)
		return c
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	maxAge := func(stream string) time.Duration {
		t.Helper()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		return s.CachedInfo().Config.MaxAge
	}

	// Unset on a fresh broker: the defaults.
	a := connect("svc-a")
	if err := a.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := maxAge(bus.StreamReferrals); got != bus.DefaultMaxAge {
		t.Errorf("default pipeline max age = %v, want %v", got, bus.DefaultMaxAge)
	}
	if got := maxAge(bus.StreamDeadLetters); got != bus.DefaultDeadLetterMaxAge {
		t.Errorf("default dead-letter max age = %v, want %v", got, bus.DefaultDeadLetterMaxAge)
	}

	// Set: applied to existing streams, each to its own kind.
	b := connect("svc-b")
	if err := b.EnsureStreams(ctx, bus.StreamOptions{MaxAge: 72 * time.Hour, DeadLetterMaxAge: 240 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := maxAge(bus.StreamReferrals); got != 72*time.Hour {
		t.Errorf("pipeline max age = %v, want 72h", got)
	}
	if got := maxAge(bus.StreamDeadLetters); got != 240*time.Hour {
		t.Errorf("dead-letter max age = %v, want 240h", got)
	}

	// A service without a setting restarts: it keeps what was set.
	if err := a.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := maxAge(bus.StreamResults); got != 72*time.Hour {
		t.Errorf("after a restart without a setting, max age = %v, want 72h kept", got)
	}
	if got := maxAge(bus.StreamDeadLetters); got != 240*time.Hour {
		t.Errorf("after a restart without a setting, dead-letter max age = %v, want 240h kept", got)
	}

	// Only one of the two set: the other is left alone.
	if err := a.EnsureStreams(ctx, bus.StreamOptions{DeadLetterMaxAge: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if maxAge(bus.StreamReferrals) != 72*time.Hour || maxAge(bus.StreamDeadLetters) != 48*time.Hour {
		t.Errorf("max ages = %v / %v, want 72h / 48h", maxAge(bus.StreamReferrals), maxAge(bus.StreamDeadLetters))
	}

	if err := a.EnsureStreams(ctx, bus.StreamOptions{MaxAge: -time.Hour}); err == nil {
		t.Error("a negative max age was accepted")
	}
}
