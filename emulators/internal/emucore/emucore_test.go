package emucore

import (
	"encoding/json"
	"testing"
	"time"
)

func TestFaultCountFiresExactlyNTimesThenDisappears(t *testing.T) {
	var fs Faults
	f, err := fs.Add(Fault{Endpoint: "referrals.get", Kind: "503", Count: 2}, "503", "429")
	if err != nil {
		t.Fatal(err)
	}
	if f.ID != 1 || f.Remaining != 2 {
		t.Fatalf("added fault = %+v", f)
	}
	if m := fs.Match("referrals.list"); m != nil {
		t.Fatalf("fault for referrals.get matched referrals.list: %+v", m)
	}
	for i := 0; i < 2; i++ {
		if m := fs.Match("referrals.get"); m == nil || m.Kind != "503" {
			t.Fatalf("call %d: match = %+v, want the 503 fault", i+1, m)
		}
	}
	if m := fs.Match("referrals.get"); m != nil {
		t.Fatalf("third call matched a fault with count 2: %+v", m)
	}
	if got := fs.List(); len(got) != 0 {
		t.Fatalf("exhausted fault still listed: %+v", got)
	}
}

func TestFaultRateAndWildcardEndpoint(t *testing.T) {
	var fs Faults
	if _, err := fs.Add(Fault{Kind: "latency", Latency: Duration(5 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"token", "upsert", "query"} {
		m := fs.Match(ep)
		if m == nil || time.Duration(m.Latency) != 5*time.Millisecond {
			t.Fatalf("%s: match = %+v, want the every-endpoint latency fault", ep, m)
		}
	}
	if got := fs.List(); len(got) != 1 || got[0].Fired != 3 || got[0].Endpoint != "*" {
		t.Fatalf("rate fault after 3 calls = %+v", got)
	}
	if !fs.Remove(1) || fs.Remove(1) {
		t.Fatal("Remove should report the fault once")
	}
	if m := fs.Match("token"); m != nil {
		t.Fatalf("removed fault matched: %+v", m)
	}
}

func TestFaultKindsFilterAndValidation(t *testing.T) {
	var fs Faults
	if _, err := fs.Add(Fault{Kind: "teapot"}, "503"); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := fs.Add(Fault{Kind: "503", Rate: 1.5}, "503"); err == nil {
		t.Fatal("rate above 1 accepted")
	}
	if _, err := fs.Add(Fault{Kind: "503", Count: -1}, "503"); err == nil {
		t.Fatal("negative count accepted")
	}
	if _, err := fs.Add(Fault{Kind: "503", Count: 1}); err != nil {
		t.Fatal(err)
	}
	if m := fs.Match("x", "latency"); m != nil {
		t.Fatalf("a 503 fault matched a latency-only lookup: %+v", m)
	}
	if m := fs.Match("x", "503"); m == nil {
		t.Fatal("the 503 fault did not match")
	}
	fs.Clear()
	if len(fs.List()) != 0 {
		t.Fatal("Clear left faults")
	}
}

func TestDurationJSON(t *testing.T) {
	for in, want := range map[string]time.Duration{`"250ms"`: 250 * time.Millisecond, `1500`: 1500 * time.Millisecond, `"2s"`: 2 * time.Second} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s → %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error(`"soon" accepted as a duration`)
	}
	b, _ := json.Marshal(Duration(250 * time.Millisecond))
	if string(b) != `"250ms"` {
		t.Errorf("marshal = %s", b)
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Inc("a")
	c.Inc("a")
	c.Inc("b")
	if c.Get("a") != 2 || c.Get("b") != 1 || c.Get("c") != 0 {
		t.Fatalf("counts = %v", c.Snapshot())
	}
	if names := c.Names(); len(names) != 2 || names[0] != "a" || names[1] != "b" {
		t.Fatalf("names = %v", names)
	}
	c.Reset()
	if len(c.Snapshot()) != 0 {
		t.Fatal("Reset kept counts")
	}
}
