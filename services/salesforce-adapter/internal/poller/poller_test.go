package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/cursorstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/poller"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// emulatorBin is built once by TestMain; tests only read it.
var emulatorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "poller-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emulatorBin, err = sfemutest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture is an emulator, a client on it, a migrated database and a
// JetStream server with the pipeline's streams.
type fixture struct {
	emu     *sfemutest.Emulator
	client  *sfclient.Client
	db      *pgxpool.Pool
	cursors *cursorstore.Store
	conn    *bus.Conn
	obs     jetstream.Consumer
}

func start(t testing.TB, emuOpts sfemutest.Options) *fixture {
	t.Helper()
	emu := sfemutest.Start(t, emulatorBin, emuOpts)
	client, err := sfclient.New(sfclient.Config{
		Credentials: sfclient.Credentials{
			Mode: sfclient.AuthJWT, LoginURL: emu.URL, Audience: sfemutest.Audience,
			ClientID: sfemutest.ClientID, Username: sfemutest.Username, Key: emu.Key,
		},
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		Retry:      sfclient.Retry{Attempts: 2, Initial: time.Millisecond, Max: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	fsys, err := migrations.FS("salesforce-adapter")
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.NewDB(t, "salesforce-adapter", fsys)
	conn, err := bus.Connect(context.Background(), bustest.RunServer(t), "test", bus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(context.Background(), bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	obs, err := conn.JetStream().OrderedConsumer(context.Background(), bus.StreamOpportunities, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{emu: emu, client: client, db: db, cursors: cursorstore.New(db), conn: conn, obs: obs}
}

// newPoller returns a poller publishing to the fixture's bus.
func (f *fixture) newPoller(t testing.TB, sf poller.Salesforce, pub poller.Publisher) *poller.Poller {
	t.Helper()
	if sf == nil {
		sf = f.client
	}
	if pub == nil {
		pub = f.conn
	}
	// Every poll a full one, as these tests move the org's clock, not the
	// local one; TestQuickPollsBetweenFullOnes covers the schedule.
	p, err := poller.New(sf, pub, f.cursors, poller.Config{Interval: 20 * time.Millisecond, Overlap: 2 * time.Minute, OverlapEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// observed is a received OpportunityObserved.
type observed struct {
	msg    *cosellv1.OpportunityObserved
	msgID  string
	record map[string]any
}

// drain returns every OpportunityObserved published since the last drain.
func (f *fixture) drain(t *testing.T) []observed {
	t.Helper()
	var out []observed
	for {
		batch, err := f.obs.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var o cosellv1.OpportunityObserved
			if err := proto.Unmarshal(m.Data(), &o); err != nil {
				t.Fatal(err)
			}
			ob := observed{msg: &o, msgID: m.Headers().Get(jetstream.MsgIDHeader)}
			if len(o.GetRecordJson()) > 0 {
				if err := json.Unmarshal(o.GetRecordJson(), &ob.record); err != nil {
					t.Fatalf("record_json %s: %v", o.GetRecordJson(), err)
				}
			}
			out = append(out, ob)
		}
		if n == 0 {
			return out
		}
	}
}

// mustPoll runs one poll that must succeed.
func mustPoll(t *testing.T, p *poller.Poller) cursorstore.Run {
	t.Helper()
	run, err := p.Poll(context.Background())
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return run
}

func opportunity(name string, extra map[string]any) map[string]any {
	o := map[string]any{"Name": name, "StageName": "Prospecting", "CloseDate": "2030-06-30", "Amount": 50000}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

// ids lists the observations' opportunity ids, sorted: a page is
// published concurrently, so the order on the stream is not the query's.
func ids(obs []observed) []string {
	out := make([]string, len(obs))
	for i, o := range obs {
		out[i] = o.msg.GetOpportunityId()
	}
	slices.Sort(out)
	return out
}

func TestOptedInOpportunityIsObservedOnceWithItsAccountContactsAndSolutions(t *testing.T) {
	f := start(t, sfemutest.Options{})
	p := f.newPoller(t, nil, nil)
	acct := f.emu.CreateRecord("Account", map[string]any{"Name": "Contoso", "BillingCountry": "DE", "BillingPostalCode": "10115",
		"BillingCity": "Berlin", "BillingStreet": "Unter den Linden 1"})
	contact := f.emu.CreateRecord("Contact", map[string]any{"FirstName": "Jane", "LastName": "Doe", "Email": "jane@contoso.example",
		"Phone": "+49 30 1234", "AccountId": acct["Id"]})
	// Not opted in, so not published yet: the contact role and the
	// solution are attached before the seller ticks the box.
	opp := f.emu.CreateRecord("Opportunity", opportunity("Contoso expansion", map[string]any{"AccountId": acct["Id"],
		"How_can_Microsoft_help__c": "Proof of concept or demo", "Description": "Migration to Azure"}))
	id := opp["Id"].(string)
	f.emu.CreateRecord("OpportunityContactRole", map[string]any{"OpportunityId": id, "ContactId": contact["Id"], "Role": "Decision Maker", "IsPrimary": true})
	f.emu.CreateRecord("Microsoft_Solution__c", map[string]any{"Opportunity__c": id, "Solution_Identifier__c": "SOL-42", "Name": "Azure Migrate"})
	f.emu.CreateRecord("Opportunity", opportunity("Not for co-sell", nil))
	linked := f.emu.CreateRecord("Opportunity", opportunity("Linked", map[string]any{"Referral_Identifier__c": "ref-linked"}))

	if run := mustPoll(t, p); run.Published != 1 || run.Pages != 1 {
		t.Fatalf("first poll = %+v, want the linked opportunity only", run)
	}
	if got := f.drain(t); len(got) != 1 || got[0].msg.GetOpportunityId() != linked["Id"] {
		t.Fatalf("first poll published %v, want only the linked %s", ids(got), linked["Id"])
	}

	opp = f.emu.UpdateRecord("Opportunity", id, map[string]any{"Sync_with_Partner_Center__c": true})
	mustPoll(t, p)
	got := f.drain(t)
	if len(got) != 1 {
		t.Fatalf("published %v, want the opted-in opportunity once", ids(got))
	}
	o := got[0]
	_, seller := f.emu.Users()
	wantStamp := opp["SystemModstamp"].(string)
	if o.msg.GetOpportunityId() != id || o.msg.GetDeleted() || o.msg.GetLastModifiedById() != seller ||
		o.msgID != "opp:"+id+":"+wantStamp || o.msg.GetObservedAt() == nil {
		t.Fatalf("message = %v (Msg-Id %s), want %s at %s by %s", o.msg, o.msgID, id, wantStamp, seller)
	}
	if got := o.msg.GetSystemModstamp().AsTime().Format("2006-01-02T15:04:05.000-0700"); got != wantStamp {
		t.Fatalf("system_modstamp %s, want %s", got, wantStamp)
	}
	if strings.Contains(string(o.msg.GetRecordJson()), `"attributes"`) {
		t.Fatalf("record_json keeps attributes: %s", o.msg.GetRecordJson())
	}
	r := o.record
	for _, k := range []string{"Id", "Name", "Amount", "CurrencyIsoCode", "CloseDate", "StageName", "Description", "IsClosed", "IsWon",
		"IsDeleted", "SystemModstamp", "LastModifiedById", "Sync_with_Partner_Center__c", "Referral_Identifier__c", "Referral_Link__c",
		"How_can_Microsoft_help__c", "Products__c", "Microsoft_CRM_Identifier__c", "Decline_Reason__c", "AccountId", "Account",
		"OpportunityContactRoles", "Microsoft_Solutions__r"} {
		if _, ok := r[k]; !ok {
			t.Errorf("record_json lacks %s", k)
		}
	}
	if r["Sync_with_Partner_Center__c"] != true || r["Amount"] != 50000.0 || r["Description"] != "Migration to Azure" {
		t.Errorf("record fields = %v", r)
	}
	a, _ := r["Account"].(map[string]any)
	if a["Name"] != "Contoso" || a["BillingCountry"] != "DE" || a["BillingPostalCode"] != "10115" || a["BillingCity"] != "Berlin" ||
		a["BillingStreet"] != "Unter den Linden 1" {
		t.Errorf("Account = %v", a)
	}
	roles, _ := r["OpportunityContactRoles"].(map[string]any)["records"].([]any)
	if len(roles) != 1 {
		t.Fatalf("contact roles = %v", r["OpportunityContactRoles"])
	}
	role := roles[0].(map[string]any)
	c, _ := role["Contact"].(map[string]any)
	if role["ContactId"] != contact["Id"] || role["Role"] != "Decision Maker" || role["IsPrimary"] != true ||
		c["FirstName"] != "Jane" || c["LastName"] != "Doe" || c["Email"] != "jane@contoso.example" || c["Phone"] != "+49 30 1234" {
		t.Errorf("contact role = %v", role)
	}
	sols, _ := r["Microsoft_Solutions__r"].(map[string]any)["records"].([]any)
	if len(sols) != 1 || sols[0].(map[string]any)["Solution_Identifier__c"] != "SOL-42" || sols[0].(map[string]any)["Name"] != "Azure Migrate" {
		t.Errorf("solutions = %v", r["Microsoft_Solutions__r"])
	}

	// A seller's edit is one more observation; polls without changes
	// publish nothing and cost one call each.
	f.emu.UpdateRecord("Opportunity", id, map[string]any{"Amount": 75000})
	mustPoll(t, p)
	if got := f.drain(t); len(got) != 1 || got[0].record["Amount"] != 75000.0 {
		t.Fatalf("after the edit: %v", got)
	}
	f.emu.ResetCounters()
	for range 3 {
		if run := mustPoll(t, p); run.Published != 0 {
			t.Fatalf("quiet poll published %d", run.Published)
		}
	}
	if got := f.drain(t); len(got) != 0 {
		t.Fatalf("quiet polls published %v", ids(got))
	}
	calls := f.emu.Counters().Calls
	var total int64
	for _, n := range calls {
		total += n
	}
	if calls["queryAll"] != 3 || total != 3 {
		t.Fatalf("3 quiet polls made calls %v, want exactly one queryAll each", calls)
	}
}

func TestEditAtTheWatermarkIsNeitherMissedNorRepeated(t *testing.T) {
	f := start(t, sfemutest.Options{})
	p := f.newPoller(t, nil, nil)
	ctx := context.Background()
	watermark := func() string {
		t.Helper()
		cur, err := f.cursors.Get(ctx, poller.Cursor)
		if err != nil || cur.Watermark == nil {
			t.Fatalf("cursor %+v, %v", cur, err)
		}
		return cur.Watermark.UTC().Format("2006-01-02T15:04:05.000+0000")
	}
	optedIn := map[string]any{"Sync_with_Partner_Center__c": true}

	// A just before a poll, B just after it: milliseconds apart, usually
	// in the same second as the watermark.
	a := f.emu.CreateRecord("Opportunity", opportunity("A", optedIn))
	if run := mustPoll(t, p); run.Published != 1 || watermark() != a["SystemModstamp"] {
		t.Fatalf("first poll %+v, watermark %s, want A at %s", run, watermark(), a["SystemModstamp"])
	}
	b := f.emu.CreateRecord("Opportunity", opportunity("B", optedIn))
	if run := mustPoll(t, p); run.Seen != 2 || run.Published != 1 || watermark() != b["SystemModstamp"] {
		t.Fatalf("second poll %+v, watermark %s; want A seen again and only B (%s) published", run, watermark(), b["SystemModstamp"])
	}
	// 90 s later by the org's clock, still within the 2-minute overlap:
	// A and B come back with C, and only C is new.
	f.emu.AdvanceClock(90 * time.Second)
	c := f.emu.CreateRecord("Opportunity", opportunity("C", optedIn))
	if run := mustPoll(t, p); run.Seen != 3 || run.Published != 1 {
		t.Fatalf("third poll %+v, want A, B, C seen and C published", run)
	}
	// D, more than the overlap after C: the poll that finds it still asks
	// from C's time minus the overlap; the next one only from D's.
	f.emu.AdvanceClock(125 * time.Second)
	d := f.emu.CreateRecord("Opportunity", opportunity("D", optedIn))
	if run := mustPoll(t, p); run.Seen != 4 || run.Published != 1 || watermark() != d["SystemModstamp"] {
		t.Fatalf("fourth poll %+v, watermark %s; want all seen, D (%s) published", run, watermark(), d["SystemModstamp"])
	}
	if run := mustPoll(t, p); run.Seen != 1 || run.Published != 0 {
		t.Fatalf("quiet poll %+v, want only D seen again", run)
	}
	want := []string{a["Id"].(string), b["Id"].(string), c["Id"].(string), d["Id"].(string)}
	slices.Sort(want)
	if got := ids(f.drain(t)); !slices.Equal(got, want) {
		t.Fatalf("published %v, want each of %v once", got, want)
	}
	cur, err := f.cursors.Get(ctx, poller.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Last.Outcome != poller.OutcomeOK || cur.Last.Seen != 1 || cur.Last.Published != 0 || cur.Last.Pages != 1 || cur.Last.FinishedAt.IsZero() {
		t.Fatalf("cursor row = %+v", cur.Last)
	}
}

// lateCommit is Salesforce as seen through a query: a record whose
// SystemModstamp lies before the newest one already returned shows up
// only later (its transaction committed late).
type lateCommit struct {
	mu    sync.Mutex
	pages [][]string // rows per poll
	soql  []string
}

func (l *lateCommit) QueryAll(_ context.Context, soql string) (*sfclient.QueryResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.soql = append(l.soql, soql)
	var rows []string
	if len(l.pages) > 0 {
		rows, l.pages = l.pages[0], l.pages[1:]
	}
	res := &sfclient.QueryResult{TotalSize: len(rows), Done: true}
	for _, r := range rows {
		res.Records = append(res.Records, json.RawMessage(r))
	}
	return res, nil
}

func (l *lateCommit) QueryMore(context.Context, string) (*sfclient.QueryResult, error) {
	return nil, errors.New("no more pages")
}

func row(id, stamp string) string {
	return fmt.Sprintf(`{"attributes":{"type":"Opportunity"},"Id":%q,"SystemModstamp":%q,"IsDeleted":false,"Sync_with_Partner_Center__c":true}`, id, stamp)
}

func TestOverlapCatchesALateCommitBelowTheWatermark(t *testing.T) {
	f := start(t, sfemutest.Options{})
	sf := &lateCommit{pages: [][]string{
		{row("0068d0000000001AAA", "2030-01-01T10:00:00.000+0000"), row("0068d0000000002AAA", "2030-01-01T10:05:00.000+0000")},
		// Poll 2: C was stamped 90 s before the watermark but committed
		// after poll 1; the overlap returns B again with it.
		{row("0068d0000000003AAA", "2030-01-01T10:03:30.000+0000"), row("0068d0000000002AAA", "2030-01-01T10:05:00.000+0000")},
		{},
	}}
	p := f.newPoller(t, sf, nil)
	mustPoll(t, p)
	mustPoll(t, p)
	mustPoll(t, p)
	if got := ids(f.drain(t)); strings.Join(got, ",") != "0068d0000000001AAA,0068d0000000002AAA,0068d0000000003AAA" {
		t.Fatalf("published %v, want 1, 2, then the late 3 once", got)
	}
	if !strings.Contains(sf.soql[0], "FROM Opportunity WHERE "+poller.Relevant+" ORDER BY SystemModstamp, Id") {
		t.Fatalf("first poll (no watermark) = %s, want every relevant opportunity", sf.soql[0])
	}
	for _, q := range sf.soql[1:] {
		if !strings.Contains(q, "WHERE SystemModstamp >= 2030-01-01T10:03:00Z AND "+poller.Relevant) {
			t.Fatalf("poll = %s, want SystemModstamp >= the watermark minus 2 minutes (it never moves back)", q)
		}
	}
	// Versions older than the next poll's lower bound were pruned.
	var n int
	if err := f.db.QueryRow(context.Background(), `SELECT count(*) FROM salesforce_adapter.observed`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d published versions kept, want 2 (the one at 10:00 is below 10:03 and pruned)", n)
	}
}

func TestPagesThroughNextRecordsURL(t *testing.T) {
	f := start(t, sfemutest.Options{Args: []string{"-max-page-size", "2"}})
	p := f.newPoller(t, nil, nil)
	var want []string
	for i := range 5 {
		o := f.emu.CreateRecord("Opportunity", opportunity(fmt.Sprintf("Paged %d", i), map[string]any{"Sync_with_Partner_Center__c": true}))
		want = append(want, o["Id"].(string))
	}
	f.emu.ResetCounters()
	run := mustPoll(t, p)
	if run.Pages != 3 || run.Published != 5 {
		t.Fatalf("poll = %+v, want 5 published over 3 pages", run)
	}
	if got := ids(f.drain(t)); !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if c := f.emu.Counters().Calls; c["queryAll"] != 1 || c["query.more"] != 2 {
		t.Fatalf("calls = %v, want one queryAll and two locator pages", c)
	}
}

func TestDeletionsAreObserved(t *testing.T) {
	f := start(t, sfemutest.Options{})
	p := f.newPoller(t, nil, nil)
	opp := f.emu.CreateRecord("Opportunity", opportunity("Doomed", map[string]any{"Sync_with_Partner_Center__c": true}))
	other := f.emu.CreateRecord("Opportunity", opportunity("Never opted in", nil))
	mustPoll(t, p)
	f.drain(t)

	f.emu.AdvanceClock(time.Second)
	f.emu.DeleteRecord("Opportunity", opp["Id"].(string))
	f.emu.DeleteRecord("Opportunity", other["Id"].(string))
	mustPoll(t, p)
	got := f.drain(t)
	if len(got) != 2 {
		t.Fatalf("published %v, want both deletions", ids(got))
	}
	if got[0].msg.GetOpportunityId() != opp["Id"] {
		got[0], got[1] = got[1], got[0]
	}
	del := f.emu.Record("Opportunity", opp["Id"].(string))
	d := got[0]
	if d.msg.GetOpportunityId() != opp["Id"] || !d.msg.GetDeleted() || d.msgID != "opp-deleted:"+opp["Id"].(string)+":"+del["SystemModstamp"].(string) ||
		d.record["IsDeleted"] != true || d.record["Name"] != "Doomed" {
		t.Fatalf("deletion = %v (Msg-Id %s)", d.msg, d.msgID)
	}
	if !got[1].msg.GetDeleted() || got[1].msg.GetOpportunityId() != other["Id"] {
		t.Fatalf("second deletion = %v", got[1].msg)
	}
	if mustPoll(t, p); len(f.drain(t)) != 0 {
		t.Fatal("a deletion was published twice")
	}
}

func TestRestartResumesFromTheWatermarkWithoutRepeats(t *testing.T) {
	f := start(t, sfemutest.Options{})
	a := f.emu.CreateRecord("Opportunity", opportunity("A", map[string]any{"Sync_with_Partner_Center__c": true}))
	mustPoll(t, f.newPoller(t, nil, nil))
	if got := f.drain(t); len(got) != 1 {
		t.Fatalf("published %v", ids(got))
	}
	// A new process: only the database remembers.
	b := f.emu.CreateRecord("Opportunity", opportunity("B", map[string]any{"Sync_with_Partner_Center__c": true}))
	run := mustPoll(t, f.newPoller(t, nil, nil))
	got := f.drain(t)
	if len(got) != 1 || got[0].msg.GetOpportunityId() != b["Id"] || run.Seen != 2 {
		t.Fatalf("after restart published %v (run %+v), want only B (A seen again in the overlap, %s)", ids(got), run, a["Id"])
	}
}

// failingPublisher fails every publish after the first ok ones.
type failingPublisher struct {
	next poller.Publisher
	ok   atomic.Int64
}

func (f *failingPublisher) Publish(ctx context.Context, subject, msgID string, m proto.Message) error {
	if f.ok.Add(-1) < 0 {
		return errors.New("nats: no responders")
	}
	return f.next.Publish(ctx, subject, msgID, m)
}

func TestFailedPublishKeepsTheWatermark(t *testing.T) {
	f := start(t, sfemutest.Options{})
	a := f.emu.CreateRecord("Opportunity", opportunity("A", map[string]any{"Sync_with_Partner_Center__c": true}))
	mustPoll(t, f.newPoller(t, nil, nil))
	f.drain(t)
	ctx := context.Background()
	before, err := f.cursors.Get(ctx, poller.Cursor)
	if err != nil {
		t.Fatal(err)
	}

	f.emu.AdvanceClock(time.Minute)
	b := f.emu.CreateRecord("Opportunity", opportunity("B", map[string]any{"Sync_with_Partner_Center__c": true}))
	broken := &failingPublisher{next: f.conn}
	if _, err := f.newPoller(t, nil, broken).Poll(ctx); err == nil {
		t.Fatal("poll with a failing publisher succeeded")
	}
	after, err := f.cursors.Get(ctx, poller.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Watermark.Equal(*before.Watermark) || after.Last.Outcome != poller.OutcomeFailed || !strings.Contains(after.Last.Error, "no responders") {
		t.Fatalf("after the failure: watermark %v (was %v), last %+v", after.Watermark, before.Watermark, after.Last)
	}
	mustPoll(t, f.newPoller(t, nil, nil))
	if got := f.drain(t); len(got) != 1 || got[0].msg.GetOpportunityId() != b["Id"] {
		t.Fatalf("next poll published %v, want B (not A %s again)", ids(got), a["Id"])
	}
}

func TestExhaustedBudgetDefersThePoll(t *testing.T) {
	f := start(t, sfemutest.Options{APILimit: 10})
	p := f.newPoller(t, nil, nil)
	mustPoll(t, p) // learns the usage
	f.emu.SetUsage(8, 10)
	mustPoll(t, p) // 9 of 10 used now: the 80 % budget is spent
	if _, err := p.Poll(context.Background()); !errors.Is(err, sfclient.ErrBudgetExhausted) {
		t.Fatalf("poll over the budget = %v, want ErrBudgetExhausted", err)
	}
	cur, err := f.cursors.Get(context.Background(), poller.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Last.Outcome != poller.OutcomeDeferred {
		t.Fatalf("last outcome %q, want deferred", cur.Last.Outcome)
	}
	if used := f.emu.Counters().APIUsage.Used; used != 9 {
		t.Fatalf("usage %d, want 9 (no call over the budget)", used)
	}
}

// countingSalesforce counts one poller's queries.
type countingSalesforce struct {
	poller.Salesforce
	polls atomic.Int64
}

func (c *countingSalesforce) QueryAll(ctx context.Context, soql string) (*sfclient.QueryResult, error) {
	c.polls.Add(1)
	return c.Salesforce.QueryAll(ctx, soql)
}

func TestOnlyTheLeaseHolderPolls(t *testing.T) {
	f := start(t, sfemutest.Options{})
	type replica struct {
		sf     *countingSalesforce
		cancel context.CancelFunc
		done   chan error
	}
	var replicas []*replica
	for range 2 {
		r := &replica{sf: &countingSalesforce{Salesforce: f.client}, done: make(chan error, 1)}
		p := f.newPoller(t, r.sf, nil)
		lease := store.NewLease(f.db, poller.LeaseName, store.WithLeaseCheckInterval(50*time.Millisecond), store.WithLeaseRetryInterval(20*time.Millisecond))
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go func() { r.done <- lease.Run(ctx, p.Run) }()
		replicas = append(replicas, r)
		t.Cleanup(func() { cancel(); <-r.done })
	}
	waitFor(t, "a few polls", func() bool { return replicas[0].sf.polls.Load()+replicas[1].sf.polls.Load() >= 5 })
	holder, waiter := replicas[0], replicas[1]
	if holder.sf.polls.Load() == 0 {
		holder, waiter = waiter, holder
	}
	if waiter.sf.polls.Load() != 0 {
		t.Fatalf("both replicas polled: %d and %d", holder.sf.polls.Load(), waiter.sf.polls.Load())
	}
	// The holder stops (a rollout, a crash): the other takes over.
	holder.cancel()
	if err := <-holder.done; err != nil {
		t.Fatal(err)
	}
	holder.done <- nil
	a := f.emu.CreateRecord("Opportunity", opportunity("After the hand-over", map[string]any{"Sync_with_Partner_Center__c": true}))
	waitFor(t, "the other replica to poll", func() bool { return waiter.sf.polls.Load() > 0 })
	var got []observed
	waitFor(t, "the observation", func() bool { got = append(got, f.drain(t)...); return len(got) > 0 })
	if len(got) != 1 || got[0].msg.GetOpportunityId() != a["Id"] {
		t.Fatalf("published %v", ids(got))
	}
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clock is a settable local clock for the poller's schedule.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestQuickPollsBetweenFullOnes(t *testing.T) {
	f := start(t, sfemutest.Options{})
	clk := &clock{now: time.Date(2030, 1, 1, 10, 5, 30, 0, time.UTC)}
	const b = "0068d0000000002AAA"
	sf := &lateCommit{pages: [][]string{
		{row("0068d0000000001AAA", "2030-01-01T10:00:00.000+0000"), row(b, "2030-01-01T10:05:00.000+0000")}, // 1: full (first)
		{row(b, "2030-01-01T10:05:00.000+0000")},                                                            // 2: quick
		// 3: quick; a record stamped 90 s below the watermark commits now
		// but is outside the quick window, so Salesforce does not return it.
		{row(b, "2030-01-01T10:05:00.000+0000")},
		// 4: full, 30 s after the first: the late record comes back.
		{row("0068d0000000003AAA", "2030-01-01T10:03:30.000+0000"), row(b, "2030-01-01T10:05:00.000+0000")},
		{}, {}, {}, {},
	}}
	p, err := poller.New(sf, f.conn, f.cursors, poller.Config{Interval: time.Second, Overlap: 2 * time.Minute,
		QuickOverlap: 5 * time.Second, OverlapEvery: 30 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	quick := "WHERE SystemModstamp >= 2030-01-01T10:04:55Z AND "
	full := "WHERE SystemModstamp >= 2030-01-01T10:03:00Z AND "
	steps := []struct {
		advance time.Duration
		want    string // "" = no watermark yet
	}{
		{0, "FROM Opportunity WHERE " + poller.Relevant},
		{15 * time.Second, quick},
		{10 * time.Second, quick},
		{5 * time.Second, full}, // 30 s after the first full poll
		{15 * time.Second, quick},
		// More than Overlap after the watermark last moved (10:05:30 local)
		// and after a full poll at 10:06:00: one more full poll ran at a
		// time a late commit was possible, then none is needed.
		{30 * time.Second, full},  // 10:06:45 < 10:05:30 + 2m: still possible
		{100 * time.Second, full}, // 10:08:25: the last full poll ran at 10:06:45, before 10:07:30
		{60 * time.Second, quick}, // the last full one (10:08:25) came after 10:07:30: no more
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		run := mustPoll(t, p)
		if q := sf.soql[i]; !strings.Contains(q, st.want) {
			t.Fatalf("poll %d at %s = %s, want %q", i+1, clk.Now().Format(time.TimeOnly), q, st.want)
		}
		if run.Full != (st.want != quick) {
			t.Fatalf("poll %d: Run.Full = %v", i+1, run.Full)
		}
	}
	if got := ids(f.drain(t)); strings.Join(got, ",") != "0068d0000000001AAA,0068d0000000002AAA,0068d0000000003AAA" {
		t.Fatalf("published %v, want 1, 2, then the late 3 once", got)
	}
}

// Polls more frequent than QuickOverlap ask from the watermark ("tail"),
// and a quick poll once per QuickOverlap asks from the watermark the last
// quick one left minus QuickOverlap, so a record that commits late, within
// QuickOverlap of its stamp, is still found (once) without every poll
// re-reading those seconds.
func TestTailPollsBetweenQuickOnes(t *testing.T) {
	f := start(t, sfemutest.Options{})
	clk := &clock{now: time.Date(2030, 1, 1, 10, 5, 0, 0, time.UTC)}
	const a, b, e, g, late = "0068d0000000001AAA", "0068d0000000002AAA", "0068d0000000005AAA", "0068d0000000006AAA", "0068d0000000009AAA"
	sf := &lateCommit{pages: [][]string{
		{row(a, "2030-01-01T10:00:00.000+0000"), row(b, "2030-01-01T10:05:00.000+0000")}, // full (first)
		{row(b, "2030-01-01T10:05:00.000+0000"), row(e, "2030-01-01T10:05:01.000+0000")}, // tail
		// tail: the late record, stamped 10:04:58, has not committed yet
		{row(e, "2030-01-01T10:05:01.000+0000"), row(g, "2030-01-01T10:05:02.000+0000")},
		{row(g, "2030-01-01T10:05:02.000+0000")}, // tail; the late record commits now, below the watermark
		{row(g, "2030-01-01T10:05:02.000+0000")}, // tail: it is not in the window
		// quick, 5 s after the first poll: from 10:05:00 - 5 s
		{row(late, "2030-01-01T10:04:58.000+0000"), row(b, "2030-01-01T10:05:00.000+0000"),
			row(e, "2030-01-01T10:05:01.000+0000"), row(g, "2030-01-01T10:05:02.000+0000")},
		{row(g, "2030-01-01T10:05:02.000+0000")}, // tail
		{}, {}, {}, {},
	}}
	p, err := poller.New(sf, f.conn, f.cursors, poller.Config{Interval: time.Second, Overlap: 2 * time.Minute,
		QuickOverlap: 5 * time.Second, OverlapEvery: 30 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	steps := []struct {
		advance time.Duration
		want    string
		full    bool
	}{
		{0, "FROM Opportunity WHERE " + poller.Relevant, true},
		{time.Second, "WHERE SystemModstamp >= 2030-01-01T10:05:00Z AND ", false},
		{time.Second, "WHERE SystemModstamp >= 2030-01-01T10:05:01Z AND ", false},
		{time.Second, "WHERE SystemModstamp >= 2030-01-01T10:05:02Z AND ", false},
		{time.Second, "WHERE SystemModstamp >= 2030-01-01T10:05:02Z AND ", false},
		{time.Second, "WHERE SystemModstamp >= 2030-01-01T10:04:55Z AND ", false},     // quick
		{time.Second, "WHERE SystemModstamp >= 2030-01-01T10:05:02Z AND ", false},     // tail again
		{4 * time.Second, "WHERE SystemModstamp >= 2030-01-01T10:04:57Z AND ", false}, // quick: 10:05:02 - 5 s
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		run := mustPoll(t, p)
		if q := sf.soql[i]; !strings.Contains(q, st.want) {
			t.Fatalf("poll %d at %s = %s, want %q", i+1, clk.Now().Format(time.TimeOnly), q, st.want)
		}
		if run.Full != st.full {
			t.Fatalf("poll %d: Run.Full = %v, want %v", i+1, run.Full, st.full)
		}
	}
	got := ids(f.drain(t))
	want := []string{a, b, e, g, late}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("published %v, want each of %v once", got, want)
	}
}
