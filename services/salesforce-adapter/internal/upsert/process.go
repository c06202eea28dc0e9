package upsert

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/cursorstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/opprecord"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
)

// Codes with which Salesforce refuses a record whose AccountId points to an
// Account that is gone (deleted since we cached it).
const (
	codeInvalidCrossReference = "INVALID_CROSS_REFERENCE_KEY"
	codeEntityIsDeleted       = "ENTITY_IS_DELETED"
)

// run is the processing of one batch: its span and what it decided.
type run struct {
	b      *Batcher
	span   trace.Span
	rep    report
	counts map[Kind]int
}

// finish gives every item of g the outcome o and frees the referral.
func (r *run) finish(ctx context.Context, g *group, o Outcome) {
	o.Batch = r.span.SpanContext()
	for _, it := range g.items {
		it.done <- o
	}
	r.rep.release = append(r.rep.release, g.key)
	r.counts[o.Kind] += len(g.items)
	r.b.metrics.outcomes.Add(ctx, int64(len(g.items)), metric.WithAttributes(attribute.String("outcome", o.Kind.String())))
}

// retry schedules g to be batched again at at; its referral stays busy
// until then.
func (r *run) retry(g *group, at time.Time) {
	r.rep.retry = append(r.rep.retry, delayed{at: at, key: g.key, items: g.items})
}

// process resolves the batch's customers, upserts its opportunities in one
// call and decides every command's outcome.
func (b *Batcher) process(ctx context.Context, bt *batch) report {
	links := make([]trace.Link, 0, len(bt.groups))
	records := 0
	for _, g := range bt.groups {
		for _, it := range g.items {
			records++
			if it.cmd.Span.IsValid() {
				links = append(links, trace.Link{SpanContext: it.cmd.Span, Attributes: []attribute.KeyValue{AttrReferralID.String(it.cmd.ReferralID)}})
			}
		}
	}
	// The batch serves many referrals, so it is a trace of its own,
	// linked to every command's span.
	verb := "upsert "
	if bt.field == byID {
		verb = "update "
	}
	ctx, span := b.tracer.Start(ctx, verb+SObject+" batch",
		trace.WithNewRoot(),
		trace.WithLinks(links...),
		trace.WithAttributes(attrBatchSize.Int(len(bt.groups)), attrBatchRecords.Int(records)))
	defer span.End()
	r := &run{b: b, span: span, counts: map[Kind]int{}}
	defer func() {
		span.SetAttributes(
			attribute.Int("cosell.batch.ok", r.counts[OK]),
			attribute.Int("cosell.batch.rejected", r.counts[Rejected]),
			attribute.Int("cosell.batch.failed", r.counts[Failed]),
			attribute.Int("cosell.batch.retry_later", r.counts[RetryLater]),
			attribute.Int("cosell.batch.retried", len(r.rep.retry)))
	}()

	// Conditional commands whose opportunity changed since the mapper's
	// decision are refused before anything is written.
	if bt = b.preconditions(ctx, r, bt); len(bt.groups) == 0 {
		return r.rep
	}

	if bt.field == byID {
		b.updates(ctx, r, bt)
		return r.rep
	}

	// Customers first: one cache read, and for new customers one query and
	// one create for the whole batch.
	var customers []accounts.Customer
	for _, g := range bt.groups {
		if c := g.winner.cmd.Customer; c != nil {
			customers = append(customers, *c)
		}
	}
	resolved := map[string]accounts.Resolution{}
	if len(customers) > 0 {
		res, err := b.accounts.Resolve(ctx, customers)
		if err != nil {
			o := b.classify(err)
			recordFailure(span, err)
			for _, g := range bt.groups {
				r.finish(ctx, g, o)
			}
			return r.rep
		}
		resolved = res
	}

	type entry struct {
		g       *group
		account accounts.Resolution
	}
	var live []entry
	var recs []sfclient.Record
	for _, g := range bt.groups {
		w := g.winner
		rec := sfclient.Record{}
		for k, v := range w.cmd.Fields {
			if strings.EqualFold(k, "Id") || strings.EqualFold(k, "attributes") || strings.EqualFold(k, bt.field) {
				continue
			}
			rec[k] = v
		}
		rec[bt.field] = w.cmd.ReferralID
		var acct accounts.Resolution
		if c := w.cmd.Customer; c != nil {
			if k := accounts.Key(*c); k != "" {
				acct = resolved[k]
				if len(acct.Rejected) > 0 {
					r.finish(ctx, g, Outcome{Kind: Rejected, Errors: accountErrors(acct.Rejected)})
					continue
				}
				rec["AccountId"] = acct.ID
			}
		}
		live = append(live, entry{g: g, account: acct})
		recs = append(recs, rec)
	}
	if len(live) == 0 {
		return r.rep
	}

	results, observed, errs := b.write(ctx, recs, func(ctx context.Context, recs []sfclient.Record) (sfclient.WriteReadBack, error) {
		return b.sf.UpsertCollectionReadBack(ctx, SObject, bt.field, recs, readBackSOQL(bt.field, recs))
	})
	now := time.Now()
	for i, e := range live {
		if errs[i] != nil {
			recordFailure(span, errs[i])
			r.finish(ctx, e.g, b.classify(errs[i]))
			continue
		}
		b.decide(ctx, r, e.g, e.account, results[i], observed, now)
	}
	b.noteReadBack(ctx, observed)
	return r.rep
}

// readBackSOQL is the query that reads a batch's records back after the
// write, by the key the write used (the External ID field, or Id), in the
// poller's shape.
func readBackSOQL(field string, recs []sfclient.Record) string {
	values := make([]string, 0, len(recs))
	for _, rec := range recs {
		switch v := rec[field].(type) {
		case string:
			values = append(values, sfclient.QuoteSOQL(v))
		}
	}
	return opprecord.SOQL(field+" IN ("+strings.Join(values, ", ")+") AND "+opprecord.Relevant, "")
}

// noteReadBack tells the poller's store which versions were read back:
// their results carry them to the mapper. A failure only costs the
// poller publishing them again, which the mapper's inbox drops.
func (b *Batcher) noteReadBack(ctx context.Context, observed map[string]*opprecord.Record) {
	if b.seen == nil || len(observed) == 0 {
		return
	}
	vs := make([]cursorstore.Version, 0, len(observed))
	for id, rec := range observed {
		if id == rec.ID {
			vs = append(vs, cursorstore.Version{OpportunityID: rec.ID, SystemModstamp: rec.SystemModstamp})
		}
	}
	if err := b.seen(ctx, vs); err != nil {
		b.log.WarnContext(ctx, "record read-back versions; the poller will publish them again", "versions", len(vs), "err", err)
	}
}

// updates writes a batch of updates by Id (one command per opportunity)
// in one collections call and decides every command's outcome.
func (b *Batcher) updates(ctx context.Context, r *run, bt *batch) {
	recs := make([]sfclient.Record, len(bt.groups))
	for i, g := range bt.groups {
		w := g.winner
		rec := sfclient.Record{}
		for k, v := range w.cmd.Fields {
			if strings.EqualFold(k, "Id") || strings.EqualFold(k, "attributes") {
				continue
			}
			rec[k] = v
		}
		rec["Id"] = w.cmd.OpportunityID
		recs[i] = rec
	}
	results, observed, errs := b.write(ctx, recs, func(ctx context.Context, recs []sfclient.Record) (sfclient.WriteReadBack, error) {
		return b.sf.UpdateCollectionReadBack(ctx, SObject, recs, readBackSOQL("Id", recs))
	})
	now := time.Now()
	for i, g := range bt.groups {
		if errs[i] != nil {
			recordFailure(r.span, errs[i])
			r.finish(ctx, g, b.classify(errs[i]))
			continue
		}
		res := results[i]
		if res.ID == "" {
			res.ID = g.winner.cmd.OpportunityID
		}
		b.decide(ctx, r, g, accounts.Resolution{}, res, observed, now)
	}
	b.noteReadBack(ctx, observed)
}

// write sends the records in one collections call, which reads them back
// too. When Salesforce refuses the request as a whole (a 4xx that is not
// about the session or the limits), one record may be to blame, so each
// record is sent alone and only the culprit fails. The records read back
// are returned by Id, 18 and 15 characters.
func (b *Batcher) write(ctx context.Context, recs []sfclient.Record, call func(context.Context, []sfclient.Record) (sfclient.WriteReadBack, error)) ([]sfclient.SaveResult, map[string]*opprecord.Record, []error) {
	errs := make([]error, len(recs))
	observed := map[string]*opprecord.Record{}
	out, err := call(ctx, recs)
	if err == nil {
		b.readBack(ctx, out, observed)
		return out.Results, observed, errs
	}
	var ae *sfclient.APIError
	if len(recs) == 1 || !errors.As(err, &ae) || !wholeRequestRejected(ae) {
		for i := range errs {
			errs[i] = err
		}
		return make([]sfclient.SaveResult, len(recs)), observed, errs
	}
	b.log.WarnContext(ctx, "salesforce refused the whole batch; sending records one by one", "records", len(recs), "err", err)
	res := make([]sfclient.SaveResult, len(recs))
	for i, rec := range recs {
		one, err := call(ctx, []sfclient.Record{rec})
		if err != nil {
			errs[i] = err
			continue
		}
		res[i] = one.Results[0]
		b.readBack(ctx, one, observed)
	}
	return res, observed, errs
}

// readBack decodes the rows a write read back into observed. A read-back
// that failed, or a row that cannot be decoded, leaves its records to the
// poller.
func (b *Batcher) readBack(ctx context.Context, out sfclient.WriteReadBack, observed map[string]*opprecord.Record) {
	if out.ReadErr != nil {
		b.metrics.readBacks.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "failed")))
		b.log.WarnContext(ctx, "reading written opportunities back failed; the poller will observe them", "err", out.ReadErr)
		return
	}
	b.metrics.readBacks.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "ok")))
	for _, raw := range out.Records {
		rec, err := opprecord.Decode(raw)
		if err != nil {
			b.log.WarnContext(ctx, "read-back row not decodable; the poller will observe it", "err", err)
			continue
		}
		observed[rec.ID] = &rec
		if len(rec.ID) == 18 {
			observed[rec.ID[:15]] = &rec
		}
	}
}

// wholeRequestRejected reports whether an error status says the request
// itself is wrong (bad field, malformed JSON), as opposed to the session,
// permissions, limits or a server fault.
func wholeRequestRejected(ae *sfclient.APIError) bool {
	return (ae.Status == http.StatusBadRequest || ae.Status == http.StatusNotFound) && !ae.Temporary()
}

// decide turns one record's save result into an outcome or a retry.
func (b *Batcher) decide(ctx context.Context, r *run, g *group, acct accounts.Resolution, res sfclient.SaveResult, observed map[string]*opprecord.Record, now time.Time) {
	w := g.winner
	switch {
	case res.Success:
		r.finish(ctx, g, Outcome{Kind: OK, OpportunityID: res.ID, Created: res.Created, AccountID: acct.ID, Observed: observed[res.ID]})

	case res.HasCode(sfclient.CodeUnableToLockRow):
		attempts := 0
		for _, it := range g.items {
			attempts = max(attempts, it.attempts)
		}
		attempts++
		if attempts >= b.cfg.LockRetry.Attempts {
			r.finish(ctx, g, Outcome{Kind: Failed, Errors: res.Errors,
				Err: fmt.Errorf("record still locked after %d attempts", attempts)})
			return
		}
		for _, it := range g.items {
			it.attempts = attempts
		}
		b.metrics.lockRetries.Add(ctx, 1)
		r.retry(g, now.Add(b.cfg.LockRetry.Delay(attempts)))

	case acct.Cached && !w.refresh && accountGone(res):
		// The cached Account was deleted in Salesforce: forget it and
		// resolve the customer afresh, once.
		if err := b.accounts.Forget(ctx, *w.cmd.Customer); err != nil {
			r.finish(ctx, g, Outcome{Kind: Failed, Errors: res.Errors, Err: err})
			return
		}
		b.log.InfoContext(ctx, "cached customer account is gone; resolving it again", "referral_id", w.cmd.ReferralID)
		for _, it := range g.items {
			it.refresh = true
		}
		r.retry(g, now)

	default:
		r.finish(ctx, g, Outcome{Kind: Rejected, Errors: res.Errors})
	}
}

// accountGone reports whether a record failed because its AccountId no
// longer points to a live Account.
func accountGone(res sfclient.SaveResult) bool {
	for _, e := range res.Errors {
		if e.Code != codeInvalidCrossReference && e.Code != codeEntityIsDeleted {
			continue
		}
		if len(e.Fields) == 0 {
			return true
		}
		for _, f := range e.Fields {
			if strings.EqualFold(f, "AccountId") {
				return true
			}
		}
	}
	return false
}

// accountErrors labels the errors of an Account that could not be
// created, so the seller reads which record Salesforce refused.
func accountErrors(errs []sfclient.ErrorItem) []sfclient.ErrorItem {
	out := make([]sfclient.ErrorItem, len(errs))
	for i, e := range errs {
		out[i] = e
		out[i].Message = "Customer account: " + e.Message
		out[i].Fields = make([]string, len(e.Fields))
		for j, f := range e.Fields {
			out[i].Fields[j] = "Account." + f
		}
	}
	return out
}

// classify turns an error that decided a whole call into an outcome.
func (b *Batcher) classify(err error) Outcome {
	if errors.Is(err, sfclient.ErrBudgetExhausted) || errors.Is(err, sfclient.ErrLimitExceeded) {
		return Outcome{Kind: RetryLater, Err: err, RetryAfter: b.cfg.BudgetRetryAfter}
	}
	var ae *sfclient.APIError
	if errors.As(err, &ae) {
		if wholeRequestRejected(ae) {
			return Outcome{Kind: Rejected, Errors: ae.Errors, Err: err}
		}
		return Outcome{Kind: Failed, Errors: ae.Errors, Err: err}
	}
	return Outcome{Kind: Failed, Err: err}
}

// recordFailure marks the batch span failed.
func recordFailure(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, "salesforce call failed")
}
