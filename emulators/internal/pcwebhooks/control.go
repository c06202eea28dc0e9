package pcwebhooks

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/emulators/internal/emucore"
)

// CertificateHandler serves the signing certificate as DER (a .cer file,
// like the real blob-hosted certificate) with no authentication. With
// ?variant=wrong-org or ?variant=untrusted it serves the bad certificates
// of the wrongOrg and untrustedCert faults once a delivery has used them.
func (d *Dispatcher) CertificateHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		der := d.auth.leafDER
		if v := r.URL.Query().Get("variant"); v != "" {
			var ok bool
			if der, ok = d.auth.variantDER(v); !ok {
				http.NotFound(w, r)
				return
			}
		}
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Header().Set("Content-Length", strconv.Itoa(len(der)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(der)
		}
	})
}

// controlError is the emulator's own error body for control routes.
func controlError(w http.ResponseWriter, status int, msg string) {
	emucore.WriteJSON(w, status, map[string]string{"error": msg})
}

// Stats summarises the dispatcher for the control API.
type Stats struct {
	Counters map[string]int64 `json:"counters"`
	Ready    int              `json:"ready"`
	Delayed  int              `json:"delayed"`
	Held     int              `json:"held"`
	Parked   int              `json:"parked"`
	LogSize  int              `json:"logSize"`
}

// Stats returns the delivery counters and queue sizes.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Stats{Counters: d.stats.Snapshot(), Ready: len(d.ready), Delayed: len(d.delayed), LogSize: len(d.order)}
	for _, h := range d.held {
		s.Held += len(h)
	}
	for _, e := range d.order {
		if e.status == StatusParked {
			s.Parked++
		}
	}
	return s
}

// ControlRoutes serves the emulator-only webhook controls; the server
// mounts them under /_emulator/webhooks.
func (d *Dispatcher) ControlRoutes() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		controlError(w, http.StatusNotFound, "no such control route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		controlError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.Get("/registration", func(w http.ResponseWriter, _ *http.Request) {
		reg, ok := d.Registration()
		if !ok {
			controlError(w, http.StatusNotFound, "no registration")
			return
		}
		emucore.WriteJSON(w, http.StatusOK, reg)
	})
	r.Get("/deliveries", func(w http.ResponseWriter, r *http.Request) {
		status, event := r.URL.Query().Get("status"), r.URL.Query().Get("event")
		out := []Delivery{}
		for _, e := range d.Deliveries() {
			if (status == "" || e.Status == status) && (event == "" || e.EventName == event) {
				out = append(out, e)
			}
		}
		emucore.WriteJSON(w, http.StatusOK, out)
	})
	r.Get("/deliveries/{id}", func(w http.ResponseWriter, r *http.Request) {
		e, ok := d.Delivery(chi.URLParam(r, "id"))
		if !ok {
			controlError(w, http.StatusNotFound, "no such delivery")
			return
		}
		emucore.WriteJSON(w, http.StatusOK, e)
	})
	r.Post("/deliveries/{id}/redeliver", func(w http.ResponseWriter, r *http.Request) {
		e, err := d.Redeliver(chi.URLParam(r, "id"))
		switch {
		case errors.Is(err, ErrDeliveryNotFound):
			controlError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, ErrNotParked):
			controlError(w, http.StatusConflict, err.Error())
		default:
			emucore.WriteJSON(w, http.StatusAccepted, e)
		}
	})
	r.Get("/parked", func(w http.ResponseWriter, _ *http.Request) {
		out := d.Parked()
		if out == nil {
			out = []Delivery{}
		}
		emucore.WriteJSON(w, http.StatusOK, out)
	})
	r.Get("/faults", func(w http.ResponseWriter, _ *http.Request) {
		emucore.WriteJSON(w, http.StatusOK, d.Faults())
	})
	r.Post("/faults", func(w http.ResponseWriter, r *http.Request) {
		var spec FaultSpec
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			controlError(w, http.StatusBadRequest, "invalid fault JSON: "+err.Error())
			return
		}
		f, err := d.AddFault(spec)
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		emucore.WriteJSON(w, http.StatusCreated, f)
	})
	r.Delete("/faults", func(w http.ResponseWriter, _ *http.Request) {
		d.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	r.Delete("/faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(chi.URLParam(r, "id"))
		if err != nil || !d.RemoveFault(id) {
			controlError(w, http.StatusNotFound, "no such fault")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	r.Post("/flush", func(w http.ResponseWriter, _ *http.Request) {
		emucore.WriteJSON(w, http.StatusOK, map[string]int{"released": d.Flush()})
	})
	r.Get("/stats", func(w http.ResponseWriter, _ *http.Request) {
		emucore.WriteJSON(w, http.StatusOK, d.Stats())
	})
	r.Get("/ca.pem", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(d.auth.caPEM)
	})
	r.Post("/reset", func(w http.ResponseWriter, _ *http.Request) {
		d.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return r
}
