package syncer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// world plays both external systems around the mapper for one
// opportunity and its referral: a seller and Microsoft edit records, the
// adapters carry out the mapper's commands against them and report back,
// and every write comes back as an observation, as the real adapters make
// it. Nothing is delivered until a test says so, so tests choose the order
// in which the mapper hears of things.
type world struct {
	t  *testing.T
	e  *env
	at time.Time // the shared clock of both systems

	opp map[string]any // the opportunity, as the salesforce-adapter reads it
	ref map[string]any // the partner's referral, as Partner Center holds it
	ms  map[string]any // Microsoft's referral of the engagement
	tag int            // eTag counter
	seq int            // referral id counter

	// queue holds observations and results not delivered yet.
	queue []delivery
	// read is how many published messages the world has carried out.
	read int
	// sfWrites and pcCalls count the writes the adapters made; done holds
	// the command ids carried out (the adapters' inboxes drop repeats).
	sfWrites, pcCalls int
	// preconditionFailures counts conditional writes refused because the
	// opportunity had changed.
	preconditionFailures int
	done                 map[string]bool
	// readBack makes the salesforce-adapter read each write back in the
	// same call: the echo travels inside the result, not through the poll.
	readBack bool
}

// delivery is one message on its way to the mapper.
type delivery struct {
	kind string // "opp", "ref", "ms", "pcres", "sfres"
	opp  *cosellv1.OpportunityObserved
	ref  *cosellv1.ReferralObserved
	pc   *cosellv1.PartnerCenterResult
	sf   *cosellv1.SalesforceResult
}

const oppID = "0068d0000000001AAA"

func newWorld(t *testing.T) *world {
	t.Helper()
	return &world{t: t, e: newEnv(t), at: time.Date(2026, 3, 7, 9, 0, 0, 0, time.UTC), done: map[string]bool{}}
}

func (w *world) tick() time.Time {
	w.at = w.at.Add(time.Second)
	return w.at
}

func sfTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+0000") }

// seedOpportunity creates the opportunity (as a seller) and returns its
// observation.
func (w *world) seedOpportunity(changes map[string]any) delivery {
	w.opp = map[string]any{
		"Id": oppID, "Name": "Fabrikam data platform", "Amount": json.Number("120000.0"), "CurrencyIsoCode": "EUR",
		"CloseDate": "2026-09-30", "StageName": "Prospecting", "Description": "Modernise the data platform.",
		"IsClosed": false, "IsWon": false, "IsDeleted": false, "LastModifiedById": "0058d0000000002AAA",
		"Sync_with_Partner_Center__c": true, "Referral_Identifier__c": nil, "Referral_Link__c": nil,
		"How_can_Microsoft_help__c": "Proof of concept or demo", "Products__c": nil, "Microsoft_CRM_Identifier__c": nil,
		"Decline_Reason__c": nil, "Audit__c": nil, "AccountId": "0018d0000000001AAA",
		"Account": map[string]any{"Name": "Fabrikam Inc", "BillingCountry": "DE", "BillingPostalCode": "10115", "BillingCity": "Berlin",
			"BillingState": nil, "BillingStreet": "Unter den Linden 1"},
		"OpportunityContactRoles": map[string]any{"records": []any{map[string]any{"ContactId": "0038d0000000002AAA", "Role": "Decision Maker",
			"IsPrimary": true, "Contact": map[string]any{"FirstName": "Jo", "LastName": "Primary", "Email": "jo@fabrikam.example", "Phone": nil}}}},
		"Microsoft_Solutions__r": map[string]any{"records": []any{map[string]any{"Solution_Identifier__c": "SOL-2", "Name": "Two"}}},
	}
	return w.sellerEdit(changes)
}

// sellerEdit changes the opportunity as the seller and returns the
// observation the poller publishes.
func (w *world) sellerEdit(changes map[string]any) delivery {
	maps.Copy(w.opp, changes)
	w.opp["LastModifiedById"] = "0058d0000000002AAA"
	return w.oppObserved()
}

func (w *world) oppObserved() delivery {
	w.opp["SystemModstamp"] = sfTime(w.tick())
	b, err := json.Marshal(w.opp)
	if err != nil {
		w.t.Fatal(err)
	}
	return delivery{kind: "opp", opp: &cosellv1.OpportunityObserved{OpportunityId: oppID, SystemModstamp: timestamppb.New(w.at),
		LastModifiedById: w.opp["LastModifiedById"].(string), RecordJson: b, ObservedAt: timestamppb.Now()}}
}

// seedInbound creates a referral as a Microsoft seller shares it (New,
// Pending) and returns its snapshot.
func (w *world) seedInbound() delivery {
	w.seq++
	w.ref = map[string]any{
		"id": fmt.Sprintf("ref-%d", w.seq), "engagementId": "eng-1", "organizationId": "partner-org", "name": "Contoso Retail migration",
		"status": "New", "substatus": "Pending", "statusReason": nil, "type": "Shared", "direction": "Incoming", "externalReferenceId": nil,
		"customerProfile": map[string]any{"name": "Contoso Retail Inc", "address": map[string]any{"country": "US", "postalCode": "98052"},
			"team": []any{map[string]any{"firstName": "Sue", "lastName": "Smith"}}},
		"details": map[string]any{"notes": "Move to Azure.", "dealValue": json.Number("50000"), "currency": "USD",
			"closingDateTime": "2026-05-24T00:00:00Z", "requirements": map[string]any{"solutions": []any{map[string]any{"id": "SOL-6115380-IPC"}}}},
		"inviteContext": map[string]any{"assistanceRequestCode": "GeneralOrOther", "invitedBy": map[string]any{"organizationId": "msft"}},
		"trackingInfo":  map[string]any{"microsoftMsxId": nil},
	}
	w.ms = deepCopy(w.ref)
	w.ms["id"], w.ms["organizationId"], w.ms["status"], w.ms["substatus"] = "ms-1", "msft", "Active", "Accepted"
	w.stamp(w.ms)
	return w.refObserved("referral-created")
}

func (w *world) stamp(doc map[string]any) {
	w.tag++
	doc["updatedDateTime"] = w.tick().Format(time.RFC3339Nano)
	doc["eTag"] = fmt.Sprintf(`"etag-%d"`, w.tag)
}

func (w *world) refObserved(event string) delivery {
	w.stamp(w.ref)
	return w.snapshotOf(w.ref, event)
}

func (w *world) snapshotOf(doc map[string]any, event string) delivery {
	b, _ := json.Marshal(doc)
	upd, _ := time.Parse(time.RFC3339Nano, doc["updatedDateTime"].(string))
	src := cosellv1.ObservationSource_OBSERVATION_SOURCE_WEBHOOK
	if strings.HasPrefix(event, "related-") {
		src = cosellv1.ObservationSource_OBSERVATION_SOURCE_RELATED
	}
	return delivery{kind: "ref", ref: &cosellv1.ReferralObserved{ReferralId: doc["id"].(string), EngagementId: doc["engagementId"].(string),
		UpdatedAt: timestamppb.New(upd), Etag: doc["eTag"].(string), Source: src, EventName: event, ReferralJson: b, ObservedAt: timestamppb.Now()}}
}

// microsoftEdit changes the partner's referral as a Microsoft seller
// (JSON Patch of the control API: paths are dotted here) and returns the
// snapshot.
func (w *world) microsoftEdit(changes map[string]any) delivery {
	for path, v := range changes {
		setPath(w.ref, path, v)
	}
	return w.refObserved("referral-updated")
}

// microsoftOwnEdit changes Microsoft's own referral and returns its
// related-referral snapshot.
func (w *world) microsoftOwnEdit(changes map[string]any) delivery {
	for path, v := range changes {
		setPath(w.ms, path, v)
	}
	w.stamp(w.ms)
	return w.snapshotOf(w.ms, "related-referral-updated")
}

func setPath(doc map[string]any, path string, v any) {
	segs := strings.Split(path, ".")
	for _, s := range segs[:len(segs)-1] {
		next, ok := doc[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			doc[s] = next
		}
		doc = next
	}
	doc[segs[len(segs)-1]] = v
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return out
}

// deliver hands one message to the mapper and returns its outcome.
func (w *world) deliver(d delivery) syncer.Outcome {
	w.t.Helper()
	w.e.seq++
	ctx := context.Background()
	var (
		out syncer.Outcome
		err error
	)
	switch d.kind {
	case "opp":
		id := oppMsgID(d)
		out, err = w.e.svc.OpportunityObserved(ctx, syncer.Delivery{MsgID: id, Stream: bus.StreamOpportunities, StreamSeq: w.e.seq}, d.opp)
	case "ref":
		id := fmt.Sprintf("ref:%s:%s", d.ref.GetReferralId(), d.ref.GetUpdatedAt().AsTime().Format(time.RFC3339Nano))
		out, err = w.e.svc.Observed(ctx, syncer.Delivery{MsgID: id, Stream: bus.StreamReferrals, StreamSeq: w.e.seq}, d.ref)
	case "pcres":
		out, err = w.e.svc.PartnerCenterResult(ctx, syncer.Delivery{MsgID: "pcres:" + d.pc.GetCommandId(), Stream: bus.StreamResults, StreamSeq: w.e.seq}, d.pc)
	case "sfres":
		out, err = w.e.svc.Result(ctx, syncer.Delivery{MsgID: "sfres:" + d.sf.GetCommandId(), Stream: bus.StreamResults, StreamSeq: w.e.seq}, d.sf)
	}
	if err != nil {
		w.t.Fatalf("deliver %s: %v", d.kind, err)
	}
	return out
}

// expect delivers d and checks the outcome.
func (w *world) expect(d delivery, want syncer.Outcome) {
	w.t.Helper()
	if got := w.deliver(d); got != want {
		w.t.Fatalf("%s delivered: outcome %s, want %s", d.kind, got, want)
	}
}

// commands returns the messages published since the world last carried
// them out, without carrying them out.
func (w *world) commands() []published { return w.e.pub.since(w.read) }

// carry carries out the published commands against both systems, queuing
// their results and the observations of the writes (the echoes).
func (w *world) carry() {
	for _, p := range w.e.pub.since(w.read) {
		w.read++
		if w.done[p.id] {
			continue // a repeat: the adapter's inbox drops it
		}
		w.done[p.id] = true
		switch c := p.msg.(type) {
		case *cosellv1.PartnerCenterCommand:
			w.carryPC(c)
		case *cosellv1.SalesforceWriteback:
			if w.precondition(c.GetCommandId(), c.GetReferralId(), c.GetExpectedSystemModstamp()) {
				w.carrySF(c.GetCommandId(), c.GetFieldsJson(), c.GetReferralId())
			}
		case *cosellv1.UpsertOpportunityCommand:
			if w.precondition(c.GetCommandId(), c.GetReferralId(), c.GetExpectedSystemModstamp()) {
				w.carrySF(c.GetCommandId(), c.GetFieldsJson(), c.GetReferralId())
			}
		}
	}
}

// precondition does what the salesforce-adapter does with a conditional
// write: when the opportunity's SystemModstamp is no longer the expected
// one, nothing is written and the result is REJECTED PRECONDITION_FAILED.
func (w *world) precondition(id, referralID string, expected *timestamppb.Timestamp) bool {
	if expected == nil || w.opp == nil || w.opp["SystemModstamp"] == sfTime(expected.AsTime()) {
		return true
	}
	w.preconditionFailures++
	w.queue = append(w.queue, delivery{kind: "sfres", sf: &cosellv1.SalesforceResult{CommandId: id, ReferralId: referralID, OpportunityId: oppID,
		Outcome: cosellv1.Outcome_OUTCOME_REJECTED, ErrorCode: "PRECONDITION_FAILED", ErrorMessage: "The opportunity changed in Salesforce since the decision."}})
	return false
}

func (w *world) carrySF(id string, fieldsJSON []byte, referralID string) {
	w.sfWrites++
	var fields map[string]any
	dec := json.NewDecoder(strings.NewReader(string(fieldsJSON)))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		w.t.Fatal(err)
	}
	if w.opp == nil {
		w.opp = map[string]any{"Id": oppID, "Sync_with_Partner_Center__c": false}
	}
	maps.Copy(w.opp, fields)
	if referralID != "" && w.opp["Referral_Identifier__c"] == nil {
		w.opp["Referral_Identifier__c"] = referralID
	}
	w.opp["LastModifiedById"] = "0058d0000000001AAA"
	echo := w.oppObserved()
	res := delivery{kind: "sfres", sf: &cosellv1.SalesforceResult{CommandId: id, ReferralId: referralID, OpportunityId: oppID,
		Outcome: cosellv1.Outcome_OUTCOME_OK, Created: false}}
	if w.readBack {
		res.sf.Observed, res.sf.ObservedMsgId = echo.opp, oppMsgID(echo)
		w.queue = append(w.queue, res)
		return
	}
	w.queue = append(w.queue, res, echo)
}

func (w *world) carryPC(c *cosellv1.PartnerCenterCommand) {
	w.pcCalls++
	res := &cosellv1.PartnerCenterResult{CommandId: c.GetCommandId(), OpportunityId: c.GetOpportunityId()}
	switch {
	case c.GetCreate() != nil:
		if w.ref != nil && w.ref["externalReferenceId"] == c.GetCreate().GetExternalReferenceId() {
			res.Created = false // found by externalReferenceId, as the adapter does
		} else {
			var body map[string]any
			dec := json.NewDecoder(strings.NewReader(string(c.GetCreate().GetBodyJson())))
			dec.UseNumber()
			if err := dec.Decode(&body); err != nil {
				w.t.Fatal(err)
			}
			w.seq++
			body["id"], body["engagementId"], body["organizationId"] = fmt.Sprintf("ref-%d", w.seq), "eng-1", "partner-org"
			body["status"], body["substatus"], body["direction"] = "Active", "Accepted", "Outgoing"
			w.ref = body
			w.stamp(w.ref)
			res.Created = true
		}
	case c.GetPatch() != nil:
		p := c.GetPatch()
		if w.ref["status"] == "Closed" {
			res.Outcome, res.HttpStatus, res.ErrorCode, res.ErrorMessage = cosellv1.Outcome_OUTCOME_REJECTED, 400, "invalidRequest", "The referral is closed."
			w.queue = append(w.queue, delivery{kind: "pcres", pc: res})
			return
		}
		if p.GetIfMatch() != "" && p.GetIfMatch() != w.ref["eTag"] {
			res.Outcome, res.HttpStatus, res.ErrorCode = cosellv1.Outcome_OUTCOME_REJECTED, 412, "preconditionFailed"
			w.fill(res)
			w.queue = append(w.queue, delivery{kind: "pcres", pc: res})
			return
		}
		var ops []mapping.PatchOp
		if err := json.Unmarshal(p.GetOpsJson(), &ops); err != nil {
			w.t.Fatal(err)
		}
		cur, _ := mapping.ParseReferral(mustJSON(w.ref))
		after := mapping.ApplyPatch(cur, ops)
		var doc map[string]any
		dec := json.NewDecoder(strings.NewReader(string(after.JSON())))
		dec.UseNumber()
		_ = dec.Decode(&doc)
		w.ref = doc
		w.stamp(w.ref)
	}
	res.Outcome = cosellv1.Outcome_OUTCOME_OK
	w.fill(res)
	// The write raises a webhook too: its snapshot comes after the result.
	w.queue = append(w.queue, delivery{kind: "pcres", pc: res}, w.snapshotOf(w.ref, "referral-updated"))
}

func (w *world) fill(res *cosellv1.PartnerCenterResult) {
	upd, _ := time.Parse(time.RFC3339Nano, w.ref["updatedDateTime"].(string))
	res.ReferralId, res.Etag, res.UpdatedAt, res.ReferralJson = w.ref["id"].(string), w.ref["eTag"].(string), timestamppb.New(upd), mustJSON(w.ref)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// settle carries out commands and delivers everything queued, in order,
// until nothing is left; it fails on what looks like an echo loop.
func (w *world) settle() {
	w.t.Helper()
	for i := 0; ; i++ {
		w.carry()
		if len(w.queue) == 0 {
			return
		}
		if i > 60 {
			w.t.Fatalf("no rest after %d rounds: an echo loop? queue %v", i, w.queue[0].kind)
		}
		d := w.queue[0]
		w.queue = w.queue[1:]
		w.deliver(d)
	}
}

func (w *world) link() *linkstore.Link {
	w.t.Helper()
	l, err := linkstore.GetByOpportunity(context.Background(), w.e.pool, oppID)
	if err != nil {
		w.t.Fatalf("link of %s: %v", oppID, err)
	}
	return l
}

// trail returns the opportunity's audit kinds, oldest first.
func (w *world) trail() []linkstore.AuditEntry {
	w.t.Helper()
	trail, err := linkstore.AuditTrailByOpportunity(context.Background(), w.e.pool, oppID, 500)
	if err != nil {
		w.t.Fatal(err)
	}
	return trail
}

func (w *world) hasAudit(kind string) bool {
	for _, a := range w.trail() {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// pcCommands and sfCommands filter published messages.
func pcCommands(ps []published) []*cosellv1.PartnerCenterCommand {
	var out []*cosellv1.PartnerCenterCommand
	for _, p := range ps {
		if c, ok := p.msg.(*cosellv1.PartnerCenterCommand); ok {
			out = append(out, c)
		}
	}
	return out
}

func writebacks(ps []published) []*cosellv1.SalesforceWriteback {
	var out []*cosellv1.SalesforceWriteback
	for _, p := range ps {
		if c, ok := p.msg.(*cosellv1.SalesforceWriteback); ok {
			out = append(out, c)
		}
	}
	return out
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func opsOf(t *testing.T, c *cosellv1.PartnerCenterCommand) string {
	t.Helper()
	var ops []mapping.PatchOp
	if err := json.Unmarshal(c.GetPatch().GetOpsJson(), &ops); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, op := range ops {
		b, _ := json.Marshal(op.Value)
		parts = append(parts, op.Path+"="+string(b))
	}
	return strings.Join(parts, " ")
}

func num(s string) any { return json.Number(s) }

// oppMsgID is the Msg-Id the salesforce-adapter gives an observation.
func oppMsgID(d delivery) string {
	return "opp:" + d.opp.GetOpportunityId() + ":" + sfTime(d.opp.GetSystemModstamp().AsTime())
}
