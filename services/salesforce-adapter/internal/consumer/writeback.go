package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/opprecord"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// WritebackDurable is the name of the write-back consumer, shared by every
// replica.
const WritebackDurable = "salesforce-adapter-writeback"

// WritebackSpec returns the durable consumer of write-back commands.
// Write-backs wait in the same batcher as upserts, so concurrency plays
// the same role as in Spec.
func WritebackSpec(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamSalesforceCommands,
		Durable:        WritebackDurable,
		FilterSubjects: []string{bus.SubjectSalesforceWriteback},
		Concurrency:    concurrency,
		MaxAckPending:  2 * concurrency,
		AckWait:        time.Minute,
		MaxDeliver:     8,
		Backoff:        bus.Backoff{Initial: time.Second, Max: 2 * time.Minute},
	}
}

// WritebackHandler returns the bus handler of write-back commands: it
// updates the opportunity's fields by Id through the batcher and answers
// with a SalesforceResult, under the same rules as upserts (rejections are
// final, failures carry the reason, an exhausted budget defers the
// command).
func WritebackHandler(s Submitter, p Publisher, log *slog.Logger) bus.Handler {
	return func(ctx context.Context, m *bus.Msg) error {
		var cmd cosellv1.SalesforceWriteback
		if err := m.Unmarshal(&cmd); err != nil {
			return err
		}
		span := trace.SpanFromContext(ctx)
		span.SetAttributes(upsert.AttrOpportunityID.String(cmd.GetOpportunityId()))
		if cmd.GetReferralId() != "" {
			span.SetAttributes(upsert.AttrReferralID.String(cmd.GetReferralId()))
		}
		if cmd.GetCommandId() == "" {
			cmd.CommandId = m.MsgID
		}

		res := &cosellv1.SalesforceResult{
			CommandId:     cmd.GetCommandId(),
			ReferralId:    cmd.GetReferralId(),
			OpportunityId: cmd.GetOpportunityId(),
		}
		uc, err := toUpdate(&cmd, span.SpanContext())
		if err != nil {
			res.Outcome, res.ErrorCode, res.ErrorMessage = cosellv1.Outcome_OUTCOME_REJECTED, CodeInvalidCommand, err.Error()
		} else {
			out, err := s.Submit(ctx, uc)
			if err != nil {
				return err
			}
			if out.Batch.IsValid() {
				span.AddLink(trace.Link{SpanContext: out.Batch})
			}
			if out.Kind == upsert.RetryLater {
				return bus.RetryAfter(fmt.Errorf("write-back %s deferred: %w", cmd.GetCommandId(), out.Err), deferral(out.RetryAfter, m.Deliveries))
			}
			full := toResult(&cosellv1.UpsertOpportunityCommand{CommandId: cmd.GetCommandId(), ReferralId: cmd.GetReferralId()}, out)
			full.OpportunityId = cmd.GetOpportunityId()
			res = full
		}
		if err := p.Publish(ctx, bus.SubjectSalesforceResult, resultMsgID(res), res); err != nil {
			return err
		}
		logWriteback(ctx, log, res)
		return nil
	}
}

// toUpdate validates a write-back and turns it into the batcher's form.
func toUpdate(c *cosellv1.SalesforceWriteback, sc trace.SpanContext) (upsert.Command, error) {
	id := c.GetOpportunityId()
	if !opprecord.ValidID(id) {
		return upsert.Command{}, fmt.Errorf("opportunity id %q is not a Salesforce record id", id)
	}
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(c.GetFieldsJson(), &fields); err != nil {
		return upsert.Command{}, fmt.Errorf("fields_json is not a JSON object: %w", err)
	}
	for k, v := range fields {
		if !sfclient.ValidAPIName(k) {
			return upsert.Command{}, fmt.Errorf("fields_json key %q is not a field API name", k)
		}
		if strings.EqualFold(k, "Id") {
			var same string
			if json.Unmarshal(v, &same) != nil || !strings.EqualFold(same, id) {
				return upsert.Command{}, errors.New("fields_json names another Id than opportunity_id")
			}
			delete(fields, k)
		}
	}
	if len(fields) == 0 {
		return upsert.Command{}, errors.New("fields_json sets no field")
	}
	out := upsert.Command{
		ID:            c.GetCommandId(),
		OpportunityID: id,
		ReferralID:    c.GetReferralId(),
		Fields:        fields,
		Span:          sc,
	}
	if ts := c.GetExpectedSystemModstamp(); ts != nil {
		out.ExpectedSystemModstamp = ts.AsTime()
	}
	return out, nil
}

// logWriteback logs failures and rejections (Salesforce's code and
// message, never field values) and successes at debug level.
func logWriteback(ctx context.Context, log *slog.Logger, r *cosellv1.SalesforceResult) {
	if r.GetOutcome() == cosellv1.Outcome_OUTCOME_OK {
		log.DebugContext(ctx, "opportunity written back", "command_id", r.GetCommandId(), "opportunity_id", r.GetOpportunityId(),
			"referral_id", r.GetReferralId())
		return
	}
	log.WarnContext(ctx, "opportunity not written back", "command_id", r.GetCommandId(), "opportunity_id", r.GetOpportunityId(),
		"referral_id", r.GetReferralId(), "outcome", r.GetOutcome().String(), "error_code", r.GetErrorCode(),
		"error", r.GetErrorMessage(), "fields", r.GetErrorFields())
}
