// Package bus is cosell's only way onto NATS JetStream. It exists so that
// every service gets the same guarantees without re-deriving them:
//
//   - Connect refuses servers older than 2.10, whose JetStream lacks the
//     features the pipeline relies on (multi-filter consumers, TermWithReason).
//   - Streams and durable pull consumers are declared in code and created
//     idempotently at start-up, so a fresh broker needs no manual setup.
//   - Publish sets Nats-Msg-Id for broker-side de-duplication, carries the
//     OpenTelemetry context in lowercase traceparent/tracestate headers and
//     returns only after JetStream acknowledged the message as stored.
//   - Consume runs a bounded number of handlers, acknowledges a message only
//     after its handler returned nil (so a handler commits to Postgres first),
//     retries failures with bounded exponential backoff and, after a bounded
//     number of deliveries or on a Permanent error, parks the message on a
//     dead-letter subject and in a DeadLetterSink with the reason.
//
// Subjects are versioned (for example referral.observed.v1); a breaking
// payload change gets a new subject, so producers and consumers can be
// upgraded independently.
package bus
