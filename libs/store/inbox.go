package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// InboxDDL returns the statements that create an inbox table named table,
// the shape MarkProcessed and PruneInbox expect. For table "inbox" it is:
//
//	CREATE TABLE IF NOT EXISTS inbox (
//	    consumer     text        NOT NULL,
//	    msg_id       text        NOT NULL,
//	    processed_at timestamptz NOT NULL DEFAULT now(),
//	    PRIMARY KEY (consumer, msg_id)
//	);
//	CREATE INDEX IF NOT EXISTS inbox_processed_at_idx ON inbox (processed_at);
//
// Each service puts this SQL in its own migrations (see migrations/README.md)
// so that one service's schema never depends on another's; the function lets
// tests and tools produce the identical text without copying it.
func InboxDDL(table string) (string, error) {
	ident, err := tableIdent(table)
	if err != nil {
		return "", fmt.Errorf("inbox ddl: %w", err)
	}
	parts := strings.Split(table, ".")
	index := pgx.Identifier{parts[len(parts)-1] + "_processed_at_idx"}.Sanitize()
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
    consumer     text        NOT NULL,
    msg_id       text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, msg_id)
);
CREATE INDEX IF NOT EXISTS %[2]s ON %[1]s (processed_at);`, ident, index), nil
}

// identPart is what cosell accepts as a table name: plain lower-case SQL
// identifiers, optionally schema-qualified. Anything else is a programming
// error, never input to escape.
var identPart = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// tableIdent validates a table name ("inbox" or "schema.inbox") and returns
// it quoted for use in SQL text.
func tableIdent(table string) (string, error) {
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("table name %q: too many dots", table)
	}
	for _, p := range parts {
		if !identPart.MatchString(p) {
			return "", fmt.Errorf("table name %q: %q is not a lower-case identifier", table, p)
		}
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

// MarkProcessed records that consumer handled the message msgID, inside tx,
// the same transaction that applies the message's effects. It returns true
// the first time and false when the message was already processed, in which
// case the caller skips the effects and acknowledges the message: this is
// what makes redelivery harmless with no time window.
//
// table names the service's inbox table (see InboxDDL); it is validated as an
// identifier and quoted, never interpolated raw.
func MarkProcessed(ctx context.Context, tx pgx.Tx, table, consumer, msgID string) (first bool, err error) {
	ident, err := tableIdent(table)
	if err != nil {
		return false, fmt.Errorf("mark processed: %w", err)
	}
	if consumer == "" || msgID == "" {
		return false, fmt.Errorf("mark processed: consumer and message id are required: %w", ErrInvalid)
	}
	tag, err := tx.Exec(ctx,
		`INSERT INTO `+ident+` (consumer, msg_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		consumer, msgID)
	if err != nil {
		return false, fmt.Errorf("mark processed: %w", MapError(err))
	}
	return tag.RowsAffected() == 1, nil
}

// QueueMarkProcessed queues MarkProcessed's insert on b, so that it shares
// one round trip with the statements queued after it (a handler's first
// read, typically). Read its answer first, with MarkedResult.
func QueueMarkProcessed(b *pgx.Batch, table, consumer, msgID string) error {
	ident, err := tableIdent(table)
	if err != nil {
		return fmt.Errorf("mark processed: %w", err)
	}
	if consumer == "" || msgID == "" {
		return fmt.Errorf("mark processed: consumer and message id are required: %w", ErrInvalid)
	}
	b.Queue(`INSERT INTO `+ident+` (consumer, msg_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, consumer, msgID)
	return nil
}

// MarkedResult reads the answer of a queued MarkProcessed, as
// MarkProcessed returns it.
func MarkedResult(br pgx.BatchResults) (first bool, err error) {
	tag, err := br.Exec()
	if err != nil {
		return false, fmt.Errorf("mark processed: %w", MapError(err))
	}
	return tag.RowsAffected() == 1, nil
}

// Execer runs a statement; *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PruneInbox deletes inbox rows older than olderThan and returns how many it
// removed. The retention must comfortably exceed the longest time a message
// can still be redelivered (JetStream's max age and redelivery backoff),
// otherwise a late redelivery would be processed twice.
func PruneInbox(ctx context.Context, db Execer, table string, olderThan time.Duration) (int64, error) {
	ident, err := tableIdent(table)
	if err != nil {
		return 0, fmt.Errorf("prune inbox: %w", err)
	}
	if olderThan <= 0 {
		return 0, fmt.Errorf("prune inbox: retention must be positive: %w", ErrInvalid)
	}
	tag, err := db.Exec(ctx,
		`DELETE FROM `+ident+` WHERE processed_at < now() - make_interval(secs => $1)`,
		olderThan.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune inbox: %w", MapError(err))
	}
	return tag.RowsAffected(), nil
}
