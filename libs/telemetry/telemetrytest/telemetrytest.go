// Package telemetrytest reads what a service's instruments recorded, for
// tests that assert on metrics.
package telemetrytest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// OutcomeCounts collects r and returns the series of the telemetry
// OutcomeCounter named name as "outcome" or "outcome/reason" → value. A
// series with labels beyond outcome and reason fails the test: nothing else
// (no error text) may reach them.
func OutcomeCounts(t testing.TB, r *sdkmetric.ManualReader, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("metric %s is a %T, not an int64 counter", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				outcome, _ := dp.Attributes.Value(attribute.Key("outcome"))
				key := outcome.AsString()
				if reason, ok := dp.Attributes.Value(attribute.Key("reason")); ok {
					key += "/" + reason.AsString()
				}
				if dp.Attributes.Len() > 2 {
					t.Errorf("series %v of %s has labels beyond outcome and reason", dp.Attributes.ToSlice(), name)
				}
				out[key] = dp.Value
			}
		}
	}
	return out
}
