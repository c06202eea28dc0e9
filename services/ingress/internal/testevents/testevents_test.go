package testevents_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/ingress/internal/notification"
	"github.com/cosell/cosell/services/ingress/internal/testevents"
)

func TestRecordTest(t *testing.T) {
	pool := storetest.NewDB(t, "ingress", storetest.RepoMigrations(t, "ingress"))
	s := testevents.New(pool)

	changed := time.Date(2017, 11, 16, 16, 19, 6, 352027000, time.UTC)
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	n := notification.Notification{
		EventName: "test-created", ResourceURI: "https://api.partnercenter.microsoft.com/webhooks/v1/registration/validationEvents/c1",
		ResourceName: "test", ResourceChangeUTC: changed,
	}
	traceID := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
	}))
	if err := s.RecordTest(ctx, n, "m1", received); err != nil {
		t.Fatalf("RecordTest: %v", err)
	}
	if err := s.RecordTest(context.Background(), n, "m1", received.Add(time.Second)); err != nil {
		t.Fatalf("RecordTest retry: %v", err)
	}

	rows, err := pool.Query(context.Background(), `
		SELECT received_at, msg_id, event_name, resource_uri, resource_name, audit_uri, resource_change_utc, trace_id
		FROM ingress.test_events ORDER BY id`)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var (
			rec, chg           time.Time
			msgID, ev, uri, rn string
			audit, tid         *string
		)
		if err := rows.Scan(&rec, &msgID, &ev, &uri, &rn, &audit, &chg, &tid); err != nil {
			t.Fatalf("scan: %v", err)
		}
		if audit != nil {
			t.Errorf("audit_uri = %q, want NULL", *audit)
		}
		if !chg.Equal(changed) || ev != n.EventName || uri != n.ResourceURI || rn != "test" || msgID != "m1" {
			t.Errorf("row = %v %q %q %q %q, want the notification", chg, msgID, ev, uri, rn)
		}
		tids := "<nil>"
		if tid != nil {
			tids = *tid
		}
		got = append(got, rec.UTC().Format(time.RFC3339)+" "+tids)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	want := []string{"2026-01-02T03:04:05Z " + traceID.String(), "2026-01-02T03:04:06Z <nil>"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("rows = %v, want %v", got, want)
	}
}
