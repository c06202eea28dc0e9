package upsert

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/opprecord"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
)

// CodePreconditionFailed is the error code of a conditional command whose
// opportunity changed (its SystemModstamp moved on) since the mapper
// decided the write: nothing was written.
const CodePreconditionFailed = "PRECONDITION_FAILED"

// modstampLayout renders SystemModstamps in messages, to the millisecond.
const modstampLayout = "2006-01-02T15:04:05.000Z07:00"

// preconditions checks the batch's conditional commands (those whose
// winner carries an ExpectedSystemModstamp) against the opportunities as
// they are now, with one SOQL query for the whole batch, and answers those
// whose opportunity changed with Rejected / CodePreconditionFailed. It
// returns the batch without them. A batch without conditional commands
// costs no call.
//
// The check and the write are two calls: a save that lands between them
// is still overwritten (the window is the batch's own round trip, tens of
// milliseconds, instead of the mapper's whole decision loop).
func (b *Batcher) preconditions(ctx context.Context, r *run, bt *batch) *batch {
	var conditional []*group
	for _, g := range bt.groups {
		if !g.winner.cmd.ExpectedSystemModstamp.IsZero() {
			conditional = append(conditional, g)
		}
	}
	if len(conditional) == 0 {
		return bt
	}
	byKey := bt.field == byID
	keyField := bt.field
	values := make([]string, 0, len(conditional))
	seen := map[string]bool{}
	for _, g := range conditional {
		v := g.winner.cmd.ReferralID
		if byKey {
			v = g.winner.cmd.OpportunityID
		}
		if !seen[v] {
			seen[v] = true
			values = append(values, sfclient.QuoteSOQL(v))
		}
	}
	sel := "Id, SystemModstamp"
	if !byKey {
		sel += ", " + keyField
	}
	soql := "SELECT " + sel + " FROM " + SObject + " WHERE " + keyField + " IN (" + strings.Join(values, ", ") + ")"

	failed := map[*group]bool{}
	page, err := b.sf.Query(ctx, soql)
	if err != nil {
		o := b.classify(err)
		recordFailure(r.span, err)
		for _, g := range conditional {
			r.finish(ctx, g, o)
			failed[g] = true
		}
	} else {
		// current maps the key (opportunity id, or the External ID value
		// lower-cased as Salesforce matches it) to the SystemModstamps found.
		current := map[string][]time.Time{}
		for _, raw := range page.Records {
			var row map[string]any
			if json.Unmarshal(raw, &row) != nil {
				continue
			}
			id, _ := row["Id"].(string)
			ms, _ := row["SystemModstamp"].(string)
			ts, err := opprecord.ParseDateTime(ms)
			if err != nil {
				continue
			}
			if byKey {
				current[id] = append(current[id], ts)
				if len(id) == 18 {
					current[id[:15]] = append(current[id[:15]], ts)
				}
			} else {
				v, _ := row[keyField].(string)
				current[strings.ToLower(v)] = append(current[strings.ToLower(v)], ts)
			}
		}
		for _, g := range conditional {
			w := g.winner.cmd
			key, what := strings.ToLower(w.ReferralID), "the opportunity of referral "+w.ReferralID
			if byKey {
				key, what = w.OpportunityID, "opportunity "+w.OpportunityID
			}
			want := w.ExpectedSystemModstamp.UTC().Truncate(time.Millisecond)
			found := current[key]
			var msg string
			switch {
			case len(found) == 0:
				msg = fmt.Sprintf("%s was not found in Salesforce (expected SystemModstamp %s); nothing was written.",
					what, want.Format(modstampLayout))
			case len(found) > 1 || !found[0].UTC().Truncate(time.Millisecond).Equal(want):
				msg = fmt.Sprintf("%s changed in Salesforce since the decision (SystemModstamp %s, expected %s); nothing was written.",
					what, found[0].UTC().Format(modstampLayout), want.Format(modstampLayout))
			default:
				continue
			}
			msg = strings.ToUpper(msg[:1]) + msg[1:]
			r.finish(ctx, g, Outcome{Kind: Rejected, Errors: []sfclient.ErrorItem{{Code: CodePreconditionFailed, Message: msg, Fields: []string{"SystemModstamp"}}}})
			failed[g] = true
		}
	}
	r.span.SetAttributes(attribute.Int("cosell.batch.conditional", len(conditional)), attribute.Int("cosell.batch.precondition_refused", len(failed)))
	if len(failed) == 0 {
		return bt
	}
	rest := &batch{field: bt.field}
	for _, g := range bt.groups {
		if !failed[g] {
			rest.groups = append(rest.groups, g)
		}
	}
	return rest
}
