// Package command executes the mapper's writes to Partner Center: it
// consumes PartnerCenterCommand (cmd.partnercenter.v1), creates or patches
// the referral, and answers with a PartnerCenterResult
// (result.partnercenter.v1).
//
// Creates are idempotent whatever happens around them. A command already
// executed is answered from its record in Postgres; otherwise, under a
// per-opportunity lock, the referral is looked up by externalReferenceId
// before every POST, and a POST whose answer was lost (timeout, transport
// failure, server error) is never repeated before that lookup. Patches
// carry the mapper's If-Match; a 412 comes back REJECTED with the current
// referral so the mapper decides again.
package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
)

// Durable is the command consumer shared by the adapter's replicas.
const Durable = "partnercenter-adapter-commands"

// MaxDeliver is how many deliveries a command gets. A command still failing
// for a reason unrelated to the record (throttling, outage, credentials) on
// the last one is answered FAILED instead of being retried again.
const MaxDeliver = 6

// ErrorCodeInvalidCommand is the result's error_code for a command the
// adapter refuses before calling Partner Center (no external reference, a
// body whose externalReferenceId contradicts it, a patch that is not a
// JSON array).
const ErrorCodeInvalidCommand = "invalidCommand"

// ErrorCodePreconditionFailed is Partner Center's code for a 412.
const ErrorCodePreconditionFailed = "preconditionFailed"

// Span attributes. The referral id attribute is pcclient's, so a
// referral's calls and commands are found by one key.
const (
	AttrOpportunityID = attribute.Key("cosell.opportunity_id")
	AttrCommandID     = attribute.Key("cosell.command_id")
	AttrKind          = attribute.Key("cosell.command.kind")
	AttrOutcome       = attribute.Key("cosell.outcome")
	AttrCreated       = attribute.Key("cosell.created")
	AttrVia           = attribute.Key("cosell.command.via")
)

// How a result was reached (attribute cosell.command.via, metric label
// via).
const (
	viaRecord     = "record"     // an earlier delivery's result, from Postgres
	viaLookup     = "lookup"     // the referral already existed
	viaPost       = "post"       // this delivery's POST
	viaPatch      = "patch"      // this delivery's PATCH
	viaValidation = "validation" // refused before calling Partner Center
	viaRetries    = "retries"    // FAILED after the retry budget
)

const instrumentationName = "github.com/cosell/cosell/services/partnercenter-adapter/internal/command"

// PartnerCenter is the part of pcclient.Client the commands need.
type PartnerCenter interface {
	FindByExternalReference(ctx context.Context, id string) ([]pcclient.Referral, error)
	CreateReferral(ctx context.Context, body []byte, externalReferenceID string) (pcclient.Referral, error)
	PatchReferral(ctx context.Context, id string, ops []byte, ifMatch string) (pcclient.PatchResult, error)
	GetReferral(ctx context.Context, id string) (pcclient.Referral, error)
}

// Records keeps the idempotency record of each command (pgstore.Store).
type Records interface {
	Command(ctx context.Context, id string) (pgstore.Command, bool, error)
	NotePost(ctx context.Context, c pgstore.Command) error
	CompleteCommand(ctx context.Context, c pgstore.Command) (pgstore.Command, error)
	FailCommand(ctx context.Context, c pgstore.Command) error
	LockCreate(ctx context.Context, externalReferenceID string) (release func(), err error)
}

// Publisher publishes a message durably with a Msg-Id (bus.Conn).
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, m proto.Message) error
}

// Config configures an Executor. Zero values take the defaults.
type Config struct {
	// CreateAttempts bounds the POSTs of one delivery, each preceded by a
	// lookup (default 3); after that the command goes back to the bus.
	CreateAttempts int
	// BackoffInitial is the pause after a POST whose answer was lost
	// (default 250ms), doubling up to BackoffMax (default 4s), jittered.
	BackoffInitial, BackoffMax time.Duration
	// MaxDeliver is the delivery on which a failing command is answered
	// FAILED (default MaxDeliver); it must match the consumer's.
	MaxDeliver int
	// Created, when set, is told the id of each referral a create of this
	// executor made (observe.OwnCreates.Add), before its result is
	// published.
	Created func(referralID string)
	// Logger, TracerProvider and Meter default to discarding no-ops.
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	Meter          metric.Meter
}

// Executor executes commands.
type Executor struct {
	pc       PartnerCenter
	records  Records
	pub      Publisher
	cfg      Config
	log      *slog.Logger
	tracer   trace.Tracer
	commands metric.Int64Counter
	duration metric.Float64Histogram
}

// New returns an Executor.
func New(pc PartnerCenter, records Records, pub Publisher, cfg Config) (*Executor, error) {
	if cfg.CreateAttempts <= 0 {
		cfg.CreateAttempts = 3
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = 250 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffInitial {
		cfg.BackoffMax = max(4*time.Second, cfg.BackoffInitial)
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = MaxDeliver
	}
	e := &Executor{pc: pc, records: records, pub: pub, cfg: cfg, log: cfg.Logger}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	e.tracer = tp.Tracer(instrumentationName)
	if cfg.Meter != nil {
		var err error
		if e.commands, err = cfg.Meter.Int64Counter("partnercenter_adapter.commands",
			metric.WithDescription("PartnerCenterCommands answered, by kind (create, patch), outcome (OK, REJECTED, FAILED) and via (post, lookup, patch, record, validation, retries)")); err != nil {
			return nil, fmt.Errorf("command: metric: %w", err)
		}
		if e.duration, err = cfg.Meter.Float64Histogram("partnercenter_adapter.command.duration", metric.WithUnit("s"),
			metric.WithDescription("time to answer one delivery of a PartnerCenterCommand, by kind")); err != nil {
			return nil, fmt.Errorf("command: metric: %w", err)
		}
	}
	return e, nil
}

// Spec returns the consumer's declaration; concurrency bounds commands in
// flight. A create can take several Partner Center calls (lookup, POST,
// lookup again), hence the longer AckWait.
func Spec(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamPartnerCenterCommands,
		Durable:        Durable,
		FilterSubjects: []string{bus.SubjectPartnerCenterCommand},
		Concurrency:    concurrency,
		MaxDeliver:     MaxDeliver,
		AckWait:        time.Minute,
		Backoff:        bus.Backoff{Initial: time.Second, Max: 30 * time.Second},
	}
}

// ResultMsgID is the Msg-Id of a result: the command and its outcome, so a
// command answered twice the same way is stored once, and a FAILED answer
// does not hide a later OK of a replay.
func ResultMsgID(r *cosellv1.PartnerCenterResult) string {
	return "pc-result:" + r.GetCommandId() + ":" + OutcomeName(r.GetOutcome())
}

// OutcomeName is the short name of an outcome: OK, REJECTED, FAILED.
func OutcomeName(o cosellv1.Outcome) string {
	return strings.TrimPrefix(o.String(), "OUTCOME_")
}

// kindOf names a command's action.
func kindOf(c *cosellv1.PartnerCenterCommand) string {
	switch c.GetAction().(type) {
	case *cosellv1.PartnerCenterCommand_Create:
		return pgstore.KindCreate
	case *cosellv1.PartnerCenterCommand_Patch:
		return pgstore.KindPatch
	default:
		return "unknown"
	}
}

// Handle is the bus.Handler of cmd.partnercenter.v1. It returns nil once
// the result is recorded (when final) and published; an error sends the
// command back to the bus for a later delivery, except on the last
// delivery, which answers FAILED.
func (e *Executor) Handle(ctx context.Context, m *bus.Msg) error {
	var cmd cosellv1.PartnerCenterCommand
	if err := m.Unmarshal(&cmd); err != nil {
		return err
	}
	if cmd.GetCommandId() == "" {
		return bus.Permanent(errors.New("partner center command without command_id"))
	}
	kind := kindOf(&cmd)
	ctx, span := e.tracer.Start(ctx, "partnercenter-adapter "+kind, trace.WithAttributes(
		AttrCommandID.String(cmd.GetCommandId()),
		AttrKind.String(kind),
		AttrOpportunityID.String(cmd.GetOpportunityId()),
	))
	defer span.End()
	if id := cmd.GetPatch().GetReferralId(); id != "" {
		span.SetAttributes(pcclient.AttrReferralID.String(id))
	}
	start := time.Now()
	defer func() {
		if e.duration != nil {
			e.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("kind", kind)))
		}
	}()

	res, via, err := e.Execute(ctx, &cmd)
	if err != nil {
		span.RecordError(err)
		if m.Deliveries < uint64(e.cfg.MaxDeliver) {
			span.SetStatus(codes.Error, "will retry")
			e.log.WarnContext(ctx, "partner center command failed; will retry", "command_id", cmd.GetCommandId(),
				"kind", kind, "opportunity_id", cmd.GetOpportunityId(), "delivery", m.Deliveries, "err", err)
			return retryable(err)
		}
		// The retry budget is spent: answer FAILED, on a context that
		// survives a handler timeout, so the mapper hears of it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		res, via = e.failed(ctx, &cmd, err), viaRetries
		e.log.ErrorContext(ctx, "partner center command failed after its retry budget; answered FAILED", "command_id", cmd.GetCommandId(),
			"kind", kind, "opportunity_id", cmd.GetOpportunityId(), "deliveries", m.Deliveries, "err", err)
	}
	span.SetAttributes(AttrOutcome.String(OutcomeName(res.GetOutcome())), AttrCreated.Bool(res.GetCreated()), AttrVia.String(via))
	if res.GetReferralId() != "" {
		span.SetAttributes(pcclient.AttrReferralID.String(res.GetReferralId()))
	}
	if res.GetOutcome() != cosellv1.Outcome_OUTCOME_OK {
		span.SetStatus(codes.Error, OutcomeName(res.GetOutcome())+": "+res.GetErrorCode())
	}
	if err := e.pub.Publish(ctx, bus.SubjectPartnerCenterResult, ResultMsgID(res), res); err != nil {
		return fmt.Errorf("publish result of command %s: %w", cmd.GetCommandId(), err)
	}
	if e.commands != nil {
		e.commands.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind),
			attribute.String("outcome", OutcomeName(res.GetOutcome())), attribute.String("via", via)))
	}
	e.log.InfoContext(ctx, "partner center command answered", "command_id", cmd.GetCommandId(), "kind", kind,
		"opportunity_id", cmd.GetOpportunityId(), "referral_id", res.GetReferralId(), "outcome", OutcomeName(res.GetOutcome()),
		"created", res.GetCreated(), "via", via, "http_status", res.GetHttpStatus(), "error_code", res.GetErrorCode())
	return nil
}

// retryable keeps Partner Center's Retry-After as the redelivery delay.
func retryable(err error) error {
	var ae *pcclient.APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return bus.RetryAfter(err, ae.RetryAfter)
	}
	return err
}

// Execute runs cmd, or finds the result of an earlier run, and returns
// the final result (OK or REJECTED, already recorded) and how it was
// reached. An error means the outcome is not known yet (throttling,
// outage, a lost answer, our own database): the command must run again.
func (e *Executor) Execute(ctx context.Context, cmd *cosellv1.PartnerCenterCommand) (*cosellv1.PartnerCenterResult, string, error) {
	rec, found, err := e.records.Command(ctx, cmd.GetCommandId())
	if err != nil {
		return nil, "", err
	}
	if found && rec.Done() {
		res, err := decodeResult(rec)
		return res, viaRecord, err
	}
	switch a := cmd.GetAction().(type) {
	case *cosellv1.PartnerCenterCommand_Create:
		return e.create(ctx, cmd, a.Create)
	case *cosellv1.PartnerCenterCommand_Patch:
		return e.patch(ctx, cmd, a.Patch)
	default:
		res, err := e.complete(ctx, cmd, rejectedByUs(cmd, "the command has neither create nor patch"))
		return res, viaValidation, err
	}
}

// create runs a create command under the per-opportunity lock: look up,
// and POST only when nothing carries the opportunity's id.
func (e *Executor) create(ctx context.Context, cmd *cosellv1.PartnerCenterCommand, c *cosellv1.CreateReferral) (*cosellv1.PartnerCenterResult, string, error) {
	extRef := c.GetExternalReferenceId()
	if extRef == "" {
		res, err := e.complete(ctx, cmd, rejectedByUs(cmd, "create command without external_reference_id"))
		return res, viaValidation, err
	}
	body, err := withExternalReference(c.GetBodyJson(), extRef)
	if err != nil {
		res, err := e.complete(ctx, cmd, rejectedByUs(cmd, err.Error()))
		return res, viaValidation, err
	}

	release, err := e.records.LockCreate(ctx, extRef)
	if err != nil {
		return nil, "", err
	}
	defer release()
	// Another delivery of this command may have finished while we waited.
	rec, found, err := e.records.Command(ctx, cmd.GetCommandId())
	if err != nil {
		return nil, "", err
	}
	if found && rec.Done() {
		res, err := decodeResult(rec)
		return res, viaRecord, err
	}
	// A POST this command sent earlier, whose answer never reached a
	// commit, makes the referral found below this command's creation.
	posted := found && rec.PostAttempts > 0

	for attempt := 1; ; attempt++ {
		existing, err := e.pc.FindByExternalReference(ctx, extRef)
		if err != nil {
			return nil, "", fmt.Errorf("look up referral of opportunity %s: %w", extRef, err)
		}
		if len(existing) > 0 {
			ref := existing[0]
			if len(existing) > 1 {
				ids := make([]string, len(existing))
				for i, r := range existing {
					ids[i] = r.ID
				}
				e.log.WarnContext(ctx, "several referrals carry one opportunity id; using the oldest", "opportunity_id", extRef, "referral_ids", ids)
			}
			via := viaLookup
			if posted {
				via = viaPost
				e.log.InfoContext(ctx, "the referral of a POST whose answer was lost was found by its externalReferenceId",
					"command_id", cmd.GetCommandId(), "opportunity_id", extRef, "referral_id", ref.ID)
			}
			if posted {
				e.created(ref.ID)
			}
			res := okResult(cmd, ref, http.StatusOK, posted)
			res, err := e.complete(ctx, cmd, res)
			return res, via, err
		}
		if err := e.records.NotePost(ctx, e.record(ctx, cmd, nil)); err != nil {
			return nil, "", err
		}
		posted = true
		ref, err := e.pc.CreateReferral(ctx, body, extRef)
		if err == nil {
			e.created(ref.ID)
			res, err := e.complete(ctx, cmd, okResult(cmd, ref, http.StatusCreated, true))
			return res, viaPost, err
		}
		if ae, ok := refusal(err); ok {
			res, err := e.complete(ctx, cmd, rejected(cmd, ae, "", nil))
			return res, viaPost, err
		}
		// Partner Center may have created the referral and lost the
		// answer: the next round (or delivery) looks it up first.
		if attempt >= e.cfg.CreateAttempts || ctx.Err() != nil {
			return nil, "", fmt.Errorf("create referral for opportunity %s: %w", extRef, err)
		}
		delay := backoff(e.cfg.BackoffInitial, e.cfg.BackoffMax, attempt)
		var ae *pcclient.APIError
		if errors.As(err, &ae) && ae.RetryAfter > delay {
			delay = ae.RetryAfter
		}
		e.log.WarnContext(ctx, "create POST failed or its answer was lost; looking the referral up before any new POST",
			"command_id", cmd.GetCommandId(), "opportunity_id", extRef, "attempt", attempt, "retry_in", delay.String(), "err", err)
		if err := sleep(ctx, delay); err != nil {
			return nil, "", fmt.Errorf("create referral for opportunity %s: %w", extRef, err)
		}
	}
}

// created reports a referral this executor's POST made.
func (e *Executor) created(referralID string) {
	if e.cfg.Created != nil {
		e.cfg.Created(referralID)
	}
}

// patch runs a patch command.
func (e *Executor) patch(ctx context.Context, cmd *cosellv1.PartnerCenterCommand, p *cosellv1.PatchReferral) (*cosellv1.PartnerCenterResult, string, error) {
	id := p.GetReferralId()
	if id == "" || strings.ContainsAny(id, "/?#") {
		res, err := e.complete(ctx, cmd, rejectedByUs(cmd, fmt.Sprintf("patch command with an invalid referral_id %q", id)))
		return res, viaValidation, err
	}
	ops := bytes.TrimSpace(p.GetOpsJson())
	var list []json.RawMessage
	if err := json.Unmarshal(ops, &list); err != nil || len(list) == 0 {
		res, err := e.complete(ctx, cmd, rejectedByUs(cmd, "ops_json is not a non-empty JSON Patch array"))
		return res, viaValidation, err
	}

	out, err := e.pc.PatchReferral(ctx, id, ops, p.GetIfMatch())
	if err != nil {
		ae, ok := refusal(err)
		if !ok {
			return nil, "", fmt.Errorf("patch referral %s: %w", id, err)
		}
		var current *pcclient.Referral
		if ae.Status == http.StatusPreconditionFailed {
			// The referral changed since the mapper decided: send it the
			// current one so it decides again.
			ref, err := e.pc.GetReferral(ctx, id)
			switch {
			case err == nil:
				current = &ref
			case pcclient.IsNotFound(err):
				// Gone meanwhile: the 412 is all there is to say.
			default:
				return nil, "", fmt.Errorf("read referral %s after 412: %w", id, err)
			}
		}
		res, err := e.complete(ctx, cmd, rejected(cmd, ae, id, current))
		return res, viaPatch, err
	}
	ref := out.Referral
	if !out.Full {
		// 204: the write happened; read the referral for its new state.
		// A failed read must not repeat the PATCH, so the answer goes
		// without the document (the webhook brings it).
		fresh, err := e.pc.GetReferral(ctx, id)
		if err != nil {
			e.log.WarnContext(ctx, "referral patched but not readable afterwards; answering without it", "referral_id", id, "err", err)
			res := &cosellv1.PartnerCenterResult{CommandId: cmd.GetCommandId(), OpportunityId: cmd.GetOpportunityId(), ReferralId: id,
				Outcome: cosellv1.Outcome_OUTCOME_OK, HttpStatus: int32(out.Status), Etag: ref.ETag}
			res, err := e.complete(ctx, cmd, res)
			return res, viaPatch, err
		}
		ref = fresh
	}
	res, err := e.complete(ctx, cmd, okResult(cmd, ref, out.Status, false))
	return res, viaPatch, err
}

// complete records res as the command's final result and returns the
// result stored, which is an earlier delivery's when that one finished
// first.
func (e *Executor) complete(ctx context.Context, cmd *cosellv1.PartnerCenterCommand, res *cosellv1.PartnerCenterResult) (*cosellv1.PartnerCenterResult, error) {
	rec := e.record(ctx, cmd, res)
	data, err := proto.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode result of command %s: %w", cmd.GetCommandId(), err)
	}
	rec.Result = data
	stored, err := e.records.CompleteCommand(ctx, rec)
	if err != nil {
		return nil, err
	}
	return decodeResult(stored)
}

// failed answers FAILED for a command whose retry budget is spent, and
// notes it on the record (which stays open, so a replay runs again).
func (e *Executor) failed(ctx context.Context, cmd *cosellv1.PartnerCenterCommand, cause error) *cosellv1.PartnerCenterResult {
	res := &cosellv1.PartnerCenterResult{
		CommandId: cmd.GetCommandId(), OpportunityId: cmd.GetOpportunityId(),
		ReferralId: cmd.GetPatch().GetReferralId(), Outcome: cosellv1.Outcome_OUTCOME_FAILED,
		ErrorMessage: cause.Error(),
	}
	var ae *pcclient.APIError
	if errors.As(cause, &ae) {
		res.HttpStatus, res.ErrorCode, res.ErrorMessage = int32(ae.Status), ae.Code, ae.Message
	}
	if err := e.records.FailCommand(ctx, e.record(ctx, cmd, res)); err != nil {
		e.log.WarnContext(ctx, "could not record the failure of a command", "command_id", cmd.GetCommandId(), "err", err)
	}
	return res
}

// record is the idempotency record of cmd with res (nil before a result).
func (e *Executor) record(ctx context.Context, cmd *cosellv1.PartnerCenterCommand, res *cosellv1.PartnerCenterResult) pgstore.Command {
	rec := pgstore.Command{
		ID: cmd.GetCommandId(), Kind: kindOf(cmd), OpportunityID: cmd.GetOpportunityId(),
		ExternalReferenceID: cmd.GetCreate().GetExternalReferenceId(), ReferralID: cmd.GetPatch().GetReferralId(),
	}
	if rec.Kind != pgstore.KindCreate && rec.Kind != pgstore.KindPatch {
		rec.Kind = pgstore.KindPatch // an empty action is recorded as a refused patch
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		rec.TraceID = sc.TraceID().String()
	}
	if res != nil {
		if res.GetReferralId() != "" {
			rec.ReferralID = res.GetReferralId()
		}
		rec.Outcome, rec.Created = OutcomeName(res.GetOutcome()), res.GetCreated()
		rec.HTTPStatus, rec.ErrorCode, rec.ErrorMessage = int(res.GetHttpStatus()), res.GetErrorCode(), res.GetErrorMessage()
	}
	return rec
}

func decodeResult(rec pgstore.Command) (*cosellv1.PartnerCenterResult, error) {
	var res cosellv1.PartnerCenterResult
	if err := proto.Unmarshal(rec.Result, &res); err != nil {
		return nil, fmt.Errorf("decode stored result of command %s: %w", rec.ID, err)
	}
	return &res, nil
}

// okResult is the result of a write that Partner Center accepted.
func okResult(cmd *cosellv1.PartnerCenterCommand, ref pcclient.Referral, status int, created bool) *cosellv1.PartnerCenterResult {
	res := &cosellv1.PartnerCenterResult{
		CommandId: cmd.GetCommandId(), OpportunityId: cmd.GetOpportunityId(), ReferralId: ref.ID,
		Created: created, Outcome: cosellv1.Outcome_OUTCOME_OK, HttpStatus: int32(status),
		Etag: ref.ETag, ReferralJson: ref.Raw,
	}
	if !ref.UpdatedAt.IsZero() {
		res.UpdatedAt = timestamppb.New(ref.UpdatedAt)
	}
	return res
}

// rejected is the result of a write Partner Center refused; current, when
// set, is the referral as it is now.
func rejected(cmd *cosellv1.PartnerCenterCommand, ae *pcclient.APIError, referralID string, current *pcclient.Referral) *cosellv1.PartnerCenterResult {
	res := &cosellv1.PartnerCenterResult{
		CommandId: cmd.GetCommandId(), OpportunityId: cmd.GetOpportunityId(), ReferralId: referralID,
		Outcome: cosellv1.Outcome_OUTCOME_REJECTED, HttpStatus: int32(ae.Status),
		ErrorCode: ae.Code, ErrorMessage: ae.Message,
	}
	if ae.Status == http.StatusPreconditionFailed && res.ErrorCode == "" {
		res.ErrorCode = ErrorCodePreconditionFailed
	}
	if current != nil {
		res.ReferralId, res.Etag, res.ReferralJson = current.ID, current.ETag, current.Raw
		res.UpdatedAt = timestamppb.New(current.UpdatedAt)
	}
	return res
}

// rejectedByUs is the result of a command the adapter refuses itself.
func rejectedByUs(cmd *cosellv1.PartnerCenterCommand, msg string) *cosellv1.PartnerCenterResult {
	return &cosellv1.PartnerCenterResult{
		CommandId: cmd.GetCommandId(), OpportunityId: cmd.GetOpportunityId(), ReferralId: cmd.GetPatch().GetReferralId(),
		Outcome: cosellv1.Outcome_OUTCOME_REJECTED, ErrorCode: ErrorCodeInvalidCommand, ErrorMessage: msg,
	}
}

// refusal reports whether err is Partner Center refusing the request
// itself (400, 403, 404, 409, 412, …): retrying the same request cannot
// succeed. Throttling, server errors, timeouts and a token Partner Center
// keeps refusing (401, a credentials problem an operator can fix) are not.
func refusal(err error) (*pcclient.APIError, bool) {
	var ae *pcclient.APIError
	if !errors.As(err, &ae) {
		return nil, false
	}
	if ae.Temporary() || ae.Status == http.StatusUnauthorized || ae.Status < 400 {
		return nil, false
	}
	return ae, true
}

// withExternalReference returns body with externalReferenceId = id: the
// lookup before a POST finds the referral by that field, so a body
// without it gets it, and one that names another record is refused.
// Partner Center binds property names case-insensitively, so any spelling
// counts.
func withExternalReference(body []byte, id string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return nil, errors.New("body_json is not a JSON object")
	}
	for k, v := range doc {
		if !strings.EqualFold(k, "externalReferenceId") {
			continue
		}
		var got *string
		if err := json.Unmarshal(v, &got); err != nil {
			return nil, fmt.Errorf("body_json %s is not a string", k)
		}
		if got == nil || *got == "" {
			delete(doc, k)
			continue
		}
		if *got != id {
			return nil, fmt.Errorf("body_json %s %q differs from external_reference_id %q", k, *got, id)
		}
		return body, nil // as sent
	}
	v, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	doc["externalReferenceId"] = v
	return json.Marshal(doc)
}

// backoff is the jittered delay after attempt n: between half and all of
// initial·2^(n-1), capped at maxDelay.
func backoff(initial, maxDelay time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
