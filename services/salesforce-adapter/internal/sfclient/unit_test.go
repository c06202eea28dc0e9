package sfclient

import (
	"testing"
	"time"
)

func TestParseLimitInfo(t *testing.T) {
	for _, tc := range []struct {
		in          string
		used, limit int64
		ok          bool
	}{
		{"api-usage=10018/100000", 10018, 100000, true},
		{"per-app-api-usage=17/250(appName=sample), api-usage=25/5000", 25, 5000, true},
		{" api-usage = 3 / 9 ", 3, 9, true},
		{"api-bursts=1/2", 0, 0, false},
		{"api-usage=x/10", 0, 0, false},
		{"api-usage=1/0", 0, 0, false},
		{"", 0, 0, false},
	} {
		u, l, ok := ParseLimitInfo(tc.in)
		if u != tc.used || l != tc.limit || ok != tc.ok {
			t.Errorf("ParseLimitInfo(%q) = %d, %d, %v; want %d, %d, %v", tc.in, u, l, ok, tc.used, tc.limit, tc.ok)
		}
	}
}

func TestQuoteSOQL(t *testing.T) {
	for in, want := range map[string]string{
		"Contoso":       `'Contoso'`,
		"O'Brien":       `'O\'Brien'`,
		`back\slash`:    `'back\\slash'`,
		"two\nlines":    `'two\nlines'`,
		`"quoted"`:      `'\"quoted\"'`,
		`\' OR Id != '`: `'\\\' OR Id != \''`,
	} {
		if got := QuoteSOQL(in); got != want {
			t.Errorf("QuoteSOQL(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestBudgetReservations(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &budget{percent: 50, probeEvery: time.Minute}
	acquire := func(at time.Time) (bool, uint64) { return b.acquire(at) }
	ok, v := acquire(now)
	if !ok {
		t.Fatal("first call refused while usage unknown")
	}
	if ok, _ := acquire(now); ok || !b.waitable() {
		t.Fatal("second call allowed before usage is known")
	}
	b.release("api-usage=7/20", v)
	// budget 10, used 7: three reservations fit, the fourth does not.
	var vs []uint64
	for i := range 3 {
		ok, v := acquire(now)
		if !ok {
			t.Fatalf("reservation %d refused", i)
		}
		vs = append(vs, v)
	}
	if ok, _ := acquire(now); ok || b.waitable() {
		t.Fatal("reservation beyond the budget allowed")
	}
	// Answers arrive out of order: the last counted first.
	b.release("api-usage=10/20", vs[2])
	b.release("api-usage=8/20", vs[0])
	b.release("api-usage=9/20", vs[1])
	if u := b.usage(); !u.Exhausted || u.Used != 10 || u.InFlight != 0 || u.Budget != 10 {
		t.Fatalf("usage = %+v, want 10 used (stale answers ignored)", u)
	}
	if ok, _ := acquire(now); ok {
		t.Fatal("probe allowed right when the budget ran out")
	}
	now = now.Add(time.Minute)
	ok, v = acquire(now)
	if !ok {
		t.Fatal("probe refused after the interval")
	}
	// The probe was sent after 10 was seen, so its lower count is the
	// rolling window freeing calls.
	b.release("api-usage=4/20", v)
	if u := b.usage(); u.Exhausted || u.Used != 4 {
		t.Fatalf("usage after probe = %+v, want 4 used", u)
	}
	b.release("api-usage=20/20", 0)
	b.inflight++ // balance the release above, which had no reservation
	if ok, _ := acquire(now.Add(2 * time.Minute)); ok {
		t.Fatal("call allowed with the org at its limit")
	}
	if ok, _ := acquire(now.Add(10 * time.Minute)); ok {
		t.Fatal("probe allowed although the org is at its limit")
	}
}

func TestRetryDelayBounds(t *testing.T) {
	r := Retry{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, hi := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 50 {
			if d := r.Delay(n); d < hi/2 || d > hi {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", n, d, hi/2, hi)
			}
		}
	}
}

func TestAuthErrorReason(t *testing.T) {
	for _, tc := range []struct {
		err  AuthError
		want string
	}{
		{AuthError{Status: 400, Code: "invalid_grant", Description: "user hasn't approved this consumer"}, ReasonInvalidGrant},
		{AuthError{Status: 400, Code: "invalid_client_id", Description: "client identifier invalid"}, ReasonInvalidClient},
		{AuthError{Status: 401, Code: "invalid_client", Description: "invalid client credentials"}, ReasonInvalidClient},
		{AuthError{Status: 400, Code: "unsupported_grant_type"}, ReasonRejected},
		{AuthError{Status: 403}, ReasonRejected},
		{AuthError{Status: 400, Code: "temporarily_unavailable"}, ReasonUnavailable},
		{AuthError{Status: 429}, ReasonUnavailable},
		{AuthError{Status: 503, Code: "invalid_grant"}, ReasonUnavailable},
	} {
		if got := tc.err.reason(); got != tc.want {
			t.Errorf("%v: reason %q, want %q", &tc.err, got, tc.want)
		}
	}
}
