package salesforce

import (
	"net/http"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

const (
	// updatedWindow is how far back getUpdated may start.
	updatedWindow = 30 * 24 * time.Hour
	// deletedWindow is how far back getDeleted can look.
	deletedWindow = 15 * 24 * time.Hour
	// maxReplicationIDs is the ids limit of both resources.
	maxReplicationIDs = 600000
)

// replicationWindow parses ?start=&end= (ISO 8601 with offset; seconds are
// ignored) and applies the shared rules: start at least one minute before
// end, start not older than limit. latest is the end of the covered range:
// end, or the current minute when end lies in the future.
func (s *Server) replicationWindow(r *http.Request, limit time.Duration) (start, latest time.Time, rerr *restError) {
	q := r.URL.Query()
	if q.Get("start") == "" || q.Get("end") == "" {
		return start, latest, newErr(http.StatusBadRequest, "MISSING_ARGUMENT", "start and end must both be specified")
	}
	st, err1 := sfschema.ParseDateTime(q.Get("start"))
	en, err2 := sfschema.ParseDateTime(q.Get("end"))
	if err1 != nil || err2 != nil {
		return start, latest, newErr(http.StatusBadRequest, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 datetimes, e.g. 2026-01-02T15:04:00+00:00")
	}
	start, end := st.Truncate(time.Minute), en.Truncate(time.Minute)
	now := s.clock.Now()
	if !end.After(start) {
		return start, latest, newErr(http.StatusBadRequest, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate by more than one minute")
	}
	if start.Before(now.Add(-limit)) {
		return start, latest, newErr(http.StatusBadRequest, "INVALID_REPLICATION_DATE",
			"startDate cannot be more than "+map[time.Duration]string{updatedWindow: "30", deletedWindow: "15"}[limit]+" days ago")
	}
	latest = end
	if cur := now.Truncate(time.Minute); latest.After(cur) {
		latest = cur
	}
	if !latest.After(start) {
		latest = start
	}
	return start, latest, nil
}

func (s *Server) handleUpdated(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	start, latest, rerr := s.replicationWindow(r, updatedWindow)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	ids := []string{}
	s.store.read(r.Context(), func(v *view) {
		t := v.st.table(obj.Name)
		for _, id := range t.order {
			e := t.byID[id]
			if e != nil && e.deleted.IsZero() && !e.modstamp.Before(start) && e.modstamp.Before(latest) {
				ids = append(ids, id)
			}
		}
	})
	if len(ids) > maxReplicationIDs {
		writeError(w, newErr(http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 600000 records into this call"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ids": ids, "latestDateCovered": sfschema.FormatDateTime(latest)})
}

type deletedRecord struct {
	ID          string `json:"id"`
	DeletedDate string `json:"deletedDate"`
}

func (s *Server) handleDeleted(w http.ResponseWriter, r *http.Request) {
	obj := s.objectParam(w, r)
	if obj == nil {
		return
	}
	start, latest, rerr := s.replicationWindow(r, deletedWindow)
	if rerr != nil {
		writeError(w, rerr)
		return
	}
	out := []deletedRecord{}
	s.store.read(r.Context(), func(v *view) {
		for _, d := range v.st.deletes {
			if d.object != obj.Name || d.at.Before(start) || !d.at.Before(latest) {
				continue
			}
			// A record later undeleted would leave the log; the emulator
			// has no undelete, so every logged deletion still holds.
			out = append(out, deletedRecord{ID: d.id, DeletedDate: sfschema.FormatDateTime(d.at)})
		}
	})
	earliest := s.started.Truncate(time.Minute)
	if lim := s.clock.Now().Add(-deletedWindow).Truncate(time.Minute); lim.After(earliest) {
		earliest = lim
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"deletedRecords":        out,
		"earliestDateAvailable": sfschema.FormatDateTime(earliest),
		"latestDateCovered":     sfschema.FormatDateTime(latest),
	})
}
