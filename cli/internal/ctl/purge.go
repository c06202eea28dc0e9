package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/cosell/cosell/cli/internal/opsdb"
)

// purgeDescription is purge's --help text.
const purgeDescription = `
Removes one customer's data from cosell's own Postgres tables: the mapper's link, audit
events, inbox rows and dead letters; the partnercenter-adapter's dead letters, command
records and missing-referral records; the salesforce-adapter's dead letters, published
opportunity versions and cached accounts. Each service's schema is purged in one
transaction.

Without --yes it is a dry run: it prints how many rows each table holds for the customer
and deletes nothing. With --yes it deletes them and writes a purge record
(mapper.purges: when, by whom, the ids purged and the row counts, never the customer's
name or details) so you can show the purge happened without keeping the data.

It NEVER deletes or changes anything in Salesforce or Partner Center: the opportunity
and the referral stay where they are; remove them there if they must go. If the referral
is still open in Partner Center, a later change to it (webhook or sweep) syncs it again
and creates a new link.

JetStream messages about the customer are not deleted: they age out of the streams at
the stream max age (STREAM_MAX_AGE, default 7 days; dead letters DEAD_LETTER_MAX_AGE,
default 30 days).

Select the customer with exactly one of --referral, --opportunity or --customer-name
(every link whose referral's customerProfile.name or opportunity's Account.Name is that
name, ignoring case and extra spaces, and the cached accounts of that name).`

// purgeOutput is what purge prints with --json.
type purgeOutput struct {
	opsdb.PurgeResult
	Notes []string `json:"notes"`
}

func runPurge(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "--referral ID | --opportunity ID | --customer-name NAME [--yes] [--by NAME]", purgeDescription)
	referral := fs.String("referral", "", "purge the customer of this Partner Center referral `ID`")
	opportunity := fs.String("opportunity", "", "purge the customer of this Salesforce opportunity `ID`")
	customer := fs.String("customer-name", "", "purge every link naming this customer `NAME`")
	yes := fs.Bool("yes", false, "delete (without it: a dry run that only counts)")
	by := fs.String("by", e.app.getenv("USER"), "operator `NAME` written in the purge record (env USER)")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	n := 0
	for _, v := range []string{*referral, *opportunity, *customer} {
		if strings.TrimSpace(v) != "" {
			n++
		}
	}
	if n != 1 {
		return usagef("give exactly one of --referral ID, --opportunity ID or --customer-name NAME")
	}
	for _, id := range []string{*referral, *opportunity} {
		if id != "" && len(strings.TrimSpace(id)) < opsdb.MinPurgeIDLength {
			return usagef("id %q is too short (at least %d characters): it could match other customers' rows", id, opsdb.MinPurgeIDLength)
		}
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	res, err := db.Purge(ctx, opsdb.PurgeSelector{ReferralID: *referral, OpportunityID: *opportunity, CustomerName: *customer},
		opsdb.PurgeOptions{Execute: *yes, By: strings.TrimSpace(*by)})
	if err != nil {
		return err
	}
	notes := []string{
		"Nothing was deleted or changed in Salesforce or Partner Center.",
		"JetStream messages about this customer are not deleted: they age out at the stream max age (STREAM_MAX_AGE, default 7 days; dead letters DEAD_LETTER_MAX_AGE, default 30 days).",
	}
	if res.DryRun {
		notes = append([]string{"Dry run: nothing was deleted. Run again with --yes to delete these rows."}, notes...)
	}
	if e.opts.json {
		if res.ReferralIDs == nil {
			res.ReferralIDs = []string{}
		}
		if res.OpportunityIDs == nil {
			res.OpportunityIDs = []string{}
		}
		return writeJSON(e.out, purgeOutput{PurgeResult: res, Notes: notes})
	}
	verb := "Would delete"
	if !res.DryRun {
		verb = "Deleted"
	}
	fmt.Fprintf(e.out, "%s %d rows of %d link(s); referrals: %s; opportunities: %s\n\n", verb, res.Total, res.Links,
		cell(strings.Join(res.ReferralIDs, ", ")), cell(strings.Join(res.OpportunityIDs, ", ")))
	t := newTable("SCHEMA", "TABLE", "ROWS")
	for _, pt := range res.Tables {
		t.add(pt.Schema, pt.Table, fmt.Sprint(pt.Rows))
	}
	if err := t.print(e.out); err != nil {
		return err
	}
	fmt.Fprintln(e.out)
	if !res.DryRun {
		fmt.Fprintf(e.out, "Purge record %d written to mapper.purges (%s, by %s).\n", res.RecordID, ts(res.PurgedAt), res.PurgedBy)
	}
	for _, n := range notes {
		fmt.Fprintln(e.out, n)
	}
	return nil
}
