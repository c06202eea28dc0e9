// Package consumer is the salesforce-adapter's message edge: it decodes
// UpsertOpportunityCommand and SalesforceWriteback messages, hands them to
// the batcher (upserts by External ID, updates by Id), publishes
// one SalesforceResult per command in the command's own trace, and tells
// the bus what to do with the message: acknowledge it once its result is
// published, retry it later when the API budget is exhausted, or park it
// when it cannot be decoded.
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
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// Durable is the name of the upsert consumer, shared by every replica.
const Durable = "salesforce-adapter-upsert"

// DefaultExternalIDField is used when a command names none.
const DefaultExternalIDField = "Referral_Identifier__c"

// CodeInvalidCommand is the error code of results for commands the adapter
// refuses before calling Salesforce (no referral id, fields that are not a
// JSON object). It is not a Salesforce code, so it cannot be mistaken for
// one.
const CodeInvalidCommand = "COSELL_INVALID_COMMAND"

// Spec returns the durable consumer of upsert commands. concurrency is the
// number of commands in flight per replica; each waits in the batcher for
// its batch, so it must exceed the batch size for batches to fill (twice
// the batch size lets one batch fill while another is being written).
func Spec(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamSalesforceCommands,
		Durable:        Durable,
		FilterSubjects: []string{bus.SubjectUpsertOpportunity},
		Concurrency:    concurrency,
		MaxAckPending:  2 * concurrency,
		AckWait:        time.Minute,
		MaxDeliver:     8,
		Backoff:        bus.Backoff{Initial: time.Second, Max: 2 * time.Minute},
	}
}

// Submitter runs upserts; *upsert.Batcher is one.
type Submitter interface {
	Submit(ctx context.Context, cmd upsert.Command) (upsert.Outcome, error)
}

// Publisher publishes results; *bus.Conn is one.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, m proto.Message) error
}

// Handler returns the bus handler of upsert commands.
func Handler(s Submitter, p Publisher, log *slog.Logger) bus.Handler {
	return func(ctx context.Context, m *bus.Msg) error {
		var cmd cosellv1.UpsertOpportunityCommand
		if err := m.Unmarshal(&cmd); err != nil {
			return err
		}
		span := trace.SpanFromContext(ctx)
		span.SetAttributes(upsert.AttrReferralID.String(cmd.GetReferralId()))
		if cmd.GetCommandId() == "" {
			cmd.CommandId = m.MsgID
		}

		uc, err := toCommand(&cmd, span.SpanContext())
		var res *cosellv1.SalesforceResult
		if err != nil {
			res = &cosellv1.SalesforceResult{
				CommandId: cmd.GetCommandId(), ReferralId: cmd.GetReferralId(),
				Outcome: cosellv1.Outcome_OUTCOME_REJECTED, ErrorCode: CodeInvalidCommand, ErrorMessage: err.Error(),
			}
		} else {
			out, err := s.Submit(ctx, uc)
			if err != nil {
				return err
			}
			if out.Batch.IsValid() {
				span.AddLink(trace.Link{SpanContext: out.Batch})
			}
			if out.Kind == upsert.RetryLater {
				return bus.RetryAfter(fmt.Errorf("upsert %s deferred: %w", cmd.GetCommandId(), out.Err), deferral(out.RetryAfter, m.Deliveries))
			}
			res = toResult(&cmd, out)
		}
		if res.GetOpportunityId() != "" {
			span.SetAttributes(upsert.AttrOpportunityID.String(res.GetOpportunityId()))
		}
		if err := p.Publish(ctx, bus.SubjectSalesforceResult, resultMsgID(res), res); err != nil {
			return err
		}
		logResult(ctx, log, res)
		return nil
	}
}

// maxDeferral caps the delay of a deferred command.
const maxDeferral = time.Hour

// deferral doubles the suggested delay with every delivery, up to
// maxDeferral, so a command waiting out an exhausted API budget spends its
// limited deliveries over hours rather than minutes before it is parked.
func deferral(suggested time.Duration, deliveries uint64) time.Duration {
	d := max(suggested, time.Second)
	for i := uint64(1); i < deliveries && d < maxDeferral; i++ {
		d *= 2
	}
	return min(d, maxDeferral)
}

// toCommand validates a command and turns it into the batcher's form.
func toCommand(c *cosellv1.UpsertOpportunityCommand, sc trace.SpanContext) (upsert.Command, error) {
	if strings.TrimSpace(c.GetReferralId()) == "" {
		return upsert.Command{}, errors.New("the command has no referral id")
	}
	if strings.Contains(c.GetReferralId(), "/") {
		return upsert.Command{}, fmt.Errorf("referral id %q contains '/', which an External ID value cannot", c.GetReferralId())
	}
	field := c.GetExternalIdField()
	if field == "" {
		field = DefaultExternalIDField
	}
	if !sfclient.ValidAPIName(field) {
		return upsert.Command{}, fmt.Errorf("external id field %q is not a field API name", field)
	}
	fields := map[string]json.RawMessage{}
	if len(c.GetFieldsJson()) > 0 {
		if err := json.Unmarshal(c.GetFieldsJson(), &fields); err != nil {
			return upsert.Command{}, fmt.Errorf("fields_json is not a JSON object: %w", err)
		}
	}
	for k := range fields {
		if !sfclient.ValidAPIName(k) {
			return upsert.Command{}, fmt.Errorf("fields_json key %q is not a field API name", k)
		}
	}
	out := upsert.Command{
		ID:              c.GetCommandId(),
		ReferralID:      c.GetReferralId(),
		ExternalIDField: field,
		Fields:          fields,
		Span:            sc,
	}
	if ts := c.GetSourceUpdatedAt(); ts != nil {
		out.SourceUpdatedAt = ts.AsTime()
	}
	if ts := c.GetExpectedSystemModstamp(); ts != nil {
		out.ExpectedSystemModstamp = ts.AsTime()
	}
	if a := c.GetAccount(); a != nil && strings.TrimSpace(a.GetName()) != "" {
		cust := &accounts.Customer{
			Name: a.GetName(), Country: a.GetCountry(), PostalCode: a.GetPostalCode(),
			City: a.GetCity(), State: a.GetState(), Street: a.GetStreet(),
		}
		if len(a.GetFieldsJson()) > 0 {
			if err := json.Unmarshal(a.GetFieldsJson(), &cust.Fields); err != nil {
				return upsert.Command{}, fmt.Errorf("account fields_json is not a JSON object: %w", err)
			}
		}
		out.Customer = cust
	}
	return out, nil
}

// toResult builds the result of a decided command.
func toResult(c *cosellv1.UpsertOpportunityCommand, o upsert.Outcome) *cosellv1.SalesforceResult {
	res := &cosellv1.SalesforceResult{
		CommandId:     c.GetCommandId(),
		ReferralId:    c.GetReferralId(),
		OpportunityId: o.OpportunityID,
		Created:       o.Created,
		AccountId:     o.AccountID,
	}
	switch o.Kind {
	case upsert.OK:
		res.Outcome = cosellv1.Outcome_OUTCOME_OK
		if o.Observed != nil {
			res.Observed = o.Observed.Message(time.Now())
			res.ObservedMsgId = o.Observed.MsgID()
		}
		return res
	case upsert.Rejected:
		res.Outcome = cosellv1.Outcome_OUTCOME_REJECTED
	default:
		res.Outcome = cosellv1.Outcome_OUTCOME_FAILED
	}
	if len(o.Errors) > 0 {
		res.ErrorCode = o.Errors[0].Code
		msgs := make([]string, 0, len(o.Errors))
		seen := map[string]bool{}
		for _, e := range o.Errors {
			msgs = append(msgs, e.Message)
			for _, f := range e.Fields {
				if !seen[f] {
					seen[f] = true
					res.ErrorFields = append(res.ErrorFields, f)
				}
			}
		}
		res.ErrorMessage = strings.Join(msgs, "; ")
	} else if o.Err != nil {
		res.ErrorMessage = o.Err.Error()
	}
	return res
}

// resultMsgID derives the result's Msg-Id from the command and what
// happened, so a redelivered command whose result was already published is
// dropped by JetStream, while a different outcome (a failure, later a
// success) is still published.
func resultMsgID(r *cosellv1.SalesforceResult) string {
	return "sf-result:" + r.GetCommandId() + ":" + strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "OUTCOME_")) + ":" + r.GetOpportunityId()
}

// logResult logs failures and rejections (with Salesforce's code and
// message, never field values) and successes at debug level.
func logResult(ctx context.Context, log *slog.Logger, r *cosellv1.SalesforceResult) {
	switch r.GetOutcome() {
	case cosellv1.Outcome_OUTCOME_OK:
		log.DebugContext(ctx, "opportunity upserted", "command_id", r.GetCommandId(), "referral_id", r.GetReferralId(),
			"opportunity_id", r.GetOpportunityId(), "created", r.GetCreated())
	default:
		log.WarnContext(ctx, "opportunity not upserted", "command_id", r.GetCommandId(), "referral_id", r.GetReferralId(),
			"outcome", r.GetOutcome().String(), "error_code", r.GetErrorCode(), "error", r.GetErrorMessage(),
			"fields", r.GetErrorFields())
	}
}
