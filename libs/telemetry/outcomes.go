package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Outcomes an OutcomeCounter counts under its "outcome" label.
const (
	OutcomeOK       = "ok"
	OutcomeError    = "error"
	OutcomeCanceled = "canceled"
)

// OutcomeCounter counts attempts of one operation (a token fetch, say) by
// outcome: "ok", "canceled" (the caller gave up, e.g. at shutdown) or
// "error" with a reason from a fixed set, so no error text can reach a
// label. Every series exists at zero from the start: an alert rule over
// it evaluates to 0 before the first failure instead of to nothing.
type OutcomeCounter struct {
	counter metric.Int64Counter
}

// The counter's label keys.
const (
	attrOutcome = attribute.Key("outcome")
	attrReason  = attribute.Key("reason")
)

// NewOutcomeCounter creates the counter name on m with every outcome, and
// every one of reasons for errors, at zero.
func NewOutcomeCounter(m metric.Meter, name, description, unit string, reasons []string) (*OutcomeCounter, error) {
	c, err := m.Int64Counter(name, metric.WithDescription(description), metric.WithUnit(unit))
	if err != nil {
		return nil, fmt.Errorf("telemetry: counter %s: %w", name, err)
	}
	ctx := context.Background()
	c.Add(ctx, 0, metric.WithAttributes(attrOutcome.String(OutcomeOK)))
	c.Add(ctx, 0, metric.WithAttributes(attrOutcome.String(OutcomeCanceled)))
	for _, r := range reasons {
		c.Add(ctx, 0, metric.WithAttributes(attrOutcome.String(OutcomeError), attrReason.String(r)))
	}
	return &OutcomeCounter{counter: c}, nil
}

// Record counts one attempt: ok when err is nil, canceled when ctx is done,
// otherwise an error under reason. A nil OutcomeCounter counts nothing.
func (o *OutcomeCounter) Record(ctx context.Context, err error, reason string) {
	if o == nil {
		return
	}
	attrs := []attribute.KeyValue{attrOutcome.String(OutcomeOK)}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		attrs = []attribute.KeyValue{attrOutcome.String(OutcomeCanceled)}
	default:
		attrs = []attribute.KeyValue{attrOutcome.String(OutcomeError), attrReason.String(reason)}
	}
	o.counter.Add(ctx, 1, metric.WithAttributes(attrs...))
}
