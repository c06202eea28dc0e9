package command_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/command"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
)

const (
	ok       = cosellv1.Outcome_OUTCOME_OK
	rejected = cosellv1.Outcome_OUTCOME_REJECTED
	failed   = cosellv1.Outcome_OUTCOME_FAILED
)

// TestCreateOverTheBus is the whole path: a command published in a trace
// creates the referral with the opportunity's externalReferenceId, and the
// result comes back on result.partnercenter.v1 in the same trace, with
// the span naming both records.
func TestCreateOverTheBus(t *testing.T) {
	h := newHarness(t, options{})
	h.consume(t)
	ctx, span := h.tp.Tracer("test").Start(context.Background(), "mapper")
	h.send(t, ctx, createCmd("c1", "006A"), "c1")
	span.End()
	traceID := span.SpanContext().TraceID()

	res := h.waitResult(t, "c1")
	if res.GetOutcome() != ok || !res.GetCreated() || res.GetReferralId() == "" || res.GetOpportunityId() != "006A" {
		t.Fatalf("result %+v, want OK created", res)
	}
	if res.GetHttpStatus() != http.StatusCreated || res.GetEtag() == "" || res.GetUpdatedAt() == nil {
		t.Errorf("result status %d etag %q updated %v", res.GetHttpStatus(), res.GetEtag(), res.GetUpdatedAt())
	}
	if got := field(t, res.GetReferralJson(), "externalReferenceId"); got != "006A" {
		t.Errorf("referral_json externalReferenceId = %v", got)
	}
	refs := referralsFor(h, "006A")
	if len(refs) != 1 || refs[0].ID != res.GetReferralId() || refs[0].ETag != res.GetEtag() {
		t.Fatalf("emulator holds %+v for the opportunity, want the one referral of the result", refs)
	}
	if c := h.emu.Counters(); c["referrals.create"] != 1 || c["referrals.list"] != 1 {
		t.Errorf("counters %v: want one lookup and one POST", c)
	}

	// The result is on the bus with its Msg-Id and the command's trace.
	s, err := h.conn.JetStream().Stream(context.Background(), bus.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(context.Background(), bus.SubjectPartnerCenterResult)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get(jetstream.MsgIDHeader); got != "pc-result:c1:OK" {
		t.Errorf("Msg-Id %q", got)
	}
	if tp := raw.Header.Get("traceparent"); len(tp) < 35 || tp[3:35] != traceID.String() {
		t.Errorf("traceparent %q does not continue trace %s", tp, traceID)
	}
	var onBus cosellv1.PartnerCenterResult
	if err := proto.Unmarshal(raw.Data, &onBus); err != nil || !proto.Equal(&onBus, res) {
		t.Errorf("result on the bus %+v differs from the one published (%v)", &onBus, err)
	}
	waitFor(t, "the command span", func() bool {
		for _, s := range h.spans.Ended() {
			if s.Name() == "partnercenter-adapter create" && s.SpanContext().TraceID() == traceID {
				a := s.Attributes()
				return hasAttr(a, command.AttrOpportunityID, "006A") && hasAttr(a, pcclient.AttrReferralID, res.GetReferralId()) &&
					hasAttr(a, command.AttrOutcome, "OK") && hasAttr(a, command.AttrCreated, "true")
			}
		}
		return false
	})
	if got := h.commandsCounted(t)["create/OK/post"]; got != 1 {
		t.Errorf("partnercenter_adapter.commands{create,OK,post} = %d", got)
	}
}

// TestRedeliveredCreateIsAnsweredFromTheRecord: the same command again
// (JetStream redelivery, or a republish after the duplicate window) calls
// Partner Center not at all and answers what the first delivery answered.
func TestRedeliveredCreateIsAnsweredFromTheRecord(t *testing.T) {
	h := newHarness(t, options{})
	h.consume(t)
	h.send(t, context.Background(), createCmd("c1", "006A"), "c1")
	first := h.waitResult(t, "c1")
	before := h.emu.Counters()

	// Past the duplicate window the same command gets through again.
	h.send(t, context.Background(), createCmd("c1", "006A"), "c1-after-window")
	waitFor(t, "the repeat to be answered", func() bool { return len(h.pub.all()) == 2 })
	again := h.pub.all()[1]
	if !proto.Equal(again.res, first) || again.msgID != "pc-result:c1:OK" {
		t.Errorf("repeat answered %+v (%s), want the first result %+v", again.res, again.msgID, first)
	}
	if after := h.emu.Counters(); after["referrals.create"] != 1 || after["referrals.list"] != before["referrals.list"] {
		t.Errorf("counters %v after the repeat (before %v): Partner Center was called", after, before)
	}
	if n := len(referralsFor(h, "006A")); n != 1 {
		t.Errorf("%d referrals", n)
	}
	if got := h.commandsCounted(t)["create/OK/record"]; got != 1 {
		t.Errorf("partnercenter_adapter.commands{create,OK,record} = %d", got)
	}
	// The mapper sees the answer once: the repeat has the same Msg-Id.
	s, _ := h.conn.JetStream().Stream(context.Background(), bus.StreamResults)
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 1 {
		t.Errorf("results stream holds %v messages (%v), want 1", info.State.Msgs, err)
	}
}

// TestAnotherCommandForALinkedOpportunityFindsTheReferral: a second create
// command for an opportunity that already has a referral posts nothing.
func TestAnotherCommandForALinkedOpportunityFindsTheReferral(t *testing.T) {
	h := newHarness(t, options{})
	first := h.mustHandle(t, createCmd("c1", "006A"))
	second := h.mustHandle(t, createCmd("c2", "006A"))
	if second.GetOutcome() != ok || second.GetCreated() || second.GetReferralId() != first.GetReferralId() || second.GetCommandId() != "c2" {
		t.Fatalf("second command: %+v, want OK, created=false, referral %s", second, first.GetReferralId())
	}
	if len(second.GetReferralJson()) == 0 || second.GetEtag() != first.GetEtag() {
		t.Errorf("second command lacks the found referral: etag %q", second.GetEtag())
	}
	if c := h.emu.Counters(); c["referrals.create"] != 1 {
		t.Errorf("counters %v: a second POST was sent", c)
	}

	// A referral made elsewhere (by hand in Partner Center, say) with the
	// opportunity's id is found the same way.
	made, err := h.pc.CreateReferral(context.Background(), body("006B", "by hand"), "006B")
	if err != nil {
		t.Fatal(err)
	}
	res := h.mustHandle(t, createCmd("c3", "006B"))
	if res.GetCreated() || res.GetReferralId() != made.ID {
		t.Errorf("command for a hand-made referral: %+v", res)
	}
	if got := h.commandsCounted(t)["create/OK/lookup"]; got != 2 {
		t.Errorf("partnercenter_adapter.commands{create,OK,lookup} = %d", got)
	}
	// Only the POST's referral is reported as created here: the found
	// ones were created before, and their referral-created notifications
	// must still be read.
	if got := h.createdIDs(); len(got) != 1 || got[0] != first.GetReferralId() {
		t.Errorf("reported creations %v, want only %s", got, first.GetReferralId())
	}
}

// TestOpportunityIDsAreQuotedInTheFilter: a quote in the id is escaped as
// an OData string literal (and matches exactly).
func TestOpportunityIDsAreQuotedInTheFilter(t *testing.T) {
	h := newHarness(t, options{})
	const odd = "006'x' or '1' eq '1"
	first := h.mustHandle(t, createCmd("c1", odd))
	other := h.mustHandle(t, createCmd("c2", "006Z"))
	if !first.GetCreated() || !other.GetCreated() || other.GetReferralId() == first.GetReferralId() {
		t.Fatalf("first %+v other %+v", first, other)
	}
	again := h.mustHandle(t, createCmd("c3", odd))
	if again.GetCreated() || again.GetReferralId() != first.GetReferralId() {
		t.Errorf("lookup of %q: %+v", odd, again)
	}
	if got := pcclient.ODataString("a'b"); got != "'a''b'" {
		t.Errorf("ODataString = %s", got)
	}
}

// TestLostAnswerOfAPOSTNeverDuplicates: the emulator creates the referral
// but the answer never arrives (connection dropped, or a 500 after the
// write, through a proxy; the emulator's own latency fault aborts before
// writing, so it cannot lose an answer). The adapter looks up before any
// new POST and answers OK, created=true, with the one referral.
func TestLostAnswerOfAPOSTNeverDuplicates(t *testing.T) {
	for _, mode := range []string{"drop", "500"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, options{lossy: mode})
			res := h.mustHandle(t, createCmd("c1", "006A"))
			if res.GetOutcome() != ok || !res.GetCreated() {
				t.Fatalf("result %+v, want OK created=true", res)
			}
			refs := referralsFor(h, "006A")
			if len(refs) != 1 || refs[0].ID != res.GetReferralId() {
				t.Fatalf("referrals %+v, want exactly the result's", refs)
			}
			if c := h.emu.Counters(); c["referrals.create"] != 1 || c["referrals.list"] != 2 {
				t.Errorf("counters %v: want lookup, POST (answer lost), lookup", c)
			}
			// Found after its own POST: a creation of this executor's.
			if got := h.createdIDs(); len(got) != 1 || got[0] != res.GetReferralId() {
				t.Errorf("reported creations %v, want %s", got, res.GetReferralId())
			}
		})
	}
}

func mustExecutor(t *testing.T, h *harness, pc command.PartnerCenter) *command.Executor {
	t.Helper()
	e, err := command.New(pc, h.store, h.pub, command.Config{BackoffInitial: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, TracerProvider: h.tp})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPOSTTimingOutIsLookedUpBeforeTheNextPOST: the emulator's latency
// fault outlasts the client's attempt timeout (the emulator then drops the
// request unwritten); the adapter looks up, finds nothing and POSTs again.
func TestPOSTTimingOutIsLookedUpBeforeTheNextPOST(t *testing.T) {
	h := newHarness(t, options{client: func(c *pcclient.Config) { c.AttemptTimeout = 300 * time.Millisecond }})
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.create", Kind: "latency", Latency: "2s", Count: 1})
	res := h.mustHandle(t, createCmd("c1", "006A"))
	if res.GetOutcome() != ok || !res.GetCreated() {
		t.Fatalf("result %+v", res)
	}
	if n := len(referralsFor(h, "006A")); n != 1 {
		t.Errorf("%d referrals, want 1", n)
	}
	if c := h.emu.Counters(); c["referrals.create"] != 2 || c["referrals.list"] != 2 {
		t.Errorf("counters %v: want lookup, POST (timed out), lookup, POST", c)
	}
}

// failingComplete loses the first completion, as a crash between Partner
// Center's answer and our commit would.
type failingComplete struct {
	*pgstore.Store
	mu    sync.Mutex
	fails int
}

func (f *failingComplete) CompleteCommand(ctx context.Context, c pgstore.Command) (pgstore.Command, error) {
	f.mu.Lock()
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return pgstore.Command{}, errors.New("connection reset (simulated crash before commit)")
	}
	return f.Store.CompleteCommand(ctx, c)
}

// TestCrashBetweenAnswerAndCommit: the POST succeeded but its result was
// never recorded; the redelivery finds the referral instead of creating a
// second, and knows this command created it.
func TestCrashBetweenAnswerAndCommit(t *testing.T) {
	h := newHarness(t, options{records: func(s *pgstore.Store) command.Records { return &failingComplete{Store: s, fails: 1} }})
	cmd := createCmd("c1", "006A")
	if err := h.handle(t, cmd, 1); err == nil {
		t.Fatal("first delivery succeeded although its commit failed")
	}
	if n := len(h.pub.all()); n != 0 {
		t.Fatalf("%d results published before the commit", n)
	}
	if err := h.handle(t, cmd, 2); err != nil {
		t.Fatal(err)
	}
	res := h.pub.all()[0].res
	if res.GetOutcome() != ok || !res.GetCreated() {
		t.Errorf("redelivery answered %+v, want OK created=true", res)
	}
	if n := len(referralsFor(h, "006A")); n != 1 {
		t.Errorf("%d referrals", n)
	}
	if c := h.emu.Counters(); c["referrals.create"] != 1 {
		t.Errorf("counters %v: a second POST was sent", c)
	}
}

// TestConcurrentCreatesForOneOpportunity: two commands for the same
// opportunity racing (two replicas, or a repeat while the first runs)
// make one referral.
func TestConcurrentCreatesForOneOpportunity(t *testing.T) {
	h := newHarness(t, options{})
	// Slow the POST so the two commands overlap.
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.create", Kind: "latency", Latency: "300ms", Count: 2})
	var wg sync.WaitGroup
	for _, id := range []string{"c1", "c2"} {
		wg.Go(func() {
			if err := h.handle(t, createCmd(id, "006A"), 1); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(referralsFor(h, "006A")); n != 1 {
		t.Fatalf("%d referrals for one opportunity", n)
	}
	created := 0
	for _, p := range h.pub.all() {
		if p.res.GetOutcome() != ok {
			t.Errorf("result %+v", p.res)
		}
		if p.res.GetCreated() {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d results say created, want 1", created)
	}
}

// TestCreateRefusedByPartnerCenter: a validation error is REJECTED with
// Partner Center's code and message, and not retried.
func TestCreateRefusedByPartnerCenter(t *testing.T) {
	h := newHarness(t, options{})
	cmd := createCmd("c1", "006A")
	cmd.GetCreate().BodyJson = []byte(`{"name":"x","type":"Independent","customerProfile":{"name":"Contoso","address":{"country":"USA"}},"consent":{},"details":{}}`)
	res := h.mustHandle(t, cmd)
	if res.GetOutcome() != rejected || res.GetHttpStatus() != http.StatusBadRequest || res.GetErrorCode() != "invalidRequest" || res.GetErrorMessage() == "" {
		t.Fatalf("result %+v, want REJECTED 400 invalidRequest with a message", res)
	}
	if c := h.emu.Counters(); c["referrals.create"] != 1 {
		t.Errorf("counters %v: the refusal was retried", c)
	}
	// A redelivery answers the same without asking again.
	if err := h.handle(t, cmd, 2); err != nil {
		t.Fatal(err)
	}
	if c := h.emu.Counters(); c["referrals.create"] != 1 || c["referrals.list"] != 1 {
		t.Errorf("counters %v after a redelivery of a refused command", c)
	}
}

// TestInvalidCommandsAreRefusedWithoutCallingPartnerCenter.
func TestInvalidCommandsAreRefusedWithoutCallingPartnerCenter(t *testing.T) {
	h := newHarness(t, options{})
	conflicting := createCmd("c1", "006A")
	conflicting.GetCreate().BodyJson = body("006OTHER", "x")
	noRef := createCmd("c2", "")
	badOps := patchCmd("c3", "006A", "b37520f8-6c1b-4202-be9b-841f89105886", "", `{"op":"replace"}`)
	empty := &cosellv1.PartnerCenterCommand{CommandId: "c4"}
	for _, cmd := range []*cosellv1.PartnerCenterCommand{conflicting, noRef, badOps, empty} {
		res := h.mustHandle(t, cmd)
		if res.GetOutcome() != rejected || res.GetErrorCode() != command.ErrorCodeInvalidCommand || res.GetErrorMessage() == "" {
			t.Errorf("%s: %+v, want REJECTED invalidCommand", cmd.GetCommandId(), res)
		}
	}
	if c := h.emu.Counters(); c["referrals.create"]+c["referrals.list"]+c["referrals.patch"] != 0 {
		t.Errorf("counters %v: Partner Center was called", c)
	}
	// A body without externalReferenceId gets it, so the lookup can work.
	cmd := createCmd("c5", "006B")
	cmd.GetCreate().BodyJson = body("", "no ref")
	res := h.mustHandle(t, cmd)
	if res.GetOutcome() != ok || field(t, res.GetReferralJson(), "externalReferenceId") != "006B" {
		t.Errorf("body without externalReferenceId: %+v", res)
	}
}

// created makes a referral through a create command and returns it.
func created(t *testing.T, h *harness, oppID string) *cosellv1.PartnerCenterResult {
	t.Helper()
	res := h.mustHandle(t, createCmd("create-"+oppID, oppID))
	if res.GetOutcome() != ok {
		t.Fatalf("create: %+v", res)
	}
	return res
}

// TestPatchWithTheCurrentETag: OK, the new eTag, and the patched referral.
func TestPatchWithTheCurrentETag(t *testing.T) {
	h := newHarness(t, options{})
	ref := created(t, h, "006A")
	res := h.mustHandle(t, patchCmd("p1", "006A", ref.GetReferralId(), ref.GetEtag(),
		`[{"op":"replace","path":"/details/dealValue","value":75000},{"op":"replace","path":"/details/closingDateTime","value":"2026-09-30T00:00:00Z"}]`))
	if res.GetOutcome() != ok || res.GetCreated() || res.GetReferralId() != ref.GetReferralId() || res.GetHttpStatus() != http.StatusOK {
		t.Fatalf("result %+v", res)
	}
	if res.GetEtag() == "" || res.GetEtag() == ref.GetEtag() {
		t.Errorf("etag %q after the patch, was %q", res.GetEtag(), ref.GetEtag())
	}
	if got := field(t, res.GetReferralJson(), "details.dealValue"); got != float64(75000) {
		t.Errorf("dealValue %v", got)
	}
	if got := field(t, res.GetReferralJson(), "eTag"); got != res.GetEtag() {
		t.Errorf("referral_json eTag %v, result etag %q", got, res.GetEtag())
	}
	if !res.GetUpdatedAt().AsTime().After(ref.GetUpdatedAt().AsTime()) {
		t.Errorf("updated_at %v not after %v", res.GetUpdatedAt().AsTime(), ref.GetUpdatedAt().AsTime())
	}
	// Without If-Match the patch is unconditional.
	res = h.mustHandle(t, patchCmd("p2", "006A", ref.GetReferralId(), "", `[{"op":"replace","path":"/name","value":"renamed"}]`))
	if res.GetOutcome() != ok || field(t, res.GetReferralJson(), "name") != "renamed" {
		t.Errorf("unconditional patch: %+v", res)
	}
	if got := h.commandsCounted(t)["patch/OK/patch"]; got != 2 {
		t.Errorf("partnercenter_adapter.commands{patch,OK,patch} = %d", got)
	}
}

// TestPatchWithAStaleETag: 412 → REJECTED preconditionFailed with the
// referral as it is now, so the mapper decides again; not retried.
func TestPatchWithAStaleETag(t *testing.T) {
	h := newHarness(t, options{})
	ref := created(t, h, "006A")
	edited := h.emu.Edit(ref.GetReferralId(), "changed by a Microsoft seller")
	h.emu.ResetCounters()

	res := h.mustHandle(t, patchCmd("p1", "006A", ref.GetReferralId(), ref.GetEtag(), `[{"op":"replace","path":"/details/dealValue","value":1}]`))
	if res.GetOutcome() != rejected || res.GetHttpStatus() != http.StatusPreconditionFailed || res.GetErrorCode() != command.ErrorCodePreconditionFailed {
		t.Fatalf("result %+v, want REJECTED 412 preconditionFailed", res)
	}
	if res.GetEtag() != edited.ETag || res.GetReferralId() != ref.GetReferralId() || field(t, res.GetReferralJson(), "name") != "changed by a Microsoft seller" {
		t.Errorf("412 result carries etag %q and %s, want the current referral (etag %q)", res.GetEtag(), res.GetReferralJson(), edited.ETag)
	}
	if res.GetErrorMessage() == "" {
		t.Error("no error message")
	}
	if c := h.emu.Counters(); c["referrals.patch"] != 1 || c["referrals.get"] != 1 {
		t.Errorf("counters %v: want one PATCH and one GET", c)
	}
	if got := field(t, res.GetReferralJson(), "details.dealValue"); got == float64(1) {
		t.Error("the stale patch was applied")
	}
}

// TestInvalidTransitionIsRejectedWithPartnerCenterMessage: Active → New is
// not allowed; the refusal comes back as Partner Center said it, once.
func TestInvalidTransitionIsRejectedWithPartnerCenterMessage(t *testing.T) {
	h := newHarness(t, options{})
	ref := created(t, h, "006A")
	h.emu.ResetCounters()
	res := h.mustHandle(t, patchCmd("p1", "006A", ref.GetReferralId(), ref.GetEtag(),
		`[{"op":"replace","path":"/status","value":"New"},{"op":"replace","path":"/substatus","value":"Pending"}]`))
	if res.GetOutcome() != rejected || res.GetHttpStatus() != http.StatusBadRequest || res.GetErrorCode() != "invalidRequest" {
		t.Fatalf("result %+v, want REJECTED 400 invalidRequest", res)
	}
	// The message is Partner Center's own.
	_, err := h.pc.PatchReferral(context.Background(), ref.GetReferralId(),
		[]byte(`[{"op":"replace","path":"/status","value":"New"},{"op":"replace","path":"/substatus","value":"Pending"}]`), "")
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.Message != res.GetErrorMessage() {
		t.Errorf("error_message %q, Partner Center says %v", res.GetErrorMessage(), err)
	}
	if c := h.emu.Counters(); c["referrals.patch"] != 2 {
		t.Errorf("counters %v: the refusal was retried", c)
	}

	// Closing as Won works; writing to the closed referral is refused.
	res = h.mustHandle(t, patchCmd("p2", "006A", ref.GetReferralId(), "",
		`[{"op":"replace","path":"/status","value":"Closed"},{"op":"replace","path":"/substatus","value":"Won"}]`))
	if res.GetOutcome() != ok || field(t, res.GetReferralJson(), "substatus") != "Won" {
		t.Fatalf("close as won: %+v", res)
	}
	res = h.mustHandle(t, patchCmd("p3", "006A", ref.GetReferralId(), "", `[{"op":"replace","path":"/name","value":"late"}]`))
	if res.GetOutcome() != rejected || res.GetErrorMessage() == "" {
		t.Errorf("write to a closed referral: %+v", res)
	}
}

// TestThrottlingAndOutagesAreRetried: 429 with Retry-After and 503 on the
// create and the patch end OK, with one referral.
func TestThrottlingAndOutagesAreRetried(t *testing.T) {
	h := newHarness(t, options{})
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.create", Kind: "429", Count: 1, RetryAfter: 1})
	start := time.Now()
	res := h.mustHandle(t, createCmd("c1", "006A"))
	if res.GetOutcome() != ok || !res.GetCreated() {
		t.Fatalf("create after 429: %+v", res)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("answered after %s: Retry-After: 1 was not honoured", waited)
	}
	if c := h.emu.Counters(); c["referrals.create"] != 2 || c["referrals.list"] != 1 {
		t.Errorf("counters %v: a throttled POST is retried as is (nothing was written)", c)
	}

	// 503 on the POST: it may or may not have been applied, so the retry
	// goes through the lookup.
	h.emu.ResetCounters()
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.create", Kind: "503", Count: 1})
	res = h.mustHandle(t, createCmd("c2", "006B"))
	if res.GetOutcome() != ok || !res.GetCreated() || len(referralsFor(h, "006B")) != 1 {
		t.Fatalf("create after 503: %+v", res)
	}
	if c := h.emu.Counters(); c["referrals.create"] != 2 || c["referrals.list"] != 2 {
		t.Errorf("counters %v: want lookup, POST (503), lookup, POST", c)
	}

	// The lookup and the patch are retried by the client.
	h.emu.ResetCounters()
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.list", Kind: "503", Count: 2})
	ref := h.mustHandle(t, createCmd("c3", "006B"))
	if ref.GetOutcome() != ok || ref.GetCreated() {
		t.Errorf("create after a 503 on the lookup: %+v", ref)
	}
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.patch", Kind: "503", Count: 2})
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.patch", Kind: "429", Count: 1, RetryAfter: 1})
	res = h.mustHandle(t, patchCmd("p1", "006B", ref.GetReferralId(), ref.GetEtag(), `[{"op":"replace","path":"/details/dealValue","value":60000}]`))
	if res.GetOutcome() != ok || field(t, res.GetReferralJson(), "details.dealValue") != float64(60000) {
		t.Errorf("patch after 503, 503, 429: %+v", res)
	}
}

// TestLongThrottlingGoesBackToTheBus: a Retry-After longer than the client
// waits inline hands the command back with that delay.
func TestLongThrottlingGoesBackToTheBus(t *testing.T) {
	h := newHarness(t, options{client: func(c *pcclient.Config) { c.MaxRetryAfter = 100 * time.Millisecond }})
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.list", Kind: "429", Count: 1, RetryAfter: 7})
	err := h.handle(t, createCmd("c1", "006A"), 1)
	if err == nil {
		t.Fatal("a throttled command succeeded")
	}
	if bus.IsPermanent(err) {
		t.Fatalf("throttling marked permanent: %v", err)
	}
	var ae *pcclient.APIError
	if !errors.As(err, &ae) || ae.RetryAfter != 7*time.Second {
		t.Errorf("error %v does not carry Retry-After 7s", err)
	}
	if len(h.pub.all()) != 0 {
		t.Error("a result was published for a command that will be retried")
	}
}

// TestFailedAfterTheRetryBudget: an outage that outlasts every delivery
// is answered FAILED with Partner Center's status, and a later replay of
// the command runs again.
func TestFailedAfterTheRetryBudget(t *testing.T) {
	h := newHarness(t, options{})
	ref := created(t, h, "006A")
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.patch", Kind: "503"}) // every call
	cmd := patchCmd("p1", "006A", ref.GetReferralId(), ref.GetEtag(), `[{"op":"replace","path":"/details/dealValue","value":1}]`)
	for d := uint64(1); d < command.MaxDeliver; d++ {
		if err := h.handle(t, cmd, d); err == nil {
			t.Fatalf("delivery %d succeeded during an outage", d)
		}
	}
	if n := len(h.pub.all()); n != 1 {
		t.Fatalf("%d results before the last delivery, want only the create's", n)
	}
	if err := h.handle(t, cmd, command.MaxDeliver); err != nil {
		t.Fatalf("last delivery: %v", err)
	}
	p := h.pub.all()[1]
	if p.res.GetOutcome() != failed || p.res.GetHttpStatus() != http.StatusServiceUnavailable ||
		p.res.GetErrorCode() != "serviceNotAvailable" || p.res.GetReferralId() != ref.GetReferralId() || p.msgID != "pc-result:p1:FAILED" {
		t.Errorf("last delivery answered %+v (%s), want FAILED 503", p.res, p.msgID)
	}
	var outcome string
	var completed *time.Time
	if err := h.pool.QueryRow(context.Background(), `SELECT outcome, completed_at FROM partnercenter_adapter.commands WHERE command_id = 'p1'`).
		Scan(&outcome, &completed); err != nil || outcome != "FAILED" || completed != nil {
		t.Errorf("record: outcome %q completed %v (%v), want FAILED and open", outcome, completed, err)
	}

	// Partner Center is back; the mapper (or an operator) replays it.
	h.emu.ClearFaults()
	res := h.mustHandle(t, cmd)
	if res.GetOutcome() != ok {
		t.Errorf("replay after the outage: %+v", res)
	}
}

// fakePC answers a PATCH with 204 and no body, as Partner Center does
// without Prefer: return=representation, and everything else from the
// real client.
type fakePC struct {
	*pcclient.Client
}

func (f fakePC) PatchReferral(ctx context.Context, id string, ops []byte, ifMatch string) (pcclient.PatchResult, error) {
	if _, err := f.Client.PatchReferral(ctx, id, ops, ifMatch); err != nil {
		return pcclient.PatchResult{}, err
	}
	return pcclient.PatchResult{Referral: pcclient.Referral{ID: id}, Status: http.StatusNoContent}, nil
}

// TestPatchAnsweredWithoutABodyIsReadBack: a 204 is followed by a GET so
// the result still carries the referral and its eTag.
func TestPatchAnsweredWithoutABodyIsReadBack(t *testing.T) {
	h := newHarness(t, options{})
	ref := created(t, h, "006A")
	h.exec = mustExecutor(t, h, fakePC{h.pc})
	h.emu.ResetCounters()
	res := h.mustHandle(t, patchCmd("p1", "006A", ref.GetReferralId(), ref.GetEtag(), `[{"op":"replace","path":"/name","value":"n"}]`))
	if res.GetOutcome() != ok || res.GetHttpStatus() != http.StatusNoContent || field(t, res.GetReferralJson(), "name") != "n" ||
		res.GetEtag() == "" || res.GetEtag() == ref.GetEtag() {
		t.Errorf("result %+v", res)
	}
	if c := h.emu.Counters(); c["referrals.get"] != 1 {
		t.Errorf("counters %v: want one GET after the 204", c)
	}
}
