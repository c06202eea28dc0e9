package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLeaseLost is the cause of the context handed to a lease holder's
// function when the connection that holds the lock is lost: another replica
// may already be running the same loop, so the function must stop.
var ErrLeaseLost = errors.New("lease lost")

// Lease defaults: how often the holder checks that its lock connection is
// alive, and how long a replica waits before reconnecting after an error.
const (
	DefaultLeaseCheckInterval = 5 * time.Second
	DefaultLeaseRetryInterval = 2 * time.Second
)

// Lease makes a loop (the reconciliation sweep, a poller, webhook
// registration) run on exactly one replica at a time. It holds a
// session-level Postgres advisory lock on a dedicated connection outside the
// pool: when the holder process dies its connection closes, Postgres drops
// the lock, and a replica waiting in Run takes over at once.
//
// The lock is per database and keyed by a 64-bit hash of the name, so names
// should be namespaced by service, e.g. "partnercenter-adapter/sweep".
// Because it is session-level it needs a direct connection (or session-mode
// PgBouncer), never transaction pooling.
type Lease struct {
	pool   *pgxpool.Pool
	name   string
	key    int64
	logger *slog.Logger
	check  time.Duration
	retry  time.Duration
}

// LeaseOption adjusts a Lease.
type LeaseOption func(*Lease)

// WithLeaseLogger logs acquisitions, losses and connection errors to l
// instead of discarding them.
func WithLeaseLogger(l *slog.Logger) LeaseOption {
	return func(le *Lease) { le.logger = l }
}

// WithLeaseCheckInterval sets how often the holder pings its lock connection;
// a shorter interval stops a holder that lost its connection sooner.
func WithLeaseCheckInterval(d time.Duration) LeaseOption {
	return func(le *Lease) {
		if d > 0 {
			le.check = d
		}
	}
}

// WithLeaseRetryInterval sets the pause before reconnecting after a
// connection error.
func WithLeaseRetryInterval(d time.Duration) LeaseOption {
	return func(le *Lease) {
		if d > 0 {
			le.retry = d
		}
	}
}

// NewLease returns a lease called name whose lock connections use pool's
// connection settings (but not its connections).
func NewLease(pool *pgxpool.Pool, name string, opts ...LeaseOption) *Lease {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name)) // hash.Hash writes never fail
	l := &Lease{
		pool:   pool,
		name:   name,
		key:    int64(h.Sum64()),
		logger: slog.New(slog.DiscardHandler),
		check:  DefaultLeaseCheckInterval,
		retry:  DefaultLeaseRetryInterval,
	}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// Key is the advisory lock key derived from the lease name, for operators
// looking at pg_locks (classid is its high 32 bits, objid its low 32 bits).
func (l *Lease) Key() int64 { return l.key }

// Run waits until this replica holds the lease, then runs fn with a context
// that is cancelled (with cause ErrLeaseLost) if the lock connection is lost
// or when ctx ends. If the lease is lost, Run waits to acquire it again and
// reruns fn. It returns when ctx is done (nil) or when fn returns while the
// lease is still held, releasing the lock first; fn's error is returned
// wrapped with the lease name.
func (l *Lease) Run(ctx context.Context, fn func(ctx context.Context) error) error {
	for {
		conn, err := l.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.logger.WarnContext(ctx, "lease: cannot acquire, retrying", "lease", l.name, "err", err)
			if !sleep(ctx, l.retry+rand.N(l.retry/2+1)) {
				return nil
			}
			continue
		}
		l.logger.InfoContext(ctx, "lease acquired", "lease", l.name)

		lost, fnErr := l.hold(ctx, conn, fn)
		if lost {
			l.logger.WarnContext(ctx, "lease lost", "lease", l.name)
			closeConn(conn)
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		l.release(ctx, conn)
		if fnErr != nil && ctx.Err() != nil && errors.Is(fnErr, context.Canceled) {
			// fn stopped because we are shutting down: a clean stop.
			return nil
		}
		if fnErr != nil {
			return fmt.Errorf("lease %s: %w", l.name, fnErr)
		}
		return nil
	}
}

// acquire opens a dedicated connection and blocks on pg_advisory_lock until
// the lock is granted or ctx ends.
func (l *Lease) acquire(ctx context.Context) (*pgx.Conn, error) {
	cfg := l.pool.Config().ConnConfig.Copy()
	// The lock wait and the liveness pings would only be noise in traces.
	cfg.Tracer = nil
	// Make the server notice a vanished holder (a partitioned node, not just
	// a dead process) within about half a minute instead of the OS default of
	// hours, so the lock does not outlive its holder for long.
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cfg.RuntimeParams["application_name"] = "lease:" + l.name

	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", l.key); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("wait for advisory lock: %w", err)
	}
	return conn, nil
}

// hold runs fn while pinging conn; it reports whether the lock connection
// was lost (in which case fn's context was cancelled and fn has returned).
func (l *Lease) hold(ctx context.Context, conn *pgx.Conn, fn func(ctx context.Context) error) (lost bool, err error) {
	fnCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	done := make(chan error, 1)
	go func() { done <- fn(fnCtx) }()

	ticker := time.NewTicker(l.check)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			return false, err
		case <-ticker.C:
			pctx, pcancel := context.WithTimeout(ctx, l.check)
			perr := conn.Ping(pctx)
			pcancel()
			if perr != nil && ctx.Err() == nil {
				cancel(ErrLeaseLost)
				<-done
				return true, nil
			}
		}
	}
}

// release unlocks and closes the lock connection. Closing alone would release
// the lock too; the explicit unlock makes the hand-over immediate even if the
// close is slow.
func (l *Lease) release(ctx context.Context, conn *pgx.Conn) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(rctx, "SELECT pg_advisory_unlock($1)", l.key); err != nil {
		l.logger.WarnContext(ctx, "lease: unlock failed, closing connection", "lease", l.name, "err", err)
	}
	if err := conn.Close(rctx); err != nil {
		l.logger.WarnContext(ctx, "lease: close lock connection", "lease", l.name, "err", err)
	}
	l.logger.InfoContext(ctx, "lease released", "lease", l.name)
}

// closeConn drops a connection whose state no longer matters; the error is
// uninteresting because the server releases the session's locks either way.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// sleep waits for d or until ctx ends, reporting whether the full wait
// elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
