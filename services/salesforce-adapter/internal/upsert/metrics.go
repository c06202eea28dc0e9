package upsert

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics are the batcher's instruments.
type metrics struct {
	batches     metric.Int64Histogram
	outcomes    metric.Int64Counter
	lockRetries metric.Int64Counter
	readBacks   metric.Int64Counter
}

// newMetrics creates the instruments on m; an instrument that cannot be
// created (a misconfigured SDK) falls back to a no-op one rather than
// stopping the service, and the SDK reports the error itself.
func newMetrics(m metric.Meter) metrics {
	nop := noop.NewMeterProvider().Meter("")
	out := metrics{}
	var err error
	if out.batches, err = m.Int64Histogram("cosell.salesforce.upsert.batch_size",
		metric.WithDescription("Distinct referrals per sObject Collections upsert call."),
		metric.WithUnit("{record}"),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 100, 150, 200)); err != nil {
		out.batches, _ = nop.Int64Histogram("")
	}
	if out.outcomes, err = m.Int64Counter("cosell.salesforce.upsert.outcomes",
		metric.WithDescription("Upsert commands decided, by outcome (ok, rejected, failed, retry_later)."),
		metric.WithUnit("{command}")); err != nil {
		out.outcomes, _ = nop.Int64Counter("")
	}
	if out.lockRetries, err = m.Int64Counter("cosell.salesforce.upsert.lock_retries",
		metric.WithDescription("Records sent again after UNABLE_TO_LOCK_ROW."),
		metric.WithUnit("{record}")); err != nil {
		out.lockRetries, _ = nop.Int64Counter("")
	}
	if out.readBacks, err = m.Int64Counter("cosell.salesforce.upsert.read_backs",
		metric.WithDescription("Writes whose records were read back in the same call, by outcome (ok, failed); a failed read-back leaves them to the poller."),
		metric.WithUnit("{call}")); err != nil {
		out.readBacks, _ = nop.Int64Counter("")
	}
	return out
}
