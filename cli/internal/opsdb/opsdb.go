// Package opsdb reads what operators need from the services' Postgres
// schemas: the mapper's links, audit log and parked syncs, every service's
// dead letters, and the partnercenter-adapter's sweep cursors. It writes
// a dead letter's replayed_at after the CLI replayed it, and deletes one
// customer's rows (with a purge record) for cosellctl purge.
package opsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound means no row matched.
var ErrNotFound = errors.New("not found")

// DB is a connection pool to the cosell database.
type DB struct {
	pool *pgxpool.Pool
	url  string
}

// Open connects to dsn and checks the connection, so an unreachable
// database is reported before any query.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database URL %q is not valid: %w", redact(dsn), err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres at %s: %w", redact(dsn), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres at %s is not reachable: %w", redact(dsn), err)
	}
	return &DB{pool: pool, url: redact(dsn)}, nil
}

// Close closes the pool.
func (d *DB) Close() { d.pool.Close() }

// redact hides a password in a DSN.
func redact(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return kvPassword.ReplaceAllString(dsn, "${1}***")
	}
	at := strings.LastIndexByte(dsn, '@')
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return dsn[:scheme+3] + user + ":***" + dsn[at:]
	}
	return dsn
}

// kvPassword finds the password of a key/value DSN.
var kvPassword = regexp.MustCompile(`(password\s*=\s*)('[^']*'|\S+)`)

// Link is a mapper link as operators see it.
type Link struct {
	ReferralID       string          `json:"referralId"`
	EngagementID     string          `json:"engagementId,omitempty"`
	OpportunityID    string          `json:"opportunityId,omitempty"`
	AccountID        string          `json:"accountId,omitempty"`
	State            string          `json:"state"`
	ParkReason       string          `json:"parkReason,omitempty"`
	PCUpdatedAt      *time.Time      `json:"partnerCenterUpdatedAt,omitempty"`
	PCETag           string          `json:"partnerCenterETag,omitempty"`
	LastCommandID    string          `json:"lastCommandId,omitempty"`
	LastResultID     string          `json:"lastResultCommandId,omitempty"`
	Replays          int             `json:"replays"`
	CreatedAt        time.Time       `json:"createdAt"`
	UpdatedAt        time.Time       `json:"updatedAt"`
	LastWritten      json.RawMessage `json:"lastWrittenProjection,omitempty"`
	PendingDeadLetts int             `json:"pendingDeadLetters"`
	// Snapshot is the newest accepted ReferralObserved (protobuf), for a
	// dry-run when the partnercenter-adapter cannot be asked.
	Snapshot []byte `json:"-"`
}

const linkColumns = `l.referral_id, l.engagement_id, l.opportunity_id, l.account_id, l.state, l.park_reason,
	l.pc_updated_at, l.pc_etag, l.command_id, l.result_command_id, l.replays, l.created_at, l.updated_at,
	l.sf_projection, l.snapshot,
	(SELECT count(*) FROM mapper.dead_letters d WHERE d.referral_id = l.referral_id AND d.replayed_at IS NULL)`

func scanLink(row pgx.Row) (Link, error) {
	var (
		l    Link
		ref  *string
		proj []byte
		dls  int64
	)
	err := row.Scan(&ref, &l.EngagementID, &l.OpportunityID, &l.AccountID, &l.State, &l.ParkReason,
		&l.PCUpdatedAt, &l.PCETag, &l.LastCommandID, &l.LastResultID, &l.Replays, &l.CreatedAt, &l.UpdatedAt,
		&proj, &l.Snapshot, &dls)
	if ref != nil {
		l.ReferralID = *ref
	}
	if len(proj) > 0 {
		l.LastWritten = proj
	}
	l.PendingDeadLetts = int(dls)
	return l, err
}

// LinkFilter narrows ListLinks.
type LinkFilter struct {
	// State keeps links in this state ("" = all).
	State string
	// Limit bounds the rows (default 50).
	Limit int
}

// ListLinks returns links, most recently updated first.
func (d *DB) ListLinks(ctx context.Context, f LinkFilter) ([]Link, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	rows, err := d.pool.Query(ctx, `SELECT `+linkColumns+` FROM mapper.links l
		WHERE ($1 = '' OR l.state = $1) ORDER BY l.updated_at DESC, l.id DESC LIMIT $2`, f.State, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Link, error) { return scanLink(r) })
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return out, nil
}

// FindLink returns the link of a referral id or an opportunity id.
func (d *DB) FindLink(ctx context.Context, id string) (Link, error) {
	l, err := scanLink(d.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM mapper.links l
		WHERE l.referral_id = $1 OR (l.opportunity_id = $1 AND l.opportunity_id <> '')
		ORDER BY (l.referral_id = $1) DESC NULLS LAST, l.updated_at DESC LIMIT 1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Link{}, fmt.Errorf("no link for referral or opportunity %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Link{}, fmt.Errorf("find link %q: %w", id, err)
	}
	return l, nil
}

// AuditEvent is one line of a referral's timeline.
type AuditEvent struct {
	At            time.Time      `json:"at"`
	ReferralID    string         `json:"referralId,omitempty"`
	OpportunityID string         `json:"opportunityId,omitempty"`
	Kind          string         `json:"kind"`
	Message       string         `json:"message"`
	Details       map[string]any `json:"details,omitempty"`
	TraceID       string         `json:"traceId,omitempty"`
}

// Audit returns the timeline of a referral or opportunity id, oldest
// first, at most limit events (the newest ones when there are more).
func (d *DB) Audit(ctx context.Context, id string, limit int) ([]AuditEvent, error) {
	if limit <= 0 {
		limit = 200
	}
	rows, err := d.pool.Query(ctx, `SELECT at, referral_id, opportunity_id, kind, message, details, trace_id FROM (
		SELECT a.id, a.at, a.referral_id, a.opportunity_id, a.kind, a.message, a.details, a.trace_id
		FROM mapper.audit_events a
		WHERE a.referral_id = $1 OR a.opportunity_id = $1
		   OR a.referral_id IN (SELECT l.referral_id FROM mapper.links l WHERE l.opportunity_id = $1 AND l.opportunity_id <> '')
		ORDER BY a.at DESC, a.id DESC LIMIT $2) t ORDER BY at, id`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit of %q: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEvent, error) {
		var (
			e       AuditEvent
			details []byte
		)
		if err := r.Scan(&e.At, &e.ReferralID, &e.OpportunityID, &e.Kind, &e.Message, &details, &e.TraceID); err != nil {
			return e, err
		}
		if len(details) > 0 {
			if err := json.Unmarshal(details, &e.Details); err != nil {
				return e, fmt.Errorf("details: %w", err)
			}
			if len(e.Details) == 0 {
				e.Details = nil
			}
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit of %q: %w", id, err)
	}
	return out, nil
}

// Schemas maps each service that keeps a dead_letters table to its schema.
var Schemas = map[string]string{
	"mapper":                "mapper",
	"partnercenter-adapter": "partnercenter_adapter",
	"salesforce-adapter":    "salesforce_adapter",
}

// ServiceNames lists the services with a dead_letters table, in a stable order.
func ServiceNames() []string {
	return []string{"mapper", "partnercenter-adapter", "salesforce-adapter"}
}

// DeadLetter is a row of a service's dead_letters table.
type DeadLetter struct {
	// Ref is "<service>:<id>", what show and replay take.
	Ref        string              `json:"ref"`
	Service    string              `json:"service"`
	ID         int64               `json:"id"`
	Consumer   string              `json:"consumer"`
	Stream     string              `json:"stream"`
	StreamSeq  uint64              `json:"streamSeq"`
	Subject    string              `json:"subject"`
	MsgID      string              `json:"msgId,omitempty"`
	Deliveries int                 `json:"deliveries"`
	Reason     string              `json:"reason"`
	Permanent  bool                `json:"permanent"`
	Headers    map[string][]string `json:"headers,omitempty"`
	Payload    []byte              `json:"payload,omitempty"`
	TraceID    string              `json:"traceId,omitempty"`
	FailedAt   time.Time           `json:"failedAt"`
	ReplayedAt *time.Time          `json:"replayedAt,omitempty"`
	// ReferralID is set on the mapper's parked syncs: a replay of those
	// goes through the mapper's link replay.
	ReferralID string `json:"referralId,omitempty"`
}

// ParseRef splits "<service>:<id>".
func ParseRef(ref string) (service string, id int64, err error) {
	service, num, ok := strings.Cut(ref, ":")
	if !ok {
		return "", 0, fmt.Errorf("dead letter %q: want <service>:<id>, e.g. mapper:12", ref)
	}
	if _, known := Schemas[service]; !known {
		return "", 0, fmt.Errorf("dead letter %q: unknown service %q (one of %s)", ref, service, strings.Join(ServiceNames(), ", "))
	}
	id, err = strconv.ParseInt(num, 10, 64)
	if err != nil || id <= 0 {
		return "", 0, fmt.Errorf("dead letter %q: %q is not a row id", ref, num)
	}
	return service, id, nil
}

func dlQuery(schema string) string {
	ref := "NULL::text"
	if schema == "mapper" {
		ref = "referral_id"
	}
	return `SELECT id, consumer, stream, stream_seq, subject, msg_id, deliveries, reason, permanent, headers,
		payload, trace_id, failed_at, replayed_at, ` + ref + ` FROM ` + schema + `.dead_letters`
}

func scanDeadLetter(service string, r pgx.Row) (DeadLetter, error) {
	var (
		dl      DeadLetter
		seq     int64
		headers []byte
		ref     *string
	)
	if err := r.Scan(&dl.ID, &dl.Consumer, &dl.Stream, &seq, &dl.Subject, &dl.MsgID, &dl.Deliveries, &dl.Reason,
		&dl.Permanent, &headers, &dl.Payload, &dl.TraceID, &dl.FailedAt, &dl.ReplayedAt, &ref); err != nil {
		return dl, err
	}
	dl.Service, dl.StreamSeq = service, uint64(seq)
	dl.Ref = fmt.Sprintf("%s:%d", service, dl.ID)
	if ref != nil {
		dl.ReferralID = *ref
	}
	if len(headers) > 0 {
		if err := json.Unmarshal(headers, &dl.Headers); err != nil {
			return dl, fmt.Errorf("headers of dead letter %s: %w", dl.Ref, err)
		}
	}
	return dl, nil
}

// DeadLetterFilter narrows ListDeadLetters.
type DeadLetterFilter struct {
	// Service keeps one service's ("" = every service).
	Service string
	// All includes replayed ones.
	All bool
	// Limit bounds the rows per service (default 100).
	Limit int
}

// ListDeadLetters returns dead letters of every (or one) service, oldest first.
func (d *DB) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []DeadLetter
	for _, svc := range ServiceNames() {
		if f.Service != "" && f.Service != svc {
			continue
		}
		rows, err := d.pool.Query(ctx, dlQuery(Schemas[svc])+` WHERE ($1 OR replayed_at IS NULL) ORDER BY failed_at, id LIMIT $2`, f.All, f.Limit)
		if err != nil {
			return nil, fmt.Errorf("list dead letters of %s: %w", svc, err)
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) { return scanDeadLetter(svc, r) })
		if err != nil {
			return nil, fmt.Errorf("list dead letters of %s: %w", svc, err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// PendingDeadLetters counts the dead letters not yet replayed, per service.
func (d *DB) PendingDeadLetters(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, svc := range ServiceNames() {
		var n int64
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM `+Schemas[svc]+`.dead_letters WHERE replayed_at IS NULL`).Scan(&n); err != nil {
			return nil, fmt.Errorf("count dead letters of %s: %w", svc, err)
		}
		out[svc] = n
	}
	return out, nil
}

// GetDeadLetter returns one dead letter by its ref.
func (d *DB) GetDeadLetter(ctx context.Context, ref string) (DeadLetter, error) {
	svc, id, err := ParseRef(ref)
	if err != nil {
		return DeadLetter{}, err
	}
	dl, err := scanDeadLetter(svc, d.pool.QueryRow(ctx, dlQuery(Schemas[svc])+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return DeadLetter{}, fmt.Errorf("dead letter %s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("read dead letter %s: %w", ref, err)
	}
	return dl, nil
}

// MarkReplayed sets a dead letter's replayed_at; it reports whether the
// row was still pending.
func (d *DB) MarkReplayed(ctx context.Context, ref string) (bool, error) {
	svc, id, err := ParseRef(ref)
	if err != nil {
		return false, err
	}
	tag, err := d.pool.Exec(ctx, `UPDATE `+Schemas[svc]+`.dead_letters SET replayed_at = now() WHERE id = $1 AND replayed_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("mark dead letter %s replayed: %w", ref, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Cursor is one of the partnercenter-adapter's loops (sweep, backfill).
type Cursor struct {
	Name           string     `json:"name"`
	Watermark      *time.Time `json:"watermark,omitempty"`
	LastStartedAt  *time.Time `json:"lastStartedAt,omitempty"`
	LastFinishedAt *time.Time `json:"lastFinishedAt,omitempty"`
	LastOutcome    string     `json:"lastOutcome,omitempty"`
	LastError      string     `json:"lastError,omitempty"`
	LastSeen       int        `json:"lastSeen"`
	LastPublished  int        `json:"lastPublished"`
}

// Cursors returns the partnercenter-adapter's sweep and backfill cursors.
func (d *DB) Cursors(ctx context.Context) ([]Cursor, error) {
	rows, err := d.pool.Query(ctx, `SELECT name, watermark, last_started_at, last_finished_at, last_outcome, last_error,
		last_seen, last_published FROM partnercenter_adapter.cursors ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read sweep cursors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Cursor, error) {
		var c Cursor
		err := r.Scan(&c.Name, &c.Watermark, &c.LastStartedAt, &c.LastFinishedAt, &c.LastOutcome, &c.LastError, &c.LastSeen, &c.LastPublished)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read sweep cursors: %w", err)
	}
	return out, nil
}
