package bus

import (
	"errors"
	"testing"
)

func TestParseServerVersion(t *testing.T) {
	tests := []struct {
		in   string
		want ServerVersion
	}{
		{"2.9.25", ServerVersion{Major: 2, Minor: 9, Patch: 25}},
		{"2.10.0", ServerVersion{Major: 2, Minor: 10}},
		{"2.12.1-beta", ServerVersion{Major: 2, Minor: 12, Patch: 1, Pre: "beta"}},
		{"v2.11.3", ServerVersion{Major: 2, Minor: 11, Patch: 3}},
		{"2.10", ServerVersion{Major: 2, Minor: 10}},
		{"2.11.0+build.7", ServerVersion{Major: 2, Minor: 11}},
		{"2.10.0-RC.1", ServerVersion{Major: 2, Minor: 10, Pre: "RC.1"}},
	}
	for _, tt := range tests {
		got, err := ParseServerVersion(tt.in)
		if err != nil {
			t.Errorf("ParseServerVersion(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseServerVersion(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "2", "two.ten.zero", "2.10.x", "2.10.0.1", "2.-1.0", "2.+1.0", "2.10.0-", "2..0"} {
		if v, err := ParseServerVersion(bad); err == nil {
			t.Errorf("ParseServerVersion(%q) = %+v, want an error", bad, v)
		}
	}
}

func TestCheckServerVersion(t *testing.T) {
	tests := []struct {
		in      string
		tooOld  bool
		invalid bool
	}{
		{in: "2.9.25", tooOld: true},
		{in: "2.2.0", tooOld: true},
		{in: "1.99.99", tooOld: true},
		{in: "2.10.0-RC.1", tooOld: true},
		{in: "2.10.0"},
		{in: "2.10.29"},
		{in: "2.12.1-beta"},
		{in: "2.15.2"},
		{in: "3.0.0"},
		{in: "", invalid: true},
		{in: "nats", invalid: true},
	}
	for _, tt := range tests {
		err := CheckServerVersion(tt.in)
		switch {
		case tt.tooOld:
			if !errors.Is(err, ErrServerTooOld) {
				t.Errorf("CheckServerVersion(%q) = %v, want ErrServerTooOld", tt.in, err)
			}
		case tt.invalid:
			if err == nil || errors.Is(err, ErrServerTooOld) {
				t.Errorf("CheckServerVersion(%q) = %v, want a parse error", tt.in, err)
			}
		default:
			if err != nil {
				t.Errorf("CheckServerVersion(%q) = %v, want nil", tt.in, err)
			}
		}
	}
}

func TestServerVersionLess(t *testing.T) {
	order := []string{"2.9.25", "2.10.0-beta", "2.10.0-rc.1", "2.10.0", "2.10.1", "2.12.1-beta", "2.12.1", "3.0.0"}
	for i := range order {
		for j := range order {
			a, _ := ParseServerVersion(order[i])
			b, _ := ParseServerVersion(order[j])
			if got, want := a.Less(b), i < j; got != want {
				t.Errorf("%s < %s = %v, want %v", order[i], order[j], got, want)
			}
		}
	}
}
