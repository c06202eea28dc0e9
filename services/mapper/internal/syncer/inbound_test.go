package syncer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// recorder publishes through the real bus and remembers every command the
// service asked to publish (the stream's duplicate window would hide a
// second publish of the same id). fail makes the next publishes fail, as a
// crash between commit and publish would.
type recorder struct {
	conn *bus.Conn
	mu   sync.Mutex
	cmds []*cosellv1.UpsertOpportunityCommand
	// sent is every message published, in order, whatever its subject.
	sent []published
	fail int
}

// published is one message the service published.
type published struct {
	subject, id string
	msg         proto.Message
}

func (r *recorder) Publish(ctx context.Context, subject, msgID string, m proto.Message) error {
	r.mu.Lock()
	if r.fail > 0 {
		r.fail--
		r.mu.Unlock()
		return errors.New("broker unavailable")
	}
	r.mu.Unlock()
	if err := r.conn.Publish(ctx, subject, msgID, m); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, published{subject, msgID, proto.Clone(m)})
	if c, ok := m.(*cosellv1.UpsertOpportunityCommand); ok {
		r.cmds = append(r.cmds, proto.Clone(c).(*cosellv1.UpsertOpportunityCommand))
	}
	return nil
}

// since returns the messages published from index i on.
func (r *recorder) since(i int) []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent[min(i, len(r.sent)):])
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

func (r *recorder) all() []*cosellv1.UpsertOpportunityCommand {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.cmds)
}

type env struct {
	pool *pgxpool.Pool
	conn *bus.Conn
	pub  *recorder
	svc  *syncer.Service
	seq  uint64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := storetest.NewDB(t, "mapper", storetest.RepoMigrations(t, "mapper"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := bus.Connect(ctx, bustest.RunServer(t), "mapper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e := &env{pool: pool, conn: conn, pub: &recorder{conn: conn}}
	e.svc = e.service(t, pool)
	return e
}

// service builds another replica of the use case on pool.
func (e *env) service(t *testing.T, pool *pgxpool.Pool) *syncer.Service {
	t.Helper()
	m, err := mapping.Default()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := syncer.New(pool, e.pub, m, slog.New(slog.NewJSONHandler(io.Discard, nil)),
		tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider(), "mapper")
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

var t0 = time.Date(2026, 3, 7, 9, 18, 1, 607654200, time.UTC)

const refID = "5dd4dc44-2c1a-4e16-8478-f783ebe815de"

// snapshot is referral id at version v (updated v seconds after t0), with
// changes merged into the default inbound referral.
func snapshot(t testing.TB, id string, v int, changes map[string]any) *cosellv1.ReferralObserved {
	t.Helper()
	updated := t0.Add(time.Duration(v) * time.Second)
	doc := map[string]any{
		"id": id, "engagementId": "eng-" + id, "organizationId": "partner-org",
		"name": "Contoso Retail cloud migration", "status": "New", "substatus": "Pending",
		"updatedDateTime": updated.Format(time.RFC3339Nano),
		"customerProfile": map[string]any{"name": "Contoso Retail Inc",
			"address": map[string]any{"country": "US", "postalCode": "98052", "city": "Redmond"}},
		"details": map[string]any{"notes": "Move to Azure.", "dealValue": 50000, "currency": "USD",
			"closingDateTime": "2026-05-24T00:00:00Z"},
	}
	for k, v := range changes {
		if sub, ok := v.(map[string]any); ok {
			if cur, ok := doc[k].(map[string]any); ok {
				for sk, sv := range sub {
					cur[sk] = sv
				}
				continue
			}
		}
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &cosellv1.ReferralObserved{
		ReferralId: id, EngagementId: "eng-" + id, UpdatedAt: timestamppb.New(updated),
		Etag: fmt.Sprintf(`"etag-%d"`, v), Source: cosellv1.ObservationSource_OBSERVATION_SOURCE_WEBHOOK,
		ReferralJson: b, ObservedAt: timestamppb.Now(),
	}
}

// delivery is a new message carrying ev.
func (e *env) delivery(ev *cosellv1.ReferralObserved) syncer.Delivery {
	e.seq++
	return syncer.Delivery{MsgID: fmt.Sprintf("obs-%s-%d", ev.GetReferralId(), e.seq), Stream: bus.StreamReferrals, StreamSeq: e.seq}
}

func (e *env) observe(t *testing.T, ev *cosellv1.ReferralObserved, want syncer.Outcome) syncer.Delivery {
	t.Helper()
	d := e.delivery(ev)
	e.observeAs(t, d, ev, want)
	return d
}

func (e *env) observeAs(t *testing.T, d syncer.Delivery, ev *cosellv1.ReferralObserved, want syncer.Outcome) {
	t.Helper()
	got, err := e.svc.Observed(context.Background(), d, ev)
	if err != nil {
		t.Fatalf("Observed: %v", err)
	}
	if got != want {
		t.Fatalf("Observed outcome = %s, want %s", got, want)
	}
}

func (e *env) result(t *testing.T, res *cosellv1.SalesforceResult, want syncer.Outcome) {
	t.Helper()
	e.seq++
	d := syncer.Delivery{MsgID: "res-" + res.GetCommandId(), Stream: bus.StreamResults, StreamSeq: e.seq}
	got, err := e.svc.Result(context.Background(), d, res)
	if err != nil {
		t.Fatalf("Result: %v", err)
	}
	if got != want {
		t.Fatalf("Result outcome = %s, want %s", got, want)
	}
}

func (e *env) link(t *testing.T, id string) *linkstore.Link {
	t.Helper()
	l, err := linkstore.Get(context.Background(), e.pool, id)
	if err != nil {
		t.Fatalf("get link: %v", err)
	}
	return l
}

func (e *env) kinds(t *testing.T, id string) []string {
	t.Helper()
	trail, err := linkstore.AuditTrail(context.Background(), e.pool, id, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(trail))
	for i, a := range trail {
		out[i] = a.Kind
	}
	return out
}

func fields(t *testing.T, cmd *cosellv1.UpsertOpportunityCommand) map[string]any {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(cmd.GetFieldsJson(), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func ok(cmd *cosellv1.UpsertOpportunityCommand, created bool) *cosellv1.SalesforceResult {
	return &cosellv1.SalesforceResult{CommandId: cmd.GetCommandId(), ReferralId: cmd.GetReferralId(),
		OpportunityId: "006000000000001AAA", Created: created, Outcome: cosellv1.Outcome_OUTCOME_OK, AccountId: "001000000000001AAA"}
}

func TestCreateThenUpdate(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, refID, 1, nil), syncer.OutcomeApplied)
	cmds := e.pub.all()
	if len(cmds) != 1 {
		t.Fatalf("%d commands, want 1", len(cmds))
	}
	c := cmds[0]
	if c.GetCommandId() != syncer.CommandID(refID, t0.Add(time.Second)) || c.GetExternalIdField() != "Referral_Identifier__c" || c.GetReferralId() != refID {
		t.Errorf("command = %v", c)
	}
	f := fields(t, c)
	if f["Name"] != "Contoso Retail cloud migration" || f["StageName"] != "On Hold" || f["CloseDate"] != "2026-05-24" || f["Amount"] != 50000.0 {
		t.Errorf("create fields = %v", f)
	}
	if c.GetAccount().GetName() != "Contoso Retail Inc" || c.GetAccount().GetCountry() != "US" || c.GetAccount().GetPostalCode() != "98052" {
		t.Errorf("account = %v", c.GetAccount())
	}
	e.result(t, ok(c, true), syncer.OutcomeRecorded)
	l := e.link(t, refID)
	if l.OpportunityID != "006000000000001AAA" || l.AccountID != "001000000000001AAA" || l.ResultCommandID != c.GetCommandId() {
		t.Errorf("link after result = %+v", l)
	}

	e.observe(t, snapshot(t, refID, 2, map[string]any{"status": "Active", "substatus": "Accepted",
		"details": map[string]any{"dealValue": 75000}}), syncer.OutcomeApplied)
	cmds = e.pub.all()
	if len(cmds) != 2 {
		t.Fatalf("%d commands, want 2", len(cmds))
	}
	f = fields(t, cmds[1])
	if _, has := f["Name"]; has {
		t.Errorf("update writes Name: %v", f)
	}
	if f["StageName"] != "Qualification" || f["Amount"] != 75000.0 {
		t.Errorf("update fields = %v", f)
	}
	want := []string{syncer.KindCommandSent, syncer.KindWritten, syncer.KindCommandSent}
	if got := e.kinds(t, refID); !slices.Equal(got, want) {
		t.Errorf("audit = %v, want %v", got, want)
	}
	if l := e.link(t, refID); l.PCETag != `"etag-2"` || !l.PCUpdatedAt.Equal(t0.Add(2*time.Second).Truncate(time.Microsecond)) {
		t.Errorf("link eTag %s updated %v", l.PCETag, l.PCUpdatedAt)
	}
}

func TestStaleSnapshotDropped(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, refID, 2, nil), syncer.OutcomeApplied)
	e.observe(t, snapshot(t, refID, 1, map[string]any{"name": "older"}), syncer.OutcomeStale)
	if n := len(e.pub.all()); n != 1 {
		t.Errorf("%d commands, want 1", n)
	}
	if got := e.kinds(t, refID); !slices.Equal(got, []string{syncer.KindCommandSent, syncer.KindStale}) {
		t.Errorf("audit = %v", got)
	}
	// The same snapshot again (a sweep) is a duplicate, not a change.
	e.observe(t, snapshot(t, refID, 2, nil), syncer.OutcomeRedelivered)
	e.result(t, ok(e.pub.all()[0], true), syncer.OutcomeRecorded)
	e.observe(t, snapshot(t, refID, 2, nil), syncer.OutcomeDuplicate)
}

func TestReorderedSnapshotsEndOnTheNewest(t *testing.T) {
	e := newEnv(t)
	v := func(n int) *cosellv1.ReferralObserved {
		return snapshot(t, refID, n, map[string]any{"details": map[string]any{"dealValue": 1000 * n}})
	}
	e.observe(t, v(1), syncer.OutcomeApplied)
	e.observe(t, v(3), syncer.OutcomeApplied)
	e.observe(t, v(2), syncer.OutcomeStale)
	cmds := e.pub.all()
	last := cmds[len(cmds)-1]
	if fields(t, last)["Amount"] != 3000.0 || last.GetSourceUpdatedAt().AsTime() != t0.Add(3*time.Second) {
		t.Errorf("last command = %v", last)
	}
	if l := e.link(t, refID); l.CommandID != last.GetCommandId() {
		t.Errorf("link command %s, want %s", l.CommandID, last.GetCommandId())
	}
}

func TestEchoDropped(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, refID, 1, nil), syncer.OutcomeApplied)
	e.result(t, ok(e.pub.all()[0], true), syncer.OutcomeRecorded)
	// A newer snapshot whose mapped values equal what we wrote: only
	// unmapped fields (team, eTag) changed, e.g. the echo of our own write.
	e.observe(t, snapshot(t, refID, 2, map[string]any{"team": []any{map[string]any{"firstName": "Alex"}}}), syncer.OutcomeEcho)
	if n := len(e.pub.all()); n != 1 {
		t.Errorf("%d commands, want 1", n)
	}
	// The echo still counts as seen: an older snapshot is now stale.
	e.observe(t, snapshot(t, refID, 1, nil), syncer.OutcomeStale)
	if l := e.link(t, refID); l.PCETag != `"etag-2"` {
		t.Errorf("eTag %s, want the echo's", l.PCETag)
	}
}

func TestRedeliveryHasNoSecondEffect(t *testing.T) {
	e := newEnv(t)
	ev := snapshot(t, refID, 1, nil)
	d := e.observe(t, ev, syncer.OutcomeApplied)
	audits := count(t, e.pool, `SELECT count(*) FROM mapper.audit_events`)
	// Redelivered before the result: the command is published again (same
	// id, so the broker and the adapter drop it) in case the first publish
	// never happened.
	e.observeAs(t, d, ev, syncer.OutcomeRedelivered)
	cmds := e.pub.all()
	if len(cmds) != 2 || cmds[0].GetCommandId() != cmds[1].GetCommandId() {
		t.Fatalf("commands = %v", cmds)
	}
	e.result(t, ok(cmds[0], true), syncer.OutcomeRecorded)
	// After the result, a redelivery does nothing at all.
	e.observeAs(t, d, ev, syncer.OutcomeDuplicate)
	if n := len(e.pub.all()); n != 2 {
		t.Errorf("%d publishes, want 2", n)
	}
	if got := count(t, e.pool, `SELECT count(*) FROM mapper.audit_events`); got != audits+1 {
		t.Errorf("audit rows %d, want %d (only the result's)", got, audits+1)
	}
	// A redelivered result is absorbed by the inbox.
	e.seq++
	res := ok(cmds[0], true)
	got, err := e.svc.Result(context.Background(), syncer.Delivery{MsgID: "res-" + res.GetCommandId(), Stream: bus.StreamResults, StreamSeq: e.seq}, res)
	if err != nil || got != syncer.OutcomeDuplicate {
		t.Errorf("redelivered result: %s, %v", got, err)
	}
}

func TestCrashBetweenCommitAndPublishIsHealed(t *testing.T) {
	e := newEnv(t)
	ev := snapshot(t, refID, 1, nil)
	d := e.delivery(ev)
	e.pub.fail = 1
	if _, err := e.svc.Observed(context.Background(), d, ev); err == nil {
		t.Fatal("publish failure not reported")
	}
	if n := len(e.pub.all()); n != 0 {
		t.Fatalf("%d commands published", n)
	}
	// JetStream redelivers the unacknowledged message.
	e.observeAs(t, d, ev, syncer.OutcomeRedelivered)
	cmds := e.pub.all()
	if len(cmds) != 1 || cmds[0].GetCommandId() != syncer.CommandID(refID, t0.Add(time.Second)) {
		t.Fatalf("commands = %v", cmds)
	}
}

func TestConcurrentDeliveriesMakeOneLink(t *testing.T) {
	t.Run("a transaction per message", func(t *testing.T) { concurrentDeliveriesMakeOneLink(t, false) })
	// Group commit puts several of the deliveries in one transaction,
	// where a later one sees the link an earlier one created.
	t.Run("group commit", func(t *testing.T) { concurrentDeliveriesMakeOneLink(t, true) })
}

func concurrentDeliveriesMakeOneLink(t *testing.T, group bool) {
	e := newEnv(t)
	// Two replicas, each with its own pool, get the same referral at once:
	// every snapshot three times, in scrambled order.
	pool2 := storetest.Open(t, e.pool.Config().ConnString())
	replica2 := e.service(t, pool2)
	services := []*syncer.Service{e.svc, replica2}
	if group {
		for i, pool := range []*pgxpool.Pool{e.pool, pool2} {
			g := store.NewGroup(pool, 2, 8)
			t.Cleanup(func() { t.Logf("replica %d group commit: %+v", i+1, g.Stats()); g.Close() })
			services[i].UseGroup(g)
		}
	}
	const versions = 6
	type job struct {
		d  syncer.Delivery
		ev *cosellv1.ReferralObserved
	}
	var jobs []job
	for copy := 0; copy < 3; copy++ {
		for _, v := range []int{3, 1, 6, 2, 5, 4} {
			ev := snapshot(t, refID, v, map[string]any{"details": map[string]any{"dealValue": 100 * v}})
			jobs = append(jobs, job{e.delivery(ev), ev})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	for i, j := range jobs {
		svc := services[i%2]
		wg.Go(func() {
			if _, err := svc.Observed(context.Background(), j.d, j.ev); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Observed: %v", err)
	}
	if n := count(t, e.pool, `SELECT count(*) FROM mapper.links`); n != 1 {
		t.Fatalf("%d links, want 1", n)
	}
	// At most one command per distinct snapshot, apart from re-publishes
	// of the same command id while its result is outstanding.
	bySnapshot := map[int64]map[string]bool{}
	for _, c := range e.pub.all() {
		ts := c.GetSourceUpdatedAt().AsTime().UnixNano()
		if bySnapshot[ts] == nil {
			bySnapshot[ts] = map[string]bool{}
		}
		bySnapshot[ts][c.GetCommandId()] = true
	}
	for ts, ids := range bySnapshot {
		if len(ids) != 1 {
			t.Errorf("snapshot %d produced commands %v", ts, ids)
		}
	}
	sent := count(t, e.pool, `SELECT count(*) FROM mapper.audit_events WHERE kind = $1`, syncer.KindCommandSent)
	if sent != len(bySnapshot) {
		t.Errorf("%d upsert_sent audit rows for %d distinct commands", sent, len(bySnapshot))
	}
	l := e.link(t, refID)
	newest := t0.Add(versions * time.Second)
	if !l.PCUpdatedAt.Equal(newest.Truncate(time.Microsecond)) || l.CommandID != syncer.CommandID(refID, newest) {
		t.Errorf("link ends at %v with command %s, want the newest", l.PCUpdatedAt, l.CommandID)
	}
}

func TestRejectedParksHoldsAndReplayResumes(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, refID, 1, nil), syncer.OutcomeApplied)
	first := e.pub.all()[0]
	e.result(t, &cosellv1.SalesforceResult{CommandId: first.GetCommandId(), ReferralId: refID, Outcome: cosellv1.Outcome_OUTCOME_REJECTED,
		ErrorCode: "FIELD_CUSTOM_VALIDATION_EXCEPTION", ErrorMessage: "Close date must be in the current fiscal year", ErrorFields: []string{"CloseDate"}},
		syncer.OutcomeParked)
	l := e.link(t, refID)
	if l.State != linkstore.StateParked {
		t.Fatalf("state %s, want parked", l.State)
	}
	trail, _ := linkstore.AuditTrail(context.Background(), e.pool, refID, 10)
	if a := trail[len(trail)-1]; a.Kind != syncer.KindRejected || !strings.Contains(a.Message, "Close date must be in the current fiscal year") {
		t.Errorf("audit = %+v", a)
	}
	var (
		reason  string
		payload []byte
	)
	if err := e.pool.QueryRow(context.Background(), `SELECT reason, payload FROM mapper.dead_letters WHERE referral_id = $1 AND replayed_at IS NULL`, refID).Scan(&reason, &payload); err != nil {
		t.Fatalf("dead letter: %v", err)
	}
	var parked cosellv1.ReferralObserved
	if err := proto.Unmarshal(payload, &parked); err != nil || parked.GetReferralId() != refID || !strings.Contains(reason, "FIELD_CUSTOM_VALIDATION_EXCEPTION") {
		t.Errorf("dead letter reason %q payload %v (%v)", reason, &parked, err)
	}

	// Later snapshots are recorded but held.
	e.observe(t, snapshot(t, refID, 2, map[string]any{"details": map[string]any{"closingDateTime": "2026-04-30T00:00:00Z"}}), syncer.OutcomeHeld)
	if n := len(e.pub.all()); n != 1 {
		t.Fatalf("%d commands while parked, want 1", n)
	}

	// The operator fixes the cause and replays: the held snapshot goes out.
	out, err := e.svc.Replay(context.Background(), refID)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	cmds := e.pub.all()
	if len(cmds) != 2 || out.CommandID != cmds[1].GetCommandId() || out.State != "active" {
		t.Fatalf("replay = %+v, commands %v", out, cmds)
	}
	if f := fields(t, cmds[1]); f["CloseDate"] != "2026-04-30" || f["Name"] == nil {
		t.Errorf("replayed fields = %v, want the held snapshot as a create", f)
	}
	if cmds[1].GetCommandId() == syncer.CommandID(refID, t0.Add(2*time.Second)) {
		t.Error("replay reused the snapshot's command id; the adapter's inbox would drop it")
	}
	if n := count(t, e.pool, `SELECT count(*) FROM mapper.dead_letters WHERE referral_id = $1 AND replayed_at IS NULL`, refID); n != 0 {
		t.Errorf("%d dead letters still pending", n)
	}
	e.result(t, ok(cmds[1], true), syncer.OutcomeRecorded)
	e.observe(t, snapshot(t, refID, 3, map[string]any{"details": map[string]any{"closingDateTime": "2026-04-30T00:00:00Z", "dealValue": 1}}), syncer.OutcomeApplied)
	if l := e.link(t, refID); l.State != linkstore.StateActive || l.OpportunityID == "" {
		t.Errorf("link after replay = %+v", l)
	}
}

func TestRejectionOfAnOlderCommandDoesNotPark(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, refID, 1, nil), syncer.OutcomeApplied)
	e.observe(t, snapshot(t, refID, 2, map[string]any{"name": "renamed", "details": map[string]any{"dealValue": 2}}), syncer.OutcomeApplied)
	old := e.pub.all()[0]
	e.result(t, &cosellv1.SalesforceResult{CommandId: old.GetCommandId(), ReferralId: refID, Outcome: cosellv1.Outcome_OUTCOME_REJECTED, ErrorMessage: "no"}, syncer.OutcomeRecorded)
	if l := e.link(t, refID); l.State != linkstore.StateActive {
		t.Errorf("state %s", l.State)
	}
}

func TestFailedResultForgetsTheProjection(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, refID, 1, nil), syncer.OutcomeApplied)
	c := e.pub.all()[0]
	e.result(t, &cosellv1.SalesforceResult{CommandId: c.GetCommandId(), ReferralId: refID, Outcome: cosellv1.Outcome_OUTCOME_FAILED, ErrorMessage: "REQUEST_LIMIT_EXCEEDED"}, syncer.OutcomeRecorded)
	// The same values again are not an echo: the write never landed.
	e.observe(t, snapshot(t, refID, 2, nil), syncer.OutcomeApplied)
}

func TestIgnoredReferralStartsNoSync(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, "ms-side", 1, map[string]any{"organizationId": "msft"}), syncer.OutcomeIgnored)
	if n := count(t, e.pool, `SELECT count(*) FROM mapper.links`); n != 0 {
		t.Errorf("%d links", n)
	}
	if got := e.kinds(t, "ms-side"); !slices.Equal(got, []string{syncer.KindIgnored}) {
		t.Errorf("audit = %v", got)
	}
	if n := len(e.pub.all()); n != 0 {
		t.Errorf("%d commands", n)
	}
}

func TestUnmappableReferralIsParked(t *testing.T) {
	e := newEnv(t)
	e.observe(t, snapshot(t, refID, 1, map[string]any{"details": map[string]any{"closingDateTime": nil}}), syncer.OutcomeParked)
	if n := len(e.pub.all()); n != 0 {
		t.Errorf("%d commands", n)
	}
	trail, _ := linkstore.AuditTrail(context.Background(), e.pool, refID, 10)
	if len(trail) != 1 || trail[0].Kind != syncer.KindMappingFailed || !strings.Contains(trail[0].Message, "CloseDate") {
		t.Errorf("audit = %+v", trail)
	}
	// Replaying an unchanged referral keeps it parked and says why.
	out, err := e.svc.Replay(context.Background(), refID)
	if err != nil || out.State != "parked" || !strings.Contains(out.Message, "CloseDate") {
		t.Errorf("replay = %+v, %v", out, err)
	}
	// A fixed snapshot is held; replay sends it.
	e.observe(t, snapshot(t, refID, 2, nil), syncer.OutcomeHeld)
	if out, err := e.svc.Replay(context.Background(), refID); err != nil || out.State != "active" {
		t.Errorf("replay = %+v, %v", out, err)
	}
	if n := len(e.pub.all()); n != 1 {
		t.Errorf("%d commands, want 1", n)
	}
}

func TestReplayUnknownReferral(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.Replay(context.Background(), "nope"); !syncer.IsNotFound(err) {
		t.Errorf("err = %v, want not found", err)
	}
}

func TestMalformedSnapshot(t *testing.T) {
	e := newEnv(t)
	ev := snapshot(t, refID, 1, nil)
	ev.ReferralJson = []byte("not json")
	if _, err := e.svc.Observed(context.Background(), e.delivery(ev), ev); !errors.Is(err, syncer.ErrMalformed) {
		t.Errorf("err = %v, want ErrMalformed", err)
	}
}
