package telemetry_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/cosell/cosell/libs/telemetry"
	"github.com/cosell/cosell/libs/telemetry/telemetrytest"
)

func TestOutcomeCounterStartsAtZeroAndClassifies(t *testing.T) {
	r := sdkmetric.NewManualReader()
	m := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)).Meter("test")
	c, err := telemetry.NewOutcomeCounter(m, "test.fetches", "fetches", "{fetch}", []string{"refused", "down"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"ok": 0, "canceled": 0, "error/refused": 0, "error/down": 0}
	if got := telemetrytest.OutcomeCounts(t, r, "test.fetches"); !maps.Equal(got, want) {
		t.Fatalf("at start: %v, want %v", got, want)
	}

	ctx := context.Background()
	c.Record(ctx, nil, "")
	c.Record(ctx, nil, "ignored when there is no error")
	c.Record(ctx, errors.New("connection refused"), "down")
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	c.Record(canceled, context.Canceled, "down")
	want = map[string]int64{"ok": 2, "canceled": 1, "error/refused": 0, "error/down": 1}
	if got := telemetrytest.OutcomeCounts(t, r, "test.fetches"); !maps.Equal(got, want) {
		t.Errorf("after recording: %v, want %v", got, want)
	}

	var none *telemetry.OutcomeCounter
	none.Record(ctx, errors.New("x"), "down") // counts nothing, and does not panic
}
