package bus

import (
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// metrics are the bus's instruments, created once per Conn from the meter
// provider given to Connect.
type metrics struct {
	published    metric.Int64Counter
	consumed     metric.Int64Counter
	failed       metric.Int64Counter
	deadLettered metric.Int64Counter
	duration     metric.Float64Histogram
	// consumerRestarts counts consumer sessions re-established after
	// JetStream trouble.
	consumerRestarts metric.Int64Counter
}

func newMetrics(m metric.Meter) (metrics, error) {
	var (
		out  metrics
		errs [6]error
	)
	out.published, errs[0] = m.Int64Counter("cosell.bus.messages.published",
		metric.WithDescription("Messages published and acknowledged by JetStream."),
		metric.WithUnit("{message}"))
	out.consumed, errs[1] = m.Int64Counter("cosell.bus.messages.consumed",
		metric.WithDescription("Messages whose handler succeeded and that were acknowledged."),
		metric.WithUnit("{message}"))
	out.failed, errs[2] = m.Int64Counter("cosell.bus.messages.failed",
		metric.WithDescription("Handler failures; each is retried later or dead-lettered."),
		metric.WithUnit("{message}"))
	out.deadLettered, errs[3] = m.Int64Counter("cosell.bus.messages.dead_lettered",
		metric.WithDescription("Messages given up on and parked as dead letters."),
		metric.WithUnit("{message}"))
	out.duration, errs[4] = m.Float64Histogram("cosell.bus.handler.duration",
		metric.WithDescription("Time a handler took to process one message."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	out.consumerRestarts, errs[5] = m.Int64Counter("cosell.bus.consumer.restarts",
		metric.WithDescription("Consumer sessions re-established after JetStream trouble (timeouts, consumer deleted)."),
		metric.WithUnit("{restart}"))
	for _, err := range errs {
		if err != nil {
			return metrics{}, fmt.Errorf("create bus metrics: %w", err)
		}
	}
	return out, nil
}
