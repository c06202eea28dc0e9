// Package twoway decides, field by field, what a link's two sides should
// hold when both Salesforce and Partner Center can change a field, so that
// concurrent edits converge to the same result whatever order the
// observations arrive in, and our own writes never come back as changes.
//
// Values live in one space, Salesforce field values in canonical text
// (mapping.Canon). For every field the state keeps:
//
//   - the agreed value, the source time of the change that produced it and
//     the side it came from;
//   - the value last observed on each side (Salesforce, Partner Center, and
//     Microsoft's related referral, which is read but never written);
//   - per writable side, the writes sent and not yet seen back.
//
// An observation of a side compares each field with what was last
// observed there. Unchanged: nothing. Equal to a write still pending on
// that side: our echo, consumed. Otherwise the side changed the field at
// the observation's source time (SystemModstamp, updatedDateTime), and
// ownership decides: the owning side wins, or with "latest" the later
// change wins (ties go to Salesforce). The state then says which fields
// each writable side must be sent: those where the value it will hold
// (its newest pending write, else what was observed) differs from the
// agreed one.
//
// A conditional write (one that lands only while the record is still at
// the version it was decided on, or a create) is settled by the first
// observation of a later version, whatever it shows: a seller who saved
// again before the poll read the record hides our echo, and a write left
// pending would take the seller's later edit back to our value for an
// echo.
//
// The package is pure: no clock, no I/O. The state is stored as JSON on
// the link.
package twoway

import (
	"slices"
	"sort"
	"time"
)

// Side is a system that holds the fields.
type Side string

// The sides.
const (
	// Salesforce is the opportunity.
	Salesforce Side = "sf"
	// PartnerCenter is the partner's referral.
	PartnerCenter Side = "pc"
	// Microsoft is Microsoft's related referral of the engagement: read,
	// never written.
	Microsoft Side = "ms"
)

// Owner says which side wins a field, as the mapping's ownership section
// does: "partnercenter", "salesforce" or "latest".
type Owner string

// The owners.
const (
	OwnerPartnerCenter Owner = "partnercenter"
	OwnerSalesforce    Owner = "salesforce"
	OwnerLatest        Owner = "latest"
)

// Field is the state of one field.
type Field struct {
	// Value is the agreed value (canonical JSON text), At the source time
	// of the change that produced it, From the side it came from.
	Value string    `json:"v"`
	At    time.Time `json:"at"`
	From  Side      `json:"from"`
	// Seen is the value last observed on each side.
	Seen map[Side]string `json:"seen,omitempty"`
	// New marks a value only established (first seen on one side), not
	// changed since: a side that never spoke for the field is not sent it
	// (see Changed).
	New bool `json:"new,omitempty"`
}

// Write is a write sent to a side and not yet seen back.
type Write struct {
	// Command identifies it (the command id).
	Command string `json:"cmd"`
	// Values are the fields it sets, as they will read back.
	Values map[string]string `json:"values"`
	// Base, when set, is the version the write is conditional on (the
	// side's source time, e.g. Salesforce's SystemModstamp): it lands only
	// while the record is still at Base. An observation of a later version
	// therefore shows the write landed or that it never will, and settles
	// it (see Observe).
	Base time.Time `json:"base,omitzero"`
}

// State is a link's two-way state.
type State struct {
	Fields  map[string]*Field `json:"fields,omitempty"`
	Pending map[Side][]Write  `json:"pending,omitempty"`
	// Origin is what the partner's referral held when first seen, per
	// field: Microsoft's referral of the engagement starts as a copy of
	// it, so at the first look a value that differs from it is a change
	// made by a Microsoft seller.
	Origin map[string]string `json:"origin,omitempty"`
}

// Change is a field whose agreed value an observation changed.
type Change struct {
	Field string
	// Old and New are the agreed values before and after.
	Old, New string
	From     Side
}

// Conflict is a side's change that lost to a newer or owning one.
type Conflict struct {
	Field string
	// Value is what the losing side holds; Kept is the agreed value.
	Value, Kept string
	Side        Side
	Reason      string
}

// Outcome is what an observation did.
type Outcome struct {
	Changes   []Change
	Conflicts []Conflict
	// Echoes lists the fields recognised as our own writes coming back.
	Echoes []string
}

// maxPending bounds the writes remembered per side; the oldest are
// dropped (a write whose echo never shows is then treated as landed).
const maxPending = 16

func (s *State) init() {
	if s.Fields == nil {
		s.Fields = map[string]*Field{}
	}
	if s.Origin == nil {
		s.Origin = map[string]string{}
	}
	if s.Pending == nil {
		s.Pending = map[Side][]Write{}
	}
}

// Baseline records what a side holds without treating differences as
// changes: the first look at Microsoft's referral, or the referral Partner
// Center created from our body (it fills in status and other server
// values). Pending writes of command are consumed. A field nobody agreed on
// yet takes the side's value.
func (s *State) Baseline(side Side, values map[string]string, at time.Time, command string) {
	s.init()
	s.forget(side, command)
	for _, k := range sortedKeys(values) {
		v := values[k]
		s.noteOrigin(side, k, v)
		f := s.Fields[k]
		if f == nil {
			s.Fields[k] = &Field{Value: v, At: at, From: side, Seen: map[Side]string{side: v}}
			continue
		}
		if f.Seen == nil {
			f.Seen = map[Side]string{}
		}
		f.Seen[side] = v
	}
}

// Observe applies an observation of side at source time at. values holds
// the fields the side speaks for; absent fields are left alone. owner
// returns the owner of a field.
func (s *State) Observe(side Side, values map[string]string, at time.Time, owner func(field string) Owner) Outcome {
	s.init()
	defer s.settle(side, values, s.overtaken(side, at))
	var out Outcome
	for _, k := range sortedKeys(values) {
		v := values[k]
		s.noteOrigin(side, k, v)
		f := s.Fields[k]
		if f == nil {
			// Nobody spoke for the field yet: the side's value is agreed.
			s.Fields[k] = &Field{Value: v, At: at, From: side, Seen: map[Side]string{side: v}, New: true}
			out.Changes = append(out.Changes, Change{Field: k, Old: "", New: v, From: side})
			continue
		}
		if f.Seen == nil {
			f.Seen = map[Side]string{}
		}
		prev, seen := f.Seen[side]
		if seen && prev == v {
			continue
		}
		f.Seen[side] = v
		if s.consumeEcho(side, k, v) {
			out.Echoes = append(out.Echoes, k)
			continue
		}
		if !seen && side == Microsoft {
			// Microsoft's referral started as a copy of the partner's: at
			// the first look, only what differs from that is a change.
			// Without that copy, its values are a starting point, except
			// where it fills in what nobody knew (its CRM id, once
			// Microsoft accepts).
			if o, ok := s.Origin[k]; (ok && o == v) || (!ok && f.Value != "null") {
				continue
			}
		}
		if v == f.Value {
			// The side now agrees (e.g. both made the same edit).
			continue
		}
		adopt, reason := wins(side, at, f, owner(k))
		if !adopt {
			out.Conflicts = append(out.Conflicts, Conflict{Field: k, Value: v, Kept: f.Value, Side: side, Reason: reason})
			continue
		}
		out.Changes = append(out.Changes, Change{Field: k, Old: f.Value, New: v, From: side})
		f.Value, f.At, f.From, f.New = v, at, side, false
	}
	return out
}

// overtaken returns the conditional writes to side that an observation of
// version at settles: those whose base is older. Such a write either landed
// before that version or is refused because the record moved on.
func (s *State) overtaken(side Side, at time.Time) map[string]bool {
	var out map[string]bool
	for _, w := range s.Pending[side] {
		if !w.Base.IsZero() && at.After(w.Base) {
			if out == nil {
				out = map[string]bool{}
			}
			out[w.Command] = true
		}
	}
	return out
}

// settle drops the overtaken writes after an observation of side showed
// values. What of them came back was consumed as an echo, or already read
// so (a field the record held before); a field the observation shows with
// the write's value also clears that field from the writes sent before it,
// as an echo does. The rest was overwritten after the write landed (a
// seller saved again before the poll read the record), or the write is
// refused. Either way it can never come back as ours: left pending, it
// would take a later edit back to the same value for an echo, or keep an
// older write's value expected that the record no longer holds.
func (s *State) settle(side Side, values map[string]string, done map[string]bool) {
	if len(done) == 0 {
		return
	}
	list := s.Pending[side]
	for i, w := range list {
		if !done[w.Command] {
			continue
		}
		for k, v := range w.Values {
			if got, ok := values[k]; ok && got == v {
				for j := range list[:i] {
					delete(list[j].Values, k)
				}
			}
		}
		list[i].Values = nil
	}
	s.Pending[side] = compact(list)
	if s.Pending[side] == nil {
		delete(s.Pending, side)
	}
}

// wins decides whether a side's change at time at replaces the agreed
// value f.
func wins(side Side, at time.Time, f *Field, owner Owner) (bool, string) {
	owns := func(o Owner) bool {
		if o == OwnerSalesforce {
			return side == Salesforce
		}
		return side == PartnerCenter || side == Microsoft
	}
	switch owner {
	case OwnerSalesforce, OwnerPartnerCenter:
		if owns(owner) {
			return true, ""
		}
		return false, "the field is owned by " + string(owner)
	}
	switch {
	case at.After(f.At):
		return true, ""
	case at.Equal(f.At) && side == Salesforce:
		return true, ""
	case f.From == side:
		// An older observation of the same side that still differs: the
		// side went back to an earlier value? Keep the newer agreement.
		return false, "a newer change from the same side is already applied"
	}
	return false, "the other side changed it later"
}

func (s *State) noteOrigin(side Side, k, v string) {
	if side != PartnerCenter {
		return
	}
	if _, ok := s.Origin[k]; !ok {
		s.Origin[k] = v
	}
}

// consumeEcho reports whether v is a pending write of field k on side, and
// forgets that write and every older one for k.
func (s *State) consumeEcho(side Side, k, v string) bool {
	list := s.Pending[side]
	idx := -1
	for i := len(list) - 1; i >= 0; i-- {
		if w, ok := list[i].Values[k]; ok && w == v {
			idx = i
			break
		}
	}
	if idx < 0 {
		return false
	}
	for i := 0; i <= idx; i++ {
		delete(list[i].Values, k)
	}
	s.Pending[side] = compact(list)
	return true
}

func compact(list []Write) []Write {
	out := list[:0]
	for _, w := range list {
		if len(w.Values) > 0 {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Expected returns what side will hold for field k: its newest pending
// write, else what was last observed; ok is false when neither is known.
func (s *State) Expected(side Side, k string) (string, bool) {
	list := s.Pending[side]
	for i := len(list) - 1; i >= 0; i-- {
		if v, ok := list[i].Values[k]; ok {
			return v, true
		}
	}
	if f := s.Fields[k]; f != nil {
		v, ok := f.Seen[side]
		return v, ok
	}
	return "", false
}

// Needs returns the fields side must be sent, with their agreed values:
// those it will not hold otherwise. Fields the side never spoke for and
// was never sent are included only when only is nil or lists them.
func (s *State) Needs(side Side, only func(field string) bool) map[string]string {
	out := map[string]string{}
	for _, k := range sortedKeys(s.Fields) {
		if only != nil && !only(k) {
			continue
		}
		f := s.Fields[k]
		if exp, ok := s.Expected(side, k); ok && exp == f.Value {
			continue
		}
		out[k] = f.Value
	}
	return out
}

// Sent records a write to side; values are the fields as they will read
// back. Values equal to what the side already holds are not pending.
func (s *State) Sent(side Side, command string, values map[string]string) {
	s.SentConditional(side, command, values, time.Time{})
}

// CreatesRecord is the base of a write that creates the record: every
// version of the record is later, so its first observation settles the
// write (a seller who saved before the poll first read the record hides
// the create's echo as well).
var CreatesRecord = time.Unix(0, 0).UTC()

// SentConditional records a write that lands only while side is still at
// version base (a zero base: unconditional, as Sent; CreatesRecord: a
// create).
func (s *State) SentConditional(side Side, command string, values map[string]string, base time.Time) {
	s.init()
	s.forget(side, command)
	w := Write{Command: command, Values: map[string]string{}, Base: base}
	for k, v := range values {
		if exp, ok := s.Expected(side, k); ok && exp == v {
			continue
		}
		w.Values[k] = v
	}
	if len(w.Values) == 0 {
		return
	}
	list := append(s.Pending[side], w)
	if len(list) > maxPending {
		list = list[len(list)-maxPending:]
	}
	s.Pending[side] = list
}

// Forget drops a write that did not land (rejected, failed, 412).
func (s *State) Forget(side Side, command string) { s.forget(side, command) }

func (s *State) forget(side Side, command string) {
	if command == "" || s.Pending == nil {
		return
	}
	s.Pending[side] = compact(slices.DeleteFunc(s.Pending[side], func(w Write) bool { return w.Command == command }))
	if s.Pending[side] == nil {
		delete(s.Pending, side)
	}
}

// Known reports whether side must hear of field k: it spoke for it or
// was sent it, or the field changed since it was first established.
func (s *State) Known(side Side, k string) bool {
	if _, ok := s.Expected(side, k); ok {
		return true
	}
	f := s.Fields[k]
	return f != nil && !f.New
}

// HasPending reports whether side has writes not yet seen back.
func (s *State) HasPending(side Side) bool { return len(s.Pending[side]) > 0 }

// Agreed returns the agreed values of every field.
func (s *State) Agreed() map[string]string {
	out := make(map[string]string, len(s.Fields))
	for k, f := range s.Fields {
		out[k] = f.Value
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
