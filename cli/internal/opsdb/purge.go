package opsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/events/cosellv1"
)

// MinPurgeIDLength is the shortest id a purge accepts. Dead letters and
// inbox rows are matched by the id appearing in their payload or message
// id, so a short id (a typo, "1") could match other customers' rows.
// Partner Center referral ids are GUIDs and Salesforce ids 15 or 18
// characters.
const MinPurgeIDLength = 8

// PurgeSelector chooses one customer: exactly one field is set.
type PurgeSelector struct {
	// ReferralID selects the link of this Partner Center referral (or this
	// related referral) and everything about it.
	ReferralID string
	// OpportunityID selects the link of this Salesforce opportunity.
	OpportunityID string
	// CustomerName selects every link whose referral (customerProfile.name)
	// or opportunity (Account.Name) names this customer, compared without
	// case and extra white space, and the cached accounts of that name.
	CustomerName string
}

// kind names the selector as the purge record stores it.
func (s PurgeSelector) kind() (string, error) {
	n, kind := 0, ""
	for k, v := range map[string]string{"referral": s.ReferralID, "opportunity": s.OpportunityID, "customer-name": s.CustomerName} {
		if strings.TrimSpace(v) != "" {
			n, kind = n+1, k
		}
	}
	if n != 1 {
		return "", errors.New("give exactly one of a referral id, an opportunity id or a customer name")
	}
	for _, id := range []string{s.ReferralID, s.OpportunityID} {
		if id != "" && len(strings.TrimSpace(id)) < MinPurgeIDLength {
			return "", fmt.Errorf("id %q is too short (at least %d characters): it could match other customers' rows", id, MinPurgeIDLength)
		}
	}
	return kind, nil
}

// PurgeOptions says whether to delete and who asks.
type PurgeOptions struct {
	// Execute deletes; without it Purge only counts (a dry run).
	Execute bool
	// By names the operator in the purge record.
	By string
}

// PurgeTable is one table's rows of the customer.
type PurgeTable struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Rows   int64  `json:"rows"`
}

// PurgeResult is what a purge found (dry run) or removed.
type PurgeResult struct {
	DryRun         bool         `json:"dryRun"`
	Selector       string       `json:"selector"`
	Links          int          `json:"links"`
	ReferralIDs    []string     `json:"referralIds"`
	OpportunityIDs []string     `json:"opportunityIds"`
	Tables         []PurgeTable `json:"tables"`
	Total          int64        `json:"total"`
	// RecordID is the mapper.purges row written by a real purge.
	RecordID int64     `json:"recordId,omitempty"`
	PurgedAt time.Time `json:"purgedAt,omitzero"`
	PurgedBy string    `json:"purgedBy,omitempty"`
}

// purgeTarget is what a selector resolved to.
type purgeTarget struct {
	linkIDs     []int64
	referrals   []string
	opps        []string
	accountIDs  []string
	accountName string // normalised customer name, the accounts cache's key prefix
}

// ids returns every referral and opportunity id, for matching payloads and
// message ids.
func (t purgeTarget) ids() []string { return append(append([]string{}, t.referrals...), t.opps...) }

// purgeStep is one table's condition; args are built from the target.
type purgeStep struct {
	schema, table string
	cond          string
	args          func(t purgeTarget) []any
	// allow is the custom setting a guarded table needs for the delete.
	allow string
}

// containsAny matches rows whose message id or payload contains one of the
// ids ($1): how dead letters and inbox rows, which have no id columns of
// their own, are tied to a customer.
const payloadContainsAny = `EXISTS (SELECT 1 FROM unnest($1::text[]) AS i(id)
	WHERE strpos(msg_id, i.id) > 0 OR position(convert_to(i.id, 'UTF8') IN payload) > 0)`

var purgeSteps = []purgeStep{
	{schema: "partnercenter_adapter", table: "dead_letters", cond: payloadContainsAny,
		args: func(t purgeTarget) []any { return []any{t.ids()} }},
	{schema: "partnercenter_adapter", table: "missing_referrals", cond: `referral_id = ANY($1)`,
		args: func(t purgeTarget) []any { return []any{t.referrals} }},
	{schema: "partnercenter_adapter", table: "commands",
		cond: `referral_id = ANY($1) OR (opportunity_id <> '' AND opportunity_id = ANY($2)) OR (external_reference_id <> '' AND external_reference_id = ANY($2))`,
		args: func(t purgeTarget) []any { return []any{t.referrals, t.opps} }},
	{schema: "salesforce_adapter", table: "dead_letters", cond: payloadContainsAny,
		args: func(t purgeTarget) []any { return []any{t.ids()} }},
	{schema: "salesforce_adapter", table: "observed", cond: `opportunity_id = ANY($1)`,
		args: func(t purgeTarget) []any { return []any{t.opps} }},
	{schema: "salesforce_adapter", table: "accounts",
		cond: `account_id = ANY($1) OR ($2 <> '' AND left(match_key, length($2) + 1) = $2 || '|')`,
		args: func(t purgeTarget) []any { return []any{t.accountIDs, t.accountName} }},
	{schema: "mapper", table: "audit_events",
		cond:  `link_id = ANY($1) OR referral_id = ANY($2) OR (opportunity_id <> '' AND opportunity_id = ANY($3))`,
		args:  func(t purgeTarget) []any { return []any{t.linkIDs, t.referrals, t.opps} },
		allow: "cosell.audit_delete"},
	{schema: "mapper", table: "dead_letters", cond: `referral_id = ANY($2) OR ` + payloadContainsAny,
		args: func(t purgeTarget) []any { return []any{t.ids(), t.referrals} }},
	{schema: "mapper", table: "inbox", cond: `EXISTS (SELECT 1 FROM unnest($1::text[]) AS i(id) WHERE strpos(msg_id, i.id) > 0)`,
		args: func(t purgeTarget) []any { return []any{t.ids()} }},
	{schema: "mapper", table: "links", cond: `id = ANY($1)`,
		args: func(t purgeTarget) []any { return []any{t.linkIDs} }},
}

// purgeSchemas is the order of the per-schema transactions: the mapper
// last, so that a purge that fails half-way still finds the customer's
// links when it is run again, and the purge record commits with the links'
// removal.
var purgeSchemas = []string{"partnercenter_adapter", "salesforce_adapter", "mapper"}

// Purge counts (dry run) or deletes one customer's rows in every table
// that holds them, one transaction per schema, and with Execute records
// the purge, without the customer's data, in mapper.purges. It never
// touches Partner Center or Salesforce.
func (d *DB) Purge(ctx context.Context, sel PurgeSelector, o PurgeOptions) (PurgeResult, error) {
	kind, err := sel.kind()
	if err != nil {
		return PurgeResult{}, err
	}
	t, err := d.resolvePurge(ctx, sel)
	if err != nil {
		return PurgeResult{}, err
	}
	res := PurgeResult{DryRun: !o.Execute, Selector: kind, Links: len(t.linkIDs), ReferralIDs: t.referrals, OpportunityIDs: t.opps}
	if !o.Execute {
		for _, s := range purgeSteps {
			var n int64
			if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM `+s.schema+`.`+s.table+` WHERE `+s.cond, s.args(t)...).Scan(&n); err != nil {
				return PurgeResult{}, fmt.Errorf("count %s.%s: %w", s.schema, s.table, err)
			}
			res.Tables = append(res.Tables, PurgeTable{Schema: s.schema, Table: s.table, Rows: n})
			res.Total += n
		}
		return res, nil
	}

	if o.By == "" {
		o.By = "unknown"
	}
	for _, schema := range purgeSchemas {
		err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
			for _, s := range purgeSteps {
				if s.schema != schema {
					continue
				}
				if s.allow != "" {
					if _, err := tx.Exec(ctx, `SELECT set_config($1, 'purge', true)`, s.allow); err != nil {
						return err
					}
				}
				tag, err := tx.Exec(ctx, `DELETE FROM `+s.schema+`.`+s.table+` WHERE `+s.cond, s.args(t)...)
				if err != nil {
					return fmt.Errorf("delete from %s.%s: %w", s.schema, s.table, err)
				}
				res.Tables = append(res.Tables, PurgeTable{Schema: s.schema, Table: s.table, Rows: tag.RowsAffected()})
				res.Total += tag.RowsAffected()
			}
			if schema != "mapper" {
				return nil
			}
			deleted := map[string]int64{}
			for _, pt := range res.Tables {
				deleted[pt.Schema+"."+pt.Table] = pt.Rows
			}
			counts, err := json.Marshal(deleted)
			if err != nil {
				return err
			}
			return tx.QueryRow(ctx, `INSERT INTO mapper.purges (purged_by, selector, referral_ids, opportunity_ids, deleted)
				VALUES ($1, $2, $3, $4, $5) RETURNING id, purged_at`,
				o.By, kind, nonNil(t.referrals), nonNil(t.opps), counts).Scan(&res.RecordID, &res.PurgedAt)
		})
		if err != nil {
			return res, fmt.Errorf("purge %s (the schemas before it are purged; run the purge again): %w", schema, err)
		}
	}
	res.PurgedBy = o.By
	return res, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// resolvePurge finds the customer's links and collects their ids. An id
// with no link still selects itself: the adapters may hold rows of a
// referral the mapper never linked (a dead-lettered notification).
func (d *DB) resolvePurge(ctx context.Context, sel PurgeSelector) (purgeTarget, error) {
	var t purgeTarget
	add := func(list *[]string, v string) {
		v = strings.TrimSpace(v)
		if v == "" {
			return
		}
		for _, x := range *list {
			if x == v {
				return
			}
		}
		*list = append(*list, v)
	}
	var (
		rows pgx.Rows
		err  error
	)
	switch {
	case sel.ReferralID != "":
		add(&t.referrals, sel.ReferralID)
		rows, err = d.pool.Query(ctx, `SELECT id, referral_id, related_referral_id, opportunity_id, account_id, NULL::bytea, NULL::jsonb
			FROM mapper.links WHERE referral_id = $1 OR related_referral_id = $1`, sel.ReferralID)
	case sel.OpportunityID != "":
		add(&t.opps, sel.OpportunityID)
		rows, err = d.pool.Query(ctx, `SELECT id, referral_id, related_referral_id, opportunity_id, account_id, NULL::bytea, NULL::jsonb
			FROM mapper.links WHERE opportunity_id = $1`, sel.OpportunityID)
	default:
		t.accountName = normalizeName(sel.CustomerName)
		// Every link with a snapshot or record is read and decoded: names
		// live inside the referral document, and a purge is rare.
		rows, err = d.pool.Query(ctx, `SELECT id, referral_id, related_referral_id, opportunity_id, account_id, snapshot, sf_record
			FROM mapper.links WHERE snapshot IS NOT NULL OR sf_record IS NOT NULL`)
	}
	if err != nil {
		return t, fmt.Errorf("find the customer's links: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                  int64
			ref                 *string
			related, opp, accID string
			snapshot, record    []byte
		)
		if err := rows.Scan(&id, &ref, &related, &opp, &accID, &snapshot, &record); err != nil {
			return t, fmt.Errorf("find the customer's links: %w", err)
		}
		if t.accountName != "" && !namesCustomer(snapshot, record, t.accountName) {
			continue
		}
		t.linkIDs = append(t.linkIDs, id)
		if ref != nil {
			add(&t.referrals, *ref)
		}
		add(&t.referrals, related)
		add(&t.opps, opp)
		add(&t.accountIDs, accID)
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("find the customer's links: %w", err)
	}
	return t, nil
}

// normalizeName is how the salesforce-adapter keys its account cache:
// white space collapsed, lower case.
func normalizeName(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// namesCustomer reports whether a link's referral snapshot
// (customerProfile.name) or opportunity record (Account.Name) names the
// customer whose normalised name is want.
func namesCustomer(snapshot, record []byte, want string) bool {
	if len(snapshot) > 0 {
		var obs cosellv1.ReferralObserved
		if proto.Unmarshal(snapshot, &obs) == nil {
			var doc struct {
				CustomerProfile struct {
					Name string `json:"name"`
				} `json:"customerProfile"`
			}
			if json.Unmarshal(obs.GetReferralJson(), &doc) == nil && normalizeName(doc.CustomerProfile.Name) == want {
				return true
			}
		}
	}
	if len(record) > 0 {
		var rec struct {
			Account struct {
				Name string `json:"Name"`
			} `json:"Account"`
		}
		if json.Unmarshal(record, &rec) == nil && normalizeName(rec.Account.Name) == want {
			return true
		}
	}
	return false
}
