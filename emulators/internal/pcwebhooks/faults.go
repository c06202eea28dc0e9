package pcwebhooks

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"

	"github.com/cosell/cosell/emulators/internal/emucore"
)

// Fault kinds the control API accepts.
const (
	// FaultDrop loses the event: it is logged as dropped and never sent.
	FaultDrop = "drop"
	// FaultDuplicate sends the event twice (two log entries, same body).
	FaultDuplicate = "duplicate"
	// FaultDelay waits Latency before the first attempt.
	FaultDelay = "delay"
	// FaultReorder holds the next Count events and then releases them
	// one after another in reverse (or shuffled) order.
	FaultReorder = "reorder"
)

// Signature-tampering fault kinds: the event is delivered, but in a form a
// correct receiver must reject, so its verification can be tested end to end.
const (
	// FaultBadSignature flips one bit of the signature.
	FaultBadSignature = "badSignature"
	// FaultMissingSignature omits Authorization / x-ms-signature.
	FaultMissingSignature = "missingSignature"
	// FaultWrongOrg signs with a certificate from the emulator's CA whose
	// subject is O=Contoso Ltd.
	FaultWrongOrg = "wrongOrg"
	// FaultUntrustedCert signs with a self-signed certificate carrying the
	// genuine subject, which does not chain to the emulator's CA.
	FaultUntrustedCert = "untrustedCert"
	// FaultForeignCertHost points x-ms-certificate-url at another host.
	FaultForeignCertHost = "foreignCertHost"
)

// tamperKinds lists the tampering faults in the order they are tried; one
// event gets at most one of them.
func tamperKinds() []string {
	return []string{FaultBadSignature, FaultMissingSignature, FaultWrongOrg, FaultUntrustedCert, FaultForeignCertHost}
}

// Reorder modes.
const (
	ReorderReverse = "reverse"
	ReorderShuffle = "shuffle"
)

// faultKinds lists every fault kind the control API accepts.
func faultKinds() []string {
	return append([]string{FaultDrop, FaultDuplicate, FaultDelay, FaultReorder}, tamperKinds()...)
}

// FaultSpec is what the control API accepts to inject a delivery fault.
// Event limits it to one event name ("" or "*" = every event); Count > 0
// makes it apply to the next Count events, otherwise Rate (0..1, default 1)
// is the share of events it applies to until cleared.
type FaultSpec struct {
	Kind     string           `json:"kind"`
	Event    string           `json:"event,omitempty"`
	Endpoint string           `json:"endpoint,omitempty"` // alias of Event, as emucore names it
	Count    int              `json:"count,omitempty"`
	Rate     float64          `json:"rate,omitempty"`
	Latency  emucore.Duration `json:"latency,omitempty"`
	Order    string           `json:"order,omitempty"`
}

// FaultView is an active fault as the control API lists it.
type FaultView struct {
	ID        int              `json:"id"`
	Kind      string           `json:"kind"`
	Event     string           `json:"event"`
	Count     int              `json:"count,omitempty"`
	Rate      float64          `json:"rate,omitempty"`
	Latency   emucore.Duration `json:"latency,omitempty"`
	Order     string           `json:"order,omitempty"`
	Remaining int              `json:"remaining,omitempty"`
	Fired     int              `json:"fired"`
	Held      int              `json:"held,omitempty"`
}

// ErrInvalidFault is returned by AddFault for a spec it cannot apply.
var ErrInvalidFault = errors.New("invalid webhook fault")

// AddFault installs a delivery fault and returns it with its id.
func (d *Dispatcher) AddFault(spec FaultSpec) (FaultView, error) {
	event := spec.Event
	if event == "" {
		event = spec.Endpoint
	}
	if event != "" && event != "*" && !isSupportedEvent(event) {
		return FaultView{}, fmt.Errorf("%w: unknown event %q (one of %s or *)", ErrInvalidFault, event, strings.Join(SupportedEvents(), ", "))
	}
	switch spec.Kind {
	case FaultDelay:
		if spec.Latency <= 0 {
			return FaultView{}, fmt.Errorf("%w: delay needs a positive latency", ErrInvalidFault)
		}
	case FaultReorder:
		if spec.Count < 2 || spec.Rate != 0 {
			return FaultView{}, fmt.Errorf("%w: reorder needs count >= 2 (the number of events to hold) and no rate", ErrInvalidFault)
		}
		switch spec.Order {
		case "":
			spec.Order = ReorderReverse
		case ReorderReverse, ReorderShuffle:
		default:
			return FaultView{}, fmt.Errorf("%w: order must be %q or %q", ErrInvalidFault, ReorderReverse, ReorderShuffle)
		}
	}
	if spec.Kind != FaultReorder && spec.Order != "" {
		return FaultView{}, fmt.Errorf("%w: order applies only to reorder", ErrInvalidFault)
	}
	if spec.Kind != FaultDelay && spec.Latency != 0 {
		return FaultView{}, fmt.Errorf("%w: latency applies only to delay", ErrInvalidFault)
	}
	// Holding the lock across Add keeps the reorder mode visible before the
	// fault can match an event.
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := d.faults.Add(emucore.Fault{
		Endpoint: event,
		Kind:     spec.Kind,
		Count:    spec.Count,
		Rate:     spec.Rate,
		Latency:  spec.Latency,
	}, faultKinds()...)
	if err != nil {
		return FaultView{}, fmt.Errorf("%w: %v", ErrInvalidFault, err)
	}
	if f.Kind == FaultReorder {
		d.reorderMode[f.ID] = spec.Order
	}
	return d.viewLocked(f), nil
}

// Faults lists the active delivery faults.
func (d *Dispatcher) Faults() []FaultView {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.faults.List()
	out := make([]FaultView, 0, len(list))
	for _, f := range list {
		out = append(out, d.viewLocked(f))
	}
	// A used-up reorder fault leaves the emucore list at once, but its
	// events are released in the same step, so nothing is left held.
	return out
}

func (d *Dispatcher) viewLocked(f emucore.Fault) FaultView {
	return FaultView{
		ID: f.ID, Kind: f.Kind, Event: f.Endpoint, Count: f.Count, Rate: f.Rate,
		Latency: f.Latency, Order: d.reorderMode[f.ID], Remaining: f.Remaining,
		Fired: f.Fired, Held: len(d.held[f.ID]),
	}
}

// RemoveFault deletes one fault, releasing any events it holds.
func (d *Dispatcher) RemoveFault(id int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.faults.Remove(id) {
		return false
	}
	d.releaseLocked(id)
	delete(d.reorderMode, id)
	return true
}

// ClearFaults deletes every fault, releasing every held event.
func (d *Dispatcher) ClearFaults() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faults.Clear()
	d.flushLocked()
	d.reorderMode = map[int]string{}
}

// Flush releases the events held by reorder faults now, in each fault's
// order, without removing the faults. It returns how many were released.
func (d *Dispatcher) Flush() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flushLocked()
}

func (d *Dispatcher) flushLocked() int {
	ids := make([]int, 0, len(d.held))
	for id := range d.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	n := 0
	for _, id := range ids {
		n += d.releaseLocked(id)
	}
	return n
}

// releaseLocked queues the events held by fault id as one chain: the next
// is queued only once the previous one's first attempt finished, so the
// receiver sees them in exactly the reordered sequence.
func (d *Dispatcher) releaseLocked(id int) int {
	batch := d.held[id]
	delete(d.held, id)
	if len(batch) == 0 {
		return 0
	}
	if d.reorderMode[id] == ReorderShuffle {
		mrand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
	} else {
		slices.Reverse(batch)
	}
	for i := 0; i < len(batch)-1; i++ {
		batch[i].then = batch[i+1]
		batch[i+1].status = StatusPending
	}
	if !d.faultActive(id) {
		delete(d.reorderMode, id)
	}
	d.enqueueLocked(batch[0])
	return len(batch)
}

// faultActive reports whether fault id is still installed, so the reorder
// mode of a used-up fault can be forgotten once its events are released.
func (d *Dispatcher) faultActive(id int) bool {
	for _, f := range d.faults.List() {
		if f.ID == id {
			return true
		}
	}
	return false
}
