package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderCarrierKeepsLowercaseKeys(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ts, _ := trace.ParseTraceState("vendor=value")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	h := nats.Header{}
	propagation.TraceContext{}.Inject(ctx, HeaderCarrier(h))
	if got := h["traceparent"]; len(got) != 1 || got[0] != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Fatalf("traceparent header = %q (all headers %v)", got, h)
	}
	if got := h["tracestate"]; len(got) != 1 || got[0] != "vendor=value" {
		t.Fatalf("tracestate header = %q", got)
	}
	if _, ok := h["Traceparent"]; ok {
		t.Fatal("carrier canonicalised the key")
	}

	got := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), HeaderCarrier(h)))
	if got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() {
		t.Fatalf("extracted %v, want trace %s span %s remote", got, tid, sid)
	}
}

func TestHeaderCarrierReadsOtherCase(t *testing.T) {
	h := nats.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	got := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), HeaderCarrier(h)))
	if got.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("extracted %v from capitalised header", got)
	}
	if HeaderCarrier(h).Get("missing") != "" {
		t.Fatal("Get of a missing key returned a value")
	}
}

func TestBackoffDelayIsBoundedAndGrows(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	nominal := map[uint64]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second}
	for deliveries, d := range nominal {
		for range 200 {
			got := b.Delay(deliveries)
			if got < d/2 || got > d {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", deliveries, got, d/2, d)
			}
		}
	}
}

func TestNotificationSubject(t *testing.T) {
	got, err := NotificationSubject("referral-created")
	if err != nil || got != "pc.notification.v1.referral-created" {
		t.Fatalf("NotificationSubject = %q, %v", got, err)
	}
	for _, bad := range []string{"", "referral.created", "referral-*", ">", "a b", "x\r\ny", strings.Repeat("a", 200)} {
		if s, err := NotificationSubject(bad); err == nil {
			t.Errorf("NotificationSubject(%q) = %q, want an error", bad, s)
		}
	}
}

func TestPermanentAndRetryAfter(t *testing.T) {
	base := errors.New("boom")
	if Permanent(nil) != nil || RetryAfter(nil, time.Second) != nil {
		t.Fatal("wrapping nil must give nil")
	}
	p := fmt.Errorf("handle: %w", Permanent(base))
	if !IsPermanent(p) || !errors.Is(p, base) {
		t.Fatalf("IsPermanent/Is lost through wrapping: %v", p)
	}
	if IsPermanent(base) {
		t.Fatal("plain error reported permanent")
	}
	r := fmt.Errorf("call: %w", RetryAfter(base, 7*time.Second))
	if d, ok := retryDelay(r); !ok || d != 7*time.Second || !errors.Is(r, base) {
		t.Fatalf("retryDelay = %v, %v", d, ok)
	}
}

func TestTruncateKeepsHeaderValuesOnOneLine(t *testing.T) {
	if got := truncate("a\r\nb\nc", 100); got != "a b c" {
		t.Fatalf("truncate = %q", got)
	}
	if got := truncate("héllo", 2); got != "h" {
		t.Fatalf("truncate split a character: %q", got)
	}
}

func TestStreamConfigDefaults(t *testing.T) {
	for _, s := range Streams() {
		cfg := streamConfig(s, StreamOptions{})
		if cfg.Replicas != 1 || cfg.Duplicates != DefaultDuplicateWindow || cfg.MaxAge <= 0 || len(cfg.Subjects) == 0 {
			t.Errorf("stream %s: %+v", s.Name, cfg)
		}
		cfg = streamConfig(s, StreamOptions{Replicas: 3, DuplicateWindow: 5 * time.Minute, MaxAge: time.Hour, DeadLetterMaxAge: 2 * time.Hour})
		want := time.Hour
		if s.Name == StreamDeadLetters {
			want = 2 * time.Hour
		}
		if cfg.Replicas != 3 || cfg.Duplicates != 5*time.Minute || cfg.MaxAge != want {
			t.Errorf("stream %s with options: %+v", s.Name, cfg)
		}
	}
}

func TestStreamsCoverEveryPipelineSubject(t *testing.T) {
	subjects := []string{
		SubjectNotificationPrefix + "referral-updated", SubjectReferralObserved, SubjectUpsertOpportunity,
		SubjectSalesforceWriteback, SubjectSalesforceResult, SubjectOpportunityObserved,
		SubjectPartnerCenterCommand, SubjectPartnerCenterResult, DeadLetterSubject("mapper"),
	}
	for _, subj := range subjects {
		n := 0
		for _, s := range Streams() {
			for _, pattern := range s.Subjects {
				if subjectMatches(pattern, subj) {
					n++
				}
			}
		}
		if n != 1 {
			t.Errorf("subject %s is held by %d streams, want 1", subj, n)
		}
	}
}

// subjectMatches reports whether subject matches a pattern with '*' and '>'.
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}
