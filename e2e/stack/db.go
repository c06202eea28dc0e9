package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// DB reads the services' tables of a running stack (tests assert on what
// the mapper and the adapters recorded). One connection, used serially.
type DB struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// OpenDB connects to the stack's database (Stack.DatabaseURL).
func OpenDB(ctx context.Context, dsn string) (*DB, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactDSN(dsn), err)
	}
	return &DB{conn: conn}, nil
}

// Close closes the connection.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.conn.Close(ctx)
}

// Int runs a query returning one integer (a count).
func (d *DB) Int(ctx context.Context, sql string, args ...any) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	err := d.conn.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// Link is the mapper's row for one referral (mapper.links).
type Link struct {
	ReferralID      string
	OpportunityID   string
	AccountID       string
	State           string // active, parked, ...
	ParkReason      string
	CommandID       string
	ResultCommandID string
	Replays         int
}

// Link returns the mapper's link of a referral, or nil when there is none.
func (d *DB) Link(ctx context.Context, referralID string) (*Link, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var l Link
	err := d.conn.QueryRow(ctx, `SELECT referral_id, opportunity_id, account_id, state, park_reason, command_id, result_command_id, replays
		FROM mapper.links WHERE referral_id = $1`, referralID).
		Scan(&l.ReferralID, &l.OpportunityID, &l.AccountID, &l.State, &l.ParkReason, &l.CommandID, &l.ResultCommandID, &l.Replays)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read link of %s: %w", referralID, err)
	}
	return &l, nil
}

// AuditEvent is one row of mapper.audit_events.
type AuditEvent struct {
	ID            int64
	ReferralID    string
	OpportunityID string
	Kind          string
	Message       string
	Details       map[string]any
	TraceID       string
	At            time.Time
}

// AuditEvents returns a referral's audit trail, oldest first.
func (d *DB) AuditEvents(ctx context.Context, referralID string) ([]AuditEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rows, err := d.conn.Query(ctx, `SELECT id, referral_id, opportunity_id, kind, message, details, trace_id, at
		FROM mapper.audit_events WHERE referral_id = $1 ORDER BY id`, referralID)
	if err != nil {
		return nil, fmt.Errorf("read audit of %s: %w", referralID, err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var a AuditEvent
		var details []byte
		if err := rows.Scan(&a.ID, &a.ReferralID, &a.OpportunityID, &a.Kind, &a.Message, &details, &a.TraceID, &a.At); err != nil {
			return nil, err
		}
		if len(details) > 0 {
			if err := json.Unmarshal(details, &a.Details); err != nil {
				return nil, fmt.Errorf("audit %d details: %w", a.ID, err)
			}
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeadLetter is one row of a service's dead_letters table.
type DeadLetter struct {
	ID         int64
	Consumer   string
	Subject    string
	MsgID      string
	Reason     string
	Permanent  bool
	ReplayedAt *time.Time
}

// MapperDeadLetters returns the mapper's dead letters for a referral, oldest first.
func (d *DB) MapperDeadLetters(ctx context.Context, referralID string) ([]DeadLetter, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rows, err := d.conn.Query(ctx, `SELECT id, consumer, subject, msg_id, reason, permanent, replayed_at
		FROM mapper.dead_letters WHERE referral_id = $1 ORDER BY id`, referralID)
	if err != nil {
		return nil, fmt.Errorf("read dead letters of %s: %w", referralID, err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var l DeadLetter
		if err := rows.Scan(&l.ID, &l.Consumer, &l.Subject, &l.MsgID, &l.Reason, &l.Permanent, &l.ReplayedAt); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Rows runs a query and returns every row as column name → value, for
// assertions on tables whose shape a test only partly cares about.
func (d *DB) Rows(ctx context.Context, sql string, args ...any) ([]map[string]any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rows, err := d.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		for i, f := range rows.FieldDescriptions() {
			m[f.Name] = vals[i]
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
