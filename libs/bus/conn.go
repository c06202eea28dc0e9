package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names this package as the source of its spans and
// metrics.
const instrumentationName = "github.com/cosell/cosell/libs/bus"

// Conn is a connection to NATS with JetStream, the service's telemetry and
// its dead-letter sink. It is safe for concurrent use; a service holds one.
type Conn struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	service    string
	log        *slog.Logger
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	sink       DeadLetterSink
	metrics    metrics
	consumers  consumerStates
}

// Option configures Connect.
type Option func(*options)

type options struct {
	log        *slog.Logger
	tracerProv trace.TracerProvider
	meterProv  metric.MeterProvider
	propagator propagation.TextMapPropagator
	sink       DeadLetterSink
	natsOpts   []nats.Option
}

// WithLogger sets the logger for connection events and consumer decisions;
// the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTracerProvider sets where spans go; the default is the global provider
// that libs/telemetry installs.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProv = tp }
}

// WithMeterProvider sets where metrics go; the default is the global
// provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meterProv = mp }
}

// WithPropagator sets how trace context is written to and read from
// headers; the default is the global propagator.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.propagator = p }
}

// WithDeadLetterSink records every dead letter in s (for example a
// PgDeadLetterSink on the service's database) besides publishing it on the
// dead-letter subject, so operators can list and replay them.
func WithDeadLetterSink(s DeadLetterSink) Option { return func(o *options) { o.sink = s } }

// WithNATSOptions passes extra options to nats.Connect (credentials, TLS),
// applied after the package's own.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(o *options) { o.natsOpts = append(o.natsOpts, opts...) }
}

// Connect connects to the NATS server at url as the service name, and
// refuses a server older than MinServerVersion. name identifies the
// connection in server monitoring and names the service's dead-letter
// subject, so it must be a single subject token (letters, digits, '-',
// '_'). The connection reconnects forever: a broker outage must delay the
// pipeline, not stop it.
func Connect(ctx context.Context, url, name string, opts ...Option) (*Conn, error) {
	if !validToken(name) {
		return nil, fmt.Errorf("connect to nats: service name %q must be a single subject token", name)
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.tracerProv == nil {
		o.tracerProv = otel.GetTracerProvider()
	}
	if o.meterProv == nil {
		o.meterProv = otel.GetMeterProvider()
	}
	if o.propagator == nil {
		o.propagator = otel.GetTextMapPropagator()
		// Until telemetry installs one, the global propagator writes
		// nothing; traces must cross the bus whatever the start-up order,
		// so fall back to W3C trace context and baggage.
		if len(o.propagator.Fields()) == 0 {
			o.propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
		}
	}
	log := o.log.With("component", "bus")

	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	natsOpts := append([]nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("nats async error", "subject", subj, "err", err)
		}),
	}, o.natsOpts...)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", redactURL(url), err)
	}
	if err := CheckServerVersion(nc.ConnectedServerVersion()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to nats at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to nats: jetstream: %w", err)
	}
	m, err := newMetrics(o.meterProv.Meter(instrumentationName))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return &Conn{
		nc:         nc,
		js:         js,
		service:    name,
		log:        log,
		tracer:     o.tracerProv.Tracer(instrumentationName),
		propagator: o.propagator,
		sink:       o.sink,
		metrics:    m,
	}, nil
}

// redactURL hides credentials in a (comma-separated list of) NATS URL(s)
// for error messages.
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// Service returns the service name given to Connect.
func (c *Conn) Service() string { return c.service }

// NATS returns the underlying connection, for readiness checks and
// request/reply the bus does not wrap.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// JetStream returns the JetStream handle, for key-value leases and stream
// administration the bus does not wrap.
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// Ready returns nil when the connection is up, JetStream answers and every
// consumer run through Consume is fetching, for a /readyz endpoint.
func (c *Conn) Ready(ctx context.Context) error {
	if !c.nc.IsConnected() {
		return fmt.Errorf("nats: %w", nats.ErrConnectionClosed)
	}
	if _, err := c.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("nats: jetstream account info: %w", err)
	}
	if err := c.consumers.notReady(); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	return nil
}

// Drain flushes pending publishes and closes the connection, waiting at most
// until ctx is done. Call it after every Consume has returned.
func (c *Conn) Drain(ctx context.Context) error {
	closed := make(chan struct{})
	c.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := c.nc.Drain(); err != nil {
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("drain nats connection: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		c.nc.Close()
		return fmt.Errorf("drain nats connection: %w", ctx.Err())
	}
}

// Close closes the connection at once, dropping anything in flight.
func (c *Conn) Close() { c.nc.Close() }
