// Package linkstore keeps the mapper's state in Postgres: the links between
// referrals and opportunities, the append-only audit log and the parked
// syncs in dead_letters. Every function takes the caller's transaction, so a
// message's inbox row, link change and audit rows commit together.
package linkstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cosell/cosell/libs/store"
)

// InboxTable is the mapper's inbox, for store.MarkProcessed.
const InboxTable = "mapper.inbox"

// State is where a link is in its life.
type State string

// The states of a link.
const (
	// StateActive links apply every newer snapshot.
	StateActive State = "active"
	// StateParked links record later snapshots but send nothing until an
	// operator replays them.
	StateParked State = "parked"
	// StateStopped links belong to an opportunity whose seller unticked the
	// sync checkbox: observations are recorded, nothing is sent, until it
	// is ticked again.
	StateStopped State = "stopped"
	// StateOrphaned links lost their opportunity (deleted in Salesforce);
	// the referral is never deleted, nothing is sent any more.
	StateOrphaned State = "orphaned"
	// StateInvalid links are opted-in opportunities that failed the checks
	// before a create: nothing was sent; the next change is checked again.
	StateInvalid State = "invalid"
)

// Origin says which side a link started from.
type Origin string

// The origins.
const (
	// OriginInbound links started from a referral (an opportunity was
	// created by upsert).
	OriginInbound Origin = "inbound"
	// OriginOutbound links started from an opted-in opportunity (a
	// referral was created).
	OriginOutbound Origin = "outbound"
)

// Link is one referral ↔ opportunity pair as stored.
type Link struct {
	ID int64
	// ReferralID is empty while an outbound link's create is outstanding.
	ReferralID    string
	EngagementID  string
	OpportunityID string
	AccountID     string
	State         State
	ParkReason    string
	// PCUpdatedAt is the newest accepted snapshot's updatedDateTime (nil
	// before the first), PCETag its eTag.
	PCUpdatedAt *time.Time
	PCETag      string
	// Snapshot is the newest accepted snapshot (a marshalled
	// ReferralObserved). Lock does not read it; set it to write it.
	Snapshot []byte
	// ProjectionHash and Projection describe what was last written to
	// Salesforce.
	ProjectionHash string
	Projection     []byte
	// CommandID, Command and CommandUpdatedAt are the last command sent and
	// the snapshot it came from; ResultCommandID is the last command whose
	// result arrived.
	CommandID        string
	Command          []byte
	CommandUpdatedAt *time.Time
	ResultCommandID  string
	// CommandSubject is the subject CommandID went to (upsert or
	// write-back).
	CommandSubject string
	Replays        int
	// Origin says which side the link started from.
	Origin Origin
	// SFModstamp is the newest accepted opportunity observation's
	// SystemModstamp; SFRecord its record (JSON), written when set.
	SFModstamp *time.Time
	SFRecord   []byte
	// Sync is the two-way state (JSON of twoway.State).
	Sync []byte
	// PCCommandID and PCCommand are the last Partner Center command;
	// PCResultCommandID the last whose result arrived;
	// PCRejectedCommandID the last Partner Center refused.
	PCCommandID         string
	PCCommand           []byte
	PCResultCommandID   string
	PCRejectedCommandID string
	// CreateAttempt numbers the creates sent (a refused one is retried
	// under a new id).
	CreateAttempt int
	// InvalidHash identifies the last validation failure written back.
	InvalidHash string
	// RelatedReferralID and RelatedUpdatedAt are Microsoft's referral of
	// the engagement and its newest accepted updatedDateTime.
	RelatedReferralID string
	RelatedUpdatedAt  *time.Time
	// Created is true when Lock inserted the row.
	Created bool

	// stored holds the large columns as read, so Save leaves those the
	// caller did not change alone: rewriting an unchanged snapshot or
	// record would compress and TOAST it again for nothing.
	stored storedBlobs
}

// storedBlobs are a link's large columns as read (nil: NULL, or not
// read).
type storedBlobs struct {
	snapshot, record, sync, projection, command, pcCommand []byte
}

// PCPending reports whether the last Partner Center command has no result
// yet.
func (l *Link) PCPending() bool { return l.PCCommandID != "" && l.PCResultCommandID != l.PCCommandID }

// Audit is one audit log entry.
type Audit struct {
	ReferralID    string
	OpportunityID string
	Kind          string
	Message       string
	Details       map[string]any
	TraceID       string
	// Seller marks entries a seller should read: they make up the
	// opportunity's Audit field.
	Seller bool
}

const linkColumns = `id, coalesce(referral_id, ''), engagement_id, opportunity_id, account_id, state, park_reason,
	pc_updated_at, pc_etag, sf_projection_hash, sf_projection, command_id, command, command_updated_at,
	result_command_id, replays, origin, sf_modstamp, sync, command_subject, pc_command_id, pc_command,
	pc_result_command_id, pc_rejected_command_id, create_attempt, invalid_hash, related_referral_id, related_updated_at`

func scanLink(row pgx.Row, extra ...any) (*Link, error) {
	l := &Link{}
	var state, origin string
	dest := append([]any{&l.ID, &l.ReferralID, &l.EngagementID, &l.OpportunityID, &l.AccountID, &state, &l.ParkReason,
		&l.PCUpdatedAt, &l.PCETag, &l.ProjectionHash, &l.Projection, &l.CommandID, &l.Command, &l.CommandUpdatedAt,
		&l.ResultCommandID, &l.Replays, &origin, &l.SFModstamp, &l.Sync, &l.CommandSubject, &l.PCCommandID, &l.PCCommand,
		&l.PCResultCommandID, &l.PCRejectedCommandID, &l.CreateAttempt, &l.InvalidHash, &l.RelatedReferralID, &l.RelatedUpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	l.State, l.Origin = State(state), Origin(origin)
	l.stored.sync, l.stored.projection, l.stored.command, l.stored.pcCommand = l.Sync, l.Projection, l.Command, l.PCCommand
	return l, nil
}

// scanFull scans a row of linkColumns followed by snapshot and sf_record.
func scanFull(row pgx.Row) (*Link, error) {
	var snapshot, record []byte
	l, err := scanLink(row, &snapshot, &record)
	if err != nil {
		return nil, err
	}
	return l.withBlobs(snapshot, record), nil
}

// withBlobs records the snapshot and record read with l.
func (l *Link) withBlobs(snapshot, record []byte) *Link {
	l.Snapshot, l.SFRecord = snapshot, record
	l.stored.snapshot, l.stored.record = snapshot, record
	return l
}

// Lock finds the referral's link, creating it when absent, and locks it
// until tx ends: concurrent deliveries for one referral, on any replica,
// wait here and then see each other's effects. It takes one round trip.
func Lock(ctx context.Context, tx pgx.Tx, referralID, engagementID string) (*Link, error) {
	row := tx.QueryRow(ctx, `INSERT INTO mapper.links AS l (referral_id, engagement_id) VALUES ($1, $2)
		ON CONFLICT (referral_id) DO UPDATE
		SET engagement_id = CASE WHEN l.engagement_id = '' THEN EXCLUDED.engagement_id ELSE l.engagement_id END
		RETURNING `+linkColumns+`, (xmax = 0)`, referralID, engagementID)
	var created bool
	l, err := scanLink(row, &created)
	if err != nil {
		return nil, fmt.Errorf("lock link of referral %s: %w", referralID, store.MapError(err))
	}
	l.Created = created
	return l, nil
}

// LockExisting locks the referral's link without creating one; it returns
// store.ErrNotFound when there is none.
func LockExisting(ctx context.Context, tx pgx.Tx, referralID string) (*Link, error) {
	row := tx.QueryRow(ctx, `SELECT `+linkColumns+` FROM mapper.links WHERE referral_id = $1 FOR UPDATE`, referralID)
	l, err := scanLink(row)
	if err != nil {
		return nil, fmt.Errorf("lock link of referral %s: %w", referralID, store.MapError(err))
	}
	return l, nil
}

// RowQuerier reads one row; a pool or a transaction.
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Get reads a link, its snapshot and its opportunity record without
// locking, for operators.
func Get(ctx context.Context, db RowQuerier, referralID string) (*Link, error) {
	return getWhere(ctx, db, "referral_id = $1", referralID)
}

// GetByOpportunity is Get by opportunity id.
func GetByOpportunity(ctx context.Context, db RowQuerier, opportunityID string) (*Link, error) {
	return getWhere(ctx, db, "opportunity_id = $1 AND opportunity_id <> ''", opportunityID)
}

func getWhere(ctx context.Context, db RowQuerier, where, id string) (*Link, error) {
	l, err := scanFull(db.QueryRow(ctx, `SELECT `+linkColumns+`, snapshot, sf_record FROM mapper.links WHERE `+where, id))
	if err != nil {
		return nil, fmt.Errorf("get link of %s: %w", id, store.MapError(err))
	}
	return l, nil
}

// LockWithSnapshot is LockExisting that also reads the stored snapshot
// and opportunity record, for a replay or a re-decision.
func LockWithSnapshot(ctx context.Context, tx pgx.Tx, referralID string) (*Link, error) {
	return lockFull(ctx, tx, "referral_id = $1", referralID)
}

// LockFullByOpportunity locks the opportunity's link and reads its
// snapshot and record; store.ErrNotFound when there is none.
func LockFullByOpportunity(ctx context.Context, tx pgx.Tx, opportunityID string) (*Link, error) {
	return lockFull(ctx, tx, "opportunity_id = $1 AND opportunity_id <> ''", opportunityID)
}

func lockFull(ctx context.Context, tx pgx.Tx, where, id string) (*Link, error) {
	l, err := scanFull(tx.QueryRow(ctx, `SELECT `+linkColumns+`, snapshot, sf_record FROM mapper.links WHERE `+where+` FOR UPDATE`, id))
	if err != nil {
		return nil, fmt.Errorf("lock link of %s: %w", id, store.MapError(err))
	}
	return l, nil
}

// MarkAndLock records consumer's message msgID in the inbox (as
// store.MarkProcessed) and locks the referral's link (as LockExisting, or
// LockWithSnapshot with blobs) in one round trip: every handler starts
// with both, and a round trip costs both processes a write and a wake-up.
// A duplicate message locks the link too; the caller decides what to do
// with it. No link gives first and an error IsNotFound recognises.
func MarkAndLock(ctx context.Context, tx pgx.Tx, consumer, msgID, referralID string, blobs bool) (first bool, link *Link, err error) {
	first, link, _, err = markAndLock(ctx, tx, consumer, msgID, "referral_id = $1", referralID, blobs, "")
	return first, link, err
}

// MarkAndLockRelated is MarkAndLock with blobs for Microsoft's referral of
// an engagement: the same round trip also locks the engagement's partner
// link, as LockByEngagement does, which the caller needs when the
// referral has no link of its own (the usual case). partner is nil when
// the engagement has no other link.
func MarkAndLockRelated(ctx context.Context, tx pgx.Tx, consumer, msgID, referralID, engagementID string) (first bool, link, partner *Link, err error) {
	return markAndLock(ctx, tx, consumer, msgID, "referral_id = $1", referralID, true, engagementID)
}

// MarkAndLockByOpportunity is MarkAndLock for the opportunity's link, as
// LockFullByOpportunity reads it.
func MarkAndLockByOpportunity(ctx context.Context, tx pgx.Tx, consumer, msgID, opportunityID string) (first bool, link *Link, err error) {
	first, link, _, err = markAndLock(ctx, tx, consumer, msgID, "opportunity_id = $1 AND opportunity_id <> ''", opportunityID, true, "")
	return first, link, err
}

// markAndLock queues the inbox insert, the lock of the link matching where
// and, with an engagement id, the lock of that engagement's other link.
func markAndLock(ctx context.Context, tx pgx.Tx, consumer, msgID, where, id string, blobs bool, engagementID string) (first bool, link, partner *Link, err error) {
	b := &pgx.Batch{}
	if err := store.QueueMarkProcessed(b, InboxTable, consumer, msgID); err != nil {
		return false, nil, nil, err
	}
	cols := linkColumns
	if blobs {
		cols += ", snapshot, sf_record"
	}
	b.Queue(`SELECT `+cols+` FROM mapper.links WHERE `+where+` FOR UPDATE`, id)
	if engagementID != "" {
		b.Queue(lockByEngagementSQL, engagementID, id)
	}
	br := tx.SendBatch(ctx, b)
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			first, link, partner, err = false, nil, nil, fmt.Errorf("lock link of %s: %w", id, store.MapError(cerr))
		}
	}()
	if first, err = store.MarkedResult(br); err != nil {
		return false, nil, nil, err
	}
	if blobs {
		link, err = scanFull(br.QueryRow())
	} else {
		link, err = scanLink(br.QueryRow())
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return first, nil, nil, fmt.Errorf("lock link of %s: %w", id, store.MapError(err))
	}
	ownErr := err
	if engagementID != "" {
		if partner, err = scanFull(br.QueryRow()); errors.Is(err, pgx.ErrNoRows) {
			partner = nil
		} else if err != nil {
			return first, nil, nil, fmt.Errorf("lock link of engagement %s: %w", engagementID, store.MapError(err))
		}
	}
	if ownErr != nil {
		return first, nil, partner, fmt.Errorf("lock link of %s: %w", id, store.MapError(ownErr))
	}
	return first, link, partner, nil
}

// CreateOutbound finds the opportunity's link, creating an outbound one
// (no referral yet) when absent, and locks it with its snapshot and
// record. Two replicas creating it at once end up with the same row.
func CreateOutbound(ctx context.Context, tx pgx.Tx, opportunityID string) (*Link, error) {
	var created bool
	row := tx.QueryRow(ctx, `INSERT INTO mapper.links AS l (opportunity_id, origin) VALUES ($1, 'outbound')
		ON CONFLICT (opportunity_id) WHERE opportunity_id <> '' DO UPDATE SET opportunity_id = EXCLUDED.opportunity_id
		RETURNING `+linkColumns+`, snapshot, sf_record, (xmax = 0)`, opportunityID)
	var snapshot, record []byte
	l, err := scanLink(row, &snapshot, &record, &created)
	if err != nil {
		return nil, fmt.Errorf("create link of opportunity %s: %w", opportunityID, store.MapError(err))
	}
	l.Created = created
	return l.withBlobs(snapshot, record), nil
}

const lockByEngagementSQL = `SELECT ` + linkColumns + `, snapshot, sf_record FROM mapper.links
		WHERE engagement_id = $1 AND engagement_id <> '' AND coalesce(referral_id, '') <> $2
		ORDER BY (state = 'orphaned'), id LIMIT 1 FOR UPDATE`

// LockByEngagement locks the link of another referral of the engagement
// (the partner's, when referralID is Microsoft's), with its snapshot and
// record; store.ErrNotFound when the engagement has none.
func LockByEngagement(ctx context.Context, tx pgx.Tx, engagementID, referralID string) (*Link, error) {
	l, err := scanFull(tx.QueryRow(ctx, lockByEngagementSQL, engagementID, referralID))
	if err != nil {
		return nil, fmt.Errorf("lock link of engagement %s: %w", engagementID, store.MapError(err))
	}
	return l, nil
}

// Save writes l's mutable columns and appends the audit entries, in one
// statement. The large columns (snapshot, opportunity record, projection,
// commands, sync state) are written only when they differ from what was
// read; a nil snapshot or record also leaves the stored one alone.
func Save(ctx context.Context, tx pgx.Tx, l *Link, audits ...Audit) error {
	args := []any{l.ID, l.OpportunityID, l.AccountID, string(l.State), l.ParkReason, l.PCUpdatedAt, l.PCETag,
		l.ProjectionHash, l.CommandID, l.CommandUpdatedAt, l.ResultCommandID, l.Replays,
		l.ReferralID, l.EngagementID, l.SFModstamp, l.CommandSubject, l.PCCommandID,
		l.PCResultCommandID, l.PCRejectedCommandID, l.CreateAttempt, l.InvalidHash, l.RelatedReferralID, l.RelatedUpdatedAt}
	var sql strings.Builder
	sql.WriteString(`UPDATE mapper.links SET opportunity_id = $2, account_id = $3, state = $4, park_reason = $5,
		pc_updated_at = $6, pc_etag = $7, sf_projection_hash = $8, command_id = $9, command_updated_at = $10,
		result_command_id = $11, replays = $12, referral_id = NULLIF($13, ''), engagement_id = $14,
		sf_modstamp = $15, command_subject = $16, pc_command_id = $17, pc_result_command_id = $18,
		pc_rejected_command_id = $19, create_attempt = $20, invalid_hash = $21, related_referral_id = $22,
		related_updated_at = $23, updated_at = now()`)
	set := func(column, cast string, v any) {
		args = append(args, v)
		fmt.Fprintf(&sql, ", %s = $%d%s", column, len(args), cast)
	}
	if l.Snapshot != nil && !sameBytes(l.Snapshot, l.stored.snapshot) {
		set("snapshot", "", l.Snapshot)
	}
	if l.SFRecord != nil && !sameBytes(l.SFRecord, l.stored.record) {
		set("sf_record", "::jsonb", string(l.SFRecord))
	}
	if !sameBytes(l.Projection, l.stored.projection) {
		var projection any
		if l.Projection != nil {
			projection = string(l.Projection)
		}
		set("sf_projection", "::jsonb", projection)
	}
	if !sameBytes(l.Command, l.stored.command) {
		set("command", "", l.Command)
	}
	if !sameBytes(l.PCCommand, l.stored.pcCommand) {
		set("pc_command", "", l.PCCommand)
	}
	if !sameBytes(l.Sync, l.stored.sync) {
		sync := "{}"
		if len(l.Sync) > 0 {
			sync = string(l.Sync)
		}
		set("sync", "::jsonb", sync)
	}
	sql.WriteString(" WHERE id = $1")
	stmt := sql.String()
	if len(audits) > 0 {
		values, aargs, err := auditValues(audits, len(args)+1, &l.ID)
		if err != nil {
			return err
		}
		stmt = `WITH audit AS (INSERT INTO mapper.audit_events (link_id, referral_id, opportunity_id, kind, message, details, trace_id, seller) VALUES ` +
			values + `) ` + stmt
		args = append(args, aargs...)
	}
	tag, err := tx.Exec(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("save link %d (referral %q, opportunity %q): %w", l.ID, l.ReferralID, l.OpportunityID, store.MapError(err))
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("save link %d: %w", l.ID, store.ErrNotFound)
	}
	l.stored.sync, l.stored.projection, l.stored.command, l.stored.pcCommand = l.Sync, l.Projection, l.Command, l.PCCommand
	if l.Snapshot != nil {
		l.stored.snapshot = l.Snapshot
	}
	if l.SFRecord != nil {
		l.stored.record = l.SFRecord
	}
	return nil
}

// sameBytes reports whether a and b hold the same value, telling NULL
// (nil) from an empty value.
func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// AppendAudit appends entries not tied to a link change.
func AppendAudit(ctx context.Context, tx pgx.Tx, linkID *int64, audits ...Audit) error {
	if len(audits) == 0 {
		return nil
	}
	values, args, err := auditValues(audits, 1, linkID)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO mapper.audit_events (link_id, referral_id, opportunity_id, kind, message, details, trace_id, seller) VALUES `+values, args...); err != nil {
		return fmt.Errorf("append audit: %w", store.MapError(err))
	}
	return nil
}

// auditValues renders the VALUES tuples of audits with placeholders
// numbered from first.
func auditValues(audits []Audit, first int, linkID *int64) (string, []any, error) {
	var (
		values string
		args   []any
	)
	for i, a := range audits {
		details := []byte("{}")
		if len(a.Details) > 0 {
			var err error
			if details, err = json.Marshal(a.Details); err != nil {
				return "", nil, fmt.Errorf("audit details: %w", err)
			}
		}
		n := first + i*8
		if i > 0 {
			values += ", "
		}
		values += fmt.Sprintf("($%d::bigint, $%d, $%d, $%d, $%d, $%d::jsonb, $%d, $%d)", n, n+1, n+2, n+3, n+4, n+5, n+6, n+7)
		args = append(args, linkID, a.ReferralID, a.OpportunityID, a.Kind, a.Message, string(details), a.TraceID, a.Seller)
	}
	return values, args, nil
}

// Park is a referral's sync parked in dead_letters.
type Park struct {
	ReferralID string
	// Consumer, Stream and StreamSeq identify the message that caused the
	// park; recording the same message twice is a no-op.
	Consumer  string
	Stream    string
	StreamSeq uint64
	// Subject and Payload are what a replay re-applies: the snapshot, a
	// ReferralObserved on its subject.
	Subject string
	Payload []byte
	MsgID   string
	Reason  string
	TraceID string
}

// RecordPark inserts a parked sync into dead_letters.
func RecordPark(ctx context.Context, tx pgx.Tx, service string, p Park) error {
	payload := p.Payload
	if payload == nil {
		payload = []byte{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO mapper.dead_letters
		(service, consumer, stream, stream_seq, subject, msg_id, deliveries, reason, permanent, payload, trace_id, referral_id)
		VALUES ($1, $2, $3, $4, $5, $6, 1, $7, true, $8, $9, $10)
		ON CONFLICT (stream, stream_seq, consumer) DO NOTHING`,
		service, p.Consumer, p.Stream, int64(p.StreamSeq), p.Subject, p.MsgID, p.Reason, payload, p.TraceID, p.ReferralID)
	if err != nil {
		return fmt.Errorf("park referral %s: %w", p.ReferralID, store.MapError(err))
	}
	return nil
}

// MarkParksReplayed marks the referral's pending parked syncs replayed.
func MarkParksReplayed(ctx context.Context, tx pgx.Tx, referralID string) (int64, error) {
	tag, err := tx.Exec(ctx, `UPDATE mapper.dead_letters SET replayed_at = now()
		WHERE referral_id = $1 AND replayed_at IS NULL`, referralID)
	if err != nil {
		return 0, fmt.Errorf("mark parked syncs of %s replayed: %w", referralID, store.MapError(err))
	}
	return tag.RowsAffected(), nil
}

// AuditEntry is an audit row as stored.
type AuditEntry struct {
	ID            int64
	ReferralID    string
	OpportunityID string
	Kind          string
	Message       string
	Details       map[string]any
	TraceID       string
	At            time.Time
}

// Querier runs queries; a pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// AuditTrail lists the referral's audit entries, oldest first.
func AuditTrail(ctx context.Context, db Querier, referralID string, limit int) ([]AuditEntry, error) {
	return auditTrail(ctx, db, "referral_id = $1", referralID, limit)
}

func auditTrail(ctx context.Context, db Querier, where, id string, limit int) ([]AuditEntry, error) {
	referralID := id
	rows, err := db.Query(ctx, `SELECT id, referral_id, opportunity_id, kind, message, details, trace_id, at
		FROM mapper.audit_events WHERE `+where+` ORDER BY at, id LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("audit trail of %s: %w", referralID, store.MapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var (
			e       AuditEntry
			details []byte
		)
		if err := r.Scan(&e.ID, &e.ReferralID, &e.OpportunityID, &e.Kind, &e.Message, &details, &e.TraceID, &e.At); err != nil {
			return e, err
		}
		if err := json.Unmarshal(details, &e.Details); err != nil {
			return e, fmt.Errorf("details of audit %d: %w", e.ID, err)
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit trail of %s: %w", referralID, store.MapError(err))
	}
	return out, nil
}

// IsNotFound reports whether err means the link does not exist.
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// SellerLine is one line of an opportunity's Audit field.
type SellerLine struct {
	At      time.Time
	Message string
}

// SellerTrail returns the opportunity's seller-facing audit entries,
// newest first, at most limit.
func SellerTrail(ctx context.Context, db Querier, opportunityID string, limit int) ([]SellerLine, error) {
	rows, err := db.Query(ctx, `SELECT at, message FROM mapper.audit_events
		WHERE opportunity_id = $1 AND seller ORDER BY at DESC, id DESC LIMIT $2`, opportunityID, limit)
	if err != nil {
		return nil, fmt.Errorf("seller trail of %s: %w", opportunityID, store.MapError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SellerLine, error) {
		var l SellerLine
		return l, r.Scan(&l.At, &l.Message)
	})
	if err != nil {
		return nil, fmt.Errorf("seller trail of %s: %w", opportunityID, store.MapError(err))
	}
	return out, nil
}

// AuditTrailByOpportunity lists the opportunity's audit entries, oldest
// first (an outbound link has no referral id until its create is answered).
func AuditTrailByOpportunity(ctx context.Context, db Querier, opportunityID string, limit int) ([]AuditEntry, error) {
	return auditTrail(ctx, db, "opportunity_id = $1 AND opportunity_id <> ''", opportunityID, limit)
}
