package syncer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/twoway"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// Command id prefixes. Results on result.salesforce.v1 are told apart by
// them: upserts belong to the inbound direction, write-backs to the
// outbound one.
const (
	prefixUpsert    = "sf-upsert:"
	prefixWriteback = "sf-writeback:"
	prefixCreate    = "pc-create:"
	prefixPatch     = "pc-patch:"
)

// auditLimit is the Audit field's size in characters (Audit__c is a
// 131,072-character long text area).
const auditLimit = 131072

// syncDoc is what the link's sync column holds.
type syncDoc struct {
	// State is the two-way state of the synced fields.
	State twoway.State `json:"state"`
	// PCStatus is the partner's referral's last seen "status/substatus",
	// to tell lifecycle moves made in Partner Center (expiry, close).
	PCStatus string `json:"pcStatus,omitempty"`
}

// message is a command to publish after the commit.
type message struct {
	subject, id string
	msg         proto.Message
}

// decision is the work done on one locked link for one message: the
// observations applied to its two-way state, the commands to publish after
// the commit, and the audit entries saved with the link.
type decision struct {
	s    *Service
	link *linkstore.Link
	doc  syncDoc
	opp  *mapping.Opportunity
	ref  *mapping.Referral
	// trigger is the id of the message being handled; ids of commands it
	// causes derive from it, so a redelivery derives the same ones.
	trigger string
	tid     string
	audits  []linkstore.Audit
	seller  bool
	// sfFields are the opportunity fields to write in one command,
	// sfTrack the synced ones among them (canonical), sfID an id to use
	// instead of a derived one, sfSource the source time of the change.
	sfFields map[string]any
	sfTrack  map[string]string
	sfID     string
	sfSource *timestamppb.Timestamp
	publish  []message
	// applied reports whether a command was produced.
	applied bool
}

// load prepares a decision on a locked link (its snapshot and record
// read).
func (s *Service) load(link *linkstore.Link, trigger, tid string) (*decision, error) {
	d := &decision{s: s, link: link, trigger: trigger, tid: tid, sfFields: map[string]any{}, sfTrack: map[string]string{}}
	if len(link.Sync) > 2 {
		if err := json.Unmarshal(link.Sync, &d.doc); err != nil {
			return nil, fmt.Errorf("link %d: sync state: %w", link.ID, err)
		}
	}
	if len(link.SFRecord) > 0 {
		o, err := s.opportunities.get(link.SFRecord)
		if err != nil {
			return nil, fmt.Errorf("link %d: stored opportunity: %w", link.ID, err)
		}
		d.opp = &o
	}
	if len(link.Snapshot) > 0 {
		var ev cosellv1.ReferralObserved
		if err := proto.Unmarshal(link.Snapshot, &ev); err != nil {
			return nil, fmt.Errorf("link %d: stored snapshot: %w", link.ID, err)
		}
		if r, err := s.referrals.get(ev.GetReferralJson()); err == nil {
			d.ref = &r
		}
	}
	return d, nil
}

// audit adds an entry; seller entries also go to the opportunity's Audit
// field.
func (d *decision) audit(kind, msg string, details map[string]any, seller bool) {
	d.audits = append(d.audits, linkstore.Audit{ReferralID: d.link.ReferralID, OpportunityID: d.link.OpportunityID,
		Kind: kind, Message: msg, Details: details, TraceID: d.tid, Seller: seller})
	d.seller = d.seller || seller
}

func (d *decision) owner(field string) twoway.Owner {
	return twoway.Owner(d.s.mapping.Ownership.Of(field))
}

func canonAll(values map[string]any) map[string]string {
	out := make(map[string]string, len(values))
	for k, v := range values {
		out[k] = mapping.Canon(v)
	}
	return out
}

// observeSF applies an opportunity observation to the two-way state.
func (d *decision) observeSF(o mapping.Opportunity, at time.Time) twoway.Outcome {
	d.opp = &o
	return d.doc.State.Observe(twoway.Salesforce, canonAll(d.s.mapping.SFValues(o)), at, d.owner)
}

// observePC applies a snapshot of the partner's referral, and audits the
// lifecycle moves Partner Center made (expiry, a close, an acceptance).
func (d *decision) observePC(r mapping.Referral, at time.Time) twoway.Outcome {
	d.ref = &r
	out := d.doc.State.Observe(twoway.PartnerCenter, canonAll(d.s.mapping.PCValues(r)), at, d.owner)
	// A status we set ourselves comes back as an echo of the stage.
	ours := false
	if lc := d.s.mapping.Lifecycle; lc != nil {
		for _, f := range out.Echoes {
			ours = ours || strings.EqualFold(f, lc.StageField)
		}
	}
	d.notePCStatus(r, !ours)
	return out
}

// notePCStatus records the referral's status and, when announce is set,
// audits a move made in Partner Center.
func (d *decision) notePCStatus(r mapping.Referral, announce bool) {
	status := r.Text("status") + "/" + r.Text("substatus")
	prev := d.doc.PCStatus
	d.doc.PCStatus = status
	if !announce || prev == "" || prev == status {
		return
	}
	details := map[string]any{"from": prev, "to": status}
	switch status {
	case "Closed/Expired":
		d.audit(KindExpired, "The referral expired in Partner Center without being accepted; the opportunity is closed as lost.", details, true)
	case "Closed/Won", "Closed/Lost", "Closed/Declined":
		msg := "Partner Center closed the referral (" + r.Text("substatus") + ")"
		if reason := r.Text("statusReason"); reason != "" {
			msg += ": " + reason
		}
		d.audit(KindPCClosed, msg+".", details, true)
	}
}

// sfWritable reports whether the mapper may write a synced field to
// Salesforce: the inbound or related rules write it.
func (s *Service) sfWritable(field string) bool {
	for _, r := range s.mapping.Inbound.Fields {
		if r.OnUpdate && strings.EqualFold(r.To, field) {
			return true
		}
	}
	for _, r := range s.mapping.Inbound.Related {
		if strings.EqualFold(r.To, field) {
			return true
		}
	}
	return false
}

// reconcile works out what each side must be sent after the observations,
// and prepares the commands.
func (d *decision) reconcile() {
	if d.link.State != linkstore.StateActive {
		return
	}
	// Salesforce: the fields it will not otherwise hold.
	if d.link.OpportunityID != "" {
		need := d.doc.State.Needs(twoway.Salesforce, d.s.sfWritable)
		for _, k := range sortedKeys(need) {
			d.sfFields[k] = mapping.Uncanon(need[k])
			d.sfTrack[k] = need[k]
		}
	}
	// Partner Center: a patch of what differs, one command at a time.
	if d.link.ReferralID == "" || d.ref == nil || d.opp == nil || d.s.mapping.Outbound == nil {
		return
	}
	if d.link.PCPending() {
		return // its result re-decides
	}
	need := d.doc.State.Needs(twoway.PartnerCenter, func(k string) bool { return d.doc.State.Known(twoway.PartnerCenter, k) })
	if len(need) == 0 {
		return
	}
	overlay := map[string]any{}
	dirty := map[string]bool{}
	for k, v := range need {
		overlay[k] = mapping.Uncanon(v)
		dirty[k] = true
	}
	opp := d.opp.With(overlay)
	plan := d.s.mapping.Patch(opp, *d.ref, dirty)
	for _, p := range plan.Problems {
		d.audit(KindUnmappable, "A change could not be sent to Partner Center: "+p, nil, true)
	}
	if len(plan.Ops) == 0 {
		if plan.Held != "" && d.changedSF() {
			d.audit(KindHeld, "Salesforce changes are not sent to Partner Center yet: "+plan.Held+".", map[string]any{"fields": sortedKeys(need)}, false)
		}
		return
	}
	ops := plan.OpsJSON()
	id := prefixPatch + d.link.ReferralID + ":" + shortHash(string(ops), d.link.PCETag)
	if id == d.link.PCRejectedCommandID {
		return // Partner Center refused exactly this; a new change makes a new patch
	}
	predicted := canonAll(d.s.mapping.PCValues(mapping.ApplyPatch(*d.ref, plan.Ops)))
	d.doc.State.Sent(twoway.PartnerCenter, id, predicted)
	cmd := &cosellv1.PartnerCenterCommand{
		CommandId: id, OpportunityId: d.link.OpportunityID, ProjectionHash: shortHash(string(ops)),
		Action: &cosellv1.PartnerCenterCommand_Patch{Patch: &cosellv1.PatchReferral{
			ReferralId: d.link.ReferralID, OpsJson: ops, IfMatch: d.link.PCETag}},
	}
	if d.link.SFModstamp != nil {
		cmd.SourceUpdatedAt = timestamppb.New(*d.link.SFModstamp)
	}
	d.setPC(cmd)
	details := map[string]any{"commandId": id, "ops": json.RawMessage(ops), "ifMatch": d.link.PCETag}
	msg := fmt.Sprintf("Updating the Partner Center referral from Salesforce (%s).", describeOps(plan))
	d.audit(KindPatchSent, msg, details, false)
}

// changedSF reports whether this decision observed a Salesforce change.
func (d *decision) changedSF() bool { return d.trigger != "" && strings.HasPrefix(d.trigger, "opp:") }

// setPC records cmd as the link's outstanding Partner Center command and
// queues it.
func (d *decision) setPC(cmd *cosellv1.PartnerCenterCommand) {
	b, _ := proto.Marshal(cmd)
	d.link.PCCommandID, d.link.PCCommand = cmd.GetCommandId(), b
	d.publish = append(d.publish, message{bus.SubjectPartnerCenterCommand, cmd.GetCommandId(), cmd})
	d.applied = true
}

// describeOps says in words what a patch changes.
func describeOps(p mapping.PatchPlan) string {
	var parts []string
	for _, path := range sortedKeys(p.Values) {
		if path == "status" || path == "substatus" || path == "statusReason" {
			continue
		}
		parts = append(parts, path)
	}
	if p.Status != nil {
		parts = append(parts, fmt.Sprintf("stage %s %s", p.Status.Stage, p.Status.Action.Verb()))
	}
	return strings.Join(parts, ", ")
}

// finish builds the Salesforce command (with the Audit field when a seller
// entry was added), saves the link with its audit entries and returns the
// commands to publish after the commit.
func (d *decision) finish(ctx context.Context, tx pgx.Tx) ([]message, error) {
	cfg := d.s.mapping
	if d.seller && d.link.OpportunityID != "" && cfg.AuditField != "" && d.link.State != linkstore.StateOrphaned {
		text, err := d.auditText(ctx, tx)
		if err != nil {
			return nil, err
		}
		d.sfFields[cfg.AuditField] = text
	}
	if len(d.sfFields) > 0 && d.link.OpportunityID != "" {
		d.buildSF()
	}
	d.link.Sync = d.encode()
	if err := linkstore.Save(ctx, tx, d.link, d.audits...); err != nil {
		return nil, err
	}
	return d.publish, nil
}

// buildSF turns the fields to write into one command: an upsert by the
// External ID for links that started from a referral (their opportunity
// was created by it), a write-back by Id otherwise.
func (d *decision) buildSF() {
	fields, _ := json.Marshal(d.sfFields)
	l := d.link
	expected := d.expectedModstamp()
	if l.Origin == linkstore.OriginInbound && l.ReferralID != "" {
		id := d.sfID
		if id == "" {
			id = prefixUpsert + l.ReferralID + ":" + shortHash(d.trigger, string(fields))
		}
		cmd := &cosellv1.UpsertOpportunityCommand{CommandId: id, ReferralId: l.ReferralID, ExternalIdField: d.s.mapping.ExternalIDField,
			FieldsJson: fields, ProjectionHash: shortHash(string(fields)), SourceUpdatedAt: d.sfSource, ExpectedSystemModstamp: expected}
		d.setSF(id, bus.SubjectUpsertOpportunity, cmd, expected)
		return
	}
	id := prefixWriteback + l.OpportunityID + ":" + shortHash(d.trigger, string(fields))
	cmd := &cosellv1.SalesforceWriteback{CommandId: id, OpportunityId: l.OpportunityID, FieldsJson: fields, ReferralId: l.ReferralID,
		ExpectedSystemModstamp: expected}
	d.setSF(id, bus.SubjectSalesforceWriteback, cmd, expected)
}

// expectedModstamp makes an update of synced fields conditional on the
// opportunity's SystemModstamp being still the one of the newest
// observation applied (the version this decision read): if a seller saved
// the opportunity meanwhile, the adapter refuses the write
// (PRECONDITION_FAILED) instead of overwriting the save, and the save's
// observation decides again. Nil (unconditional) when no observation was
// applied yet, when no synced field is written, or when the command also
// carries lifecycle write-backs (Referral ID, links, name marker) that a
// later observation would not send again; the Audit field alone does not
// make a write unconditional.
func (d *decision) expectedModstamp() *timestamppb.Timestamp {
	if d.link.SFModstamp == nil || d.link.OpportunityID == "" || len(d.sfTrack) == 0 {
		return nil
	}
	for k := range d.sfFields {
		if _, synced := d.sfTrack[k]; !synced && k != d.s.mapping.AuditField {
			return nil
		}
	}
	return timestamppb.New(*d.link.SFModstamp)
}

// setSF makes cmd the link's Salesforce command; expected is its
// ExpectedSystemModstamp (nil: unconditional).
func (d *decision) setSF(id, subject string, cmd proto.Message, expected *timestamppb.Timestamp) {
	b, _ := proto.Marshal(cmd)
	d.link.CommandID, d.link.Command, d.link.CommandSubject = id, b, subject
	if d.sfSource != nil {
		at := pgTime(d.sfSource.AsTime())
		d.link.CommandUpdatedAt = &at
	} else {
		d.link.CommandUpdatedAt = nil
	}
	// A conditional write lands only on the version it was decided on; the
	// two-way state settles it once a later version is observed.
	var base time.Time
	if expected != nil {
		base = pgTime(expected.AsTime())
	}
	d.doc.State.SentConditional(twoway.Salesforce, id, d.sfTrack, base)
	d.publish = append(d.publish, message{subject, id, cmd})
	d.applied = true
	if len(d.sfTrack) > 0 {
		kind := KindSFUpdateSent
		if subject == bus.SubjectUpsertOpportunity {
			kind = KindCommandSent
		}
		msg := "Updating the Salesforce opportunity: " + strings.Join(sortedKeys(d.sfTrack), ", ")
		if d.ref != nil {
			msg += fmt.Sprintf(" (Partner Center status %s/%s)", d.ref.Text("status"), d.ref.Text("substatus"))
		}
		d.audit(kind, msg+".", map[string]any{"commandId": id, "fields": d.sfFields}, false)
	}
}

// auditText renders the opportunity's Audit field: the seller entries of
// the audit log, newest first, this decision's included, within the
// field's size.
func (d *decision) auditText(ctx context.Context, tx pgx.Tx) (string, error) {
	lines, err := linkstore.SellerTrail(ctx, tx, d.link.OpportunityID, 400)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	var b strings.Builder
	write := func(at time.Time, msg string) bool {
		line := at.UTC().Format("2006-01-02 15:04 UTC") + " · " + msg + "\n"
		if utf8.RuneCountInString(b.String())+utf8.RuneCountInString(line) > auditLimit {
			return false
		}
		b.WriteString(line)
		return true
	}
	for i := len(d.audits) - 1; i >= 0; i-- {
		if d.audits[i].Seller && !write(now, d.audits[i].Message) {
			break
		}
	}
	for _, l := range lines {
		if !write(l.At, l.Message) {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// shortHash identifies a list of strings in 16 hex digits.
func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// republish queues the link's outstanding commands again: a redelivered
// message may be the only trace of a crash between commit and publish.
// Repeats are harmless (Msg-Id, the adapters' inboxes, upserts by External
// ID, creates looked up by externalReferenceId).
func (d *decision) republish() {
	l := d.link
	if l.PCPending() && len(l.PCCommand) > 0 {
		var cmd cosellv1.PartnerCenterCommand
		if proto.Unmarshal(l.PCCommand, &cmd) == nil {
			d.publish = append(d.publish, message{bus.SubjectPartnerCenterCommand, cmd.GetCommandId(), &cmd})
		}
	}
	if l.CommandID != "" && l.ResultCommandID != l.CommandID && len(l.Command) > 0 && l.State == linkstore.StateActive {
		switch l.CommandSubject {
		case bus.SubjectSalesforceWriteback:
			var cmd cosellv1.SalesforceWriteback
			if proto.Unmarshal(l.Command, &cmd) == nil {
				d.publish = append(d.publish, message{bus.SubjectSalesforceWriteback, cmd.GetCommandId(), &cmd})
			}
		default:
			var cmd cosellv1.UpsertOpportunityCommand
			if proto.Unmarshal(l.Command, &cmd) == nil {
				d.publish = append(d.publish, message{bus.SubjectUpsertOpportunity, cmd.GetCommandId(), &cmd})
			}
		}
	}
}

// publishAll publishes the commands of a committed decision.
func (s *Service) publishAll(ctx context.Context, msgs []message) error {
	for _, m := range msgs {
		if err := s.pub.Publish(ctx, m.subject, m.id, m.msg); err != nil {
			return err
		}
	}
	return nil
}
