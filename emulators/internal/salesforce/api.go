package salesforce

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
)

// API versions served: v50.0 (Winter '21) up to v67.0 (Summer '26).
const (
	minVersion    = 50
	maxVersion    = 67
	latestVersion = "67.0"
)

// Fault kinds the emulator understands (see emulators/docs/salesforce.md).
const (
	faultLatency      = "latency"
	fault503          = "503"
	fault500          = "500"
	faultLockRow      = "UNABLE_TO_LOCK_ROW"
	faultExpireToken  = "expire-token"
	faultRevokeToken  = "revoke-token"
	limitInfoHeader   = "Sforce-Limit-Info"
	msgLimitExceeded  = "TotalRequests Limit exceeded."
	msgLockRow        = "unable to obtain exclusive access to this record"
	msgProcessHalted  = "The transaction was rolled back since another operation in the same transaction failed."
	msgAllOrNoneRolls = "Record rolled back because not all records were valid and the request was using AllOrNone header"
)

// faultKinds lists the fault kinds the control API accepts.
func faultKinds() []string {
	return []string{faultLatency, fault503, fault500, faultLockRow, faultExpireToken, faultRevokeToken}
}

// callCtx travels in the request context of an authenticated REST call.
type callCtx struct {
	userID string
	// sub marks a Composite subrequest: already authenticated and counted.
	sub bool
	// tx is the transaction of an allOrNone Composite request.
	tx *txn
	// lockFault, when set, makes the next write subrequest fail with
	// UNABLE_TO_LOCK_ROW (an injected fault on "composite").
	lockFault *bool
	// lockAll makes every record of a collection call fail with
	// UNABLE_TO_LOCK_ROW (an injected fault on "composite.sobjects", which
	// also reaches collections subrequests of a Composite call).
	lockAll bool
}

type callCtxKey struct{}

func callFrom(ctx context.Context) *callCtx {
	c, _ := ctx.Value(callCtxKey{}).(*callCtx)
	if c == nil {
		return &callCtx{}
	}
	return c
}

// txFrom returns the surrounding Composite transaction, if any.
func txFrom(ctx context.Context) *txn {
	if ctx == nil {
		return nil
	}
	return callFrom(ctx).tx
}

// isWrite reports whether an endpoint changes records, i.e. can meet a row
// lock.
func isWrite(name string) bool {
	switch name {
	case "sobject.create", "sobject.update", "sobject.delete", "upsert", "sobject.deleteByExternalId", "composite.sobjects":
		return true
	}
	return false
}

// api wraps a REST handler with what every Salesforce REST call goes
// through: session check, the daily limit, injected faults, call counters
// and the Sforce-Limit-Info header. Composite subrequests skip all of it
// (the Composite call was checked and counted once).
func (s *Server) api(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if cc := callFrom(r.Context()); cc.sub {
			if name == "composite" {
				writeError(w, newErr(http.StatusBadRequest, "INVALID_API_INPUT", "Composite requests cannot be nested in a composite request."))
				return
			}
			if cc.lockFault != nil && *cc.lockFault && isWrite(name) {
				*cc.lockFault = false
				writeError(w, newFieldErr(faultLockRow, msgLockRow))
				return
			}
			if name == "composite.sobjects" && !cc.lockAll && (cc.lockFault == nil || !*cc.lockFault) {
				// A row-lock fault on the collections endpoint also reaches
				// a collections subrequest: its records fail one by one, as
				// they would in a direct call.
				if f := s.faults.Match(name, faultLockRow); f != nil {
					sub := *cc
					sub.lockAll = true
					h(w, r.WithContext(context.WithValue(r.Context(), callCtxKey{}, &sub)))
					return
				}
			}
			h(w, r)
			return
		}
		s.calls.Inc(name)
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("api call", "endpoint", name, "method", r.Method, "path", r.URL.Path)
		}
		sess, rerr := s.authenticate(r)
		if rerr != nil {
			writeError(w, rerr)
			return
		}
		now := s.clock.Now()
		if used, max := s.usage.current(now); used >= max {
			w.Header().Set(limitInfoHeader, limitInfo(used, max))
			writeError(w, newErr(http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", msgLimitExceeded))
			return
		}
		cc := &callCtx{userID: sess.userID}
		if f := s.faults.Match(name); f != nil {
			if !sleepCtx(r.Context(), time.Duration(f.Latency)) {
				return
			}
			switch f.Kind {
			case fault503:
				writeError(w, newErr(http.StatusServiceUnavailable, "SERVER_UNAVAILABLE", "Server unavailable, please try again later"))
				return
			case fault500:
				writeError(w, newErr(http.StatusInternalServerError, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 0000000000-00000 (0000000000)"))
				return
			case faultExpireToken:
				sess.expired.Store(true)
				writeError(w, errInvalidSession())
				return
			case faultRevokeToken:
				s.tokens.revoke(sess.token)
				writeError(w, errInvalidSession())
				return
			case faultLockRow:
				switch name {
				case "composite":
					pending := true
					cc.lockFault = &pending
				case "composite.sobjects":
					cc.lockAll = true
				default:
					used, max := s.usage.use(now)
					s.counted.Inc(name)
					w.Header().Set(limitInfoHeader, limitInfo(used, max))
					writeError(w, newFieldErr(faultLockRow, msgLockRow))
					return
				}
			}
		}
		used, max := s.usage.use(now)
		s.counted.Inc(name)
		w.Header().Set(limitInfoHeader, limitInfo(used, max))
		h(w, r.WithContext(context.WithValue(r.Context(), callCtxKey{}, cc)))
	}
}

func limitInfo(used, max int64) string {
	return "api-usage=" + strconv.FormatInt(used, 10) + "/" + strconv.FormatInt(max, 10)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// parseVersion turns "v62.0" into "62.0", or reports it unsupported.
func parseVersion(v string) (string, bool) {
	if len(v) < 4 || v[0] != 'v' || !strings.HasSuffix(v, ".0") {
		return "", false
	}
	n, err := strconv.Atoi(v[1 : len(v)-2])
	if err != nil || n < minVersion || n > maxVersion {
		return "", false
	}
	return v[1:], true
}

// checkVersion rejects versions outside the served range with 404
// NOT_FOUND and puts the current usage on every response under the
// version path (the api wrapper refreshes it after counting).
func (s *Server) checkVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := parseVersion(chi.URLParam(r, "version")); !ok {
			writeError(w, errNotFound())
			return
		}
		if !callFrom(r.Context()).sub {
			used, max := s.usage.current(s.clock.Now())
			w.Header().Set(limitInfoHeader, limitInfo(used, max))
		}
		next.ServeHTTP(w, r)
	})
}

// version returns the request's API version without the "v" ("62.0").
func version(r *http.Request) string {
	v, _ := parseVersion(chi.URLParam(r, "version"))
	return v
}

// basePath is "/services/data/vNN.N" of the request.
func basePath(r *http.Request) string { return "/services/data/v" + version(r) }

// handleVersions serves GET /services/data/: no auth, no limit header.
func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request) {
	s.calls.Inc("versions")
	type ver struct {
		Label   string `json:"label"`
		URL     string `json:"url"`
		Version string `json:"version"`
	}
	releaseNames := [...]string{"Winter", "Spring", "Summer"}
	out := make([]ver, 0, maxVersion-minVersion+1)
	for n := minVersion; n <= maxVersion; n++ {
		// v50 is Winter '21; each release adds one version.
		idx := n - minVersion
		year := 21 + (idx+0)/3
		out = append(out, ver{
			Label:   fmt.Sprintf("%s '%02d", releaseNames[idx%3], year),
			URL:     fmt.Sprintf("/services/data/v%d.0", n),
			Version: fmt.Sprintf("%d.0", n),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleResources(w http.ResponseWriter, r *http.Request) {
	b := basePath(r)
	writeJSON(w, http.StatusOK, map[string]string{
		"sobjects":  b + "/sobjects",
		"query":     b + "/query",
		"queryAll":  b + "/queryAll",
		"composite": b + "/composite",
		"limits":    b + "/limits",
	})
}

// usage is the org's rolling 24-hour API request count, kept in
// one-minute buckets.
type usage struct {
	mu      sync.Mutex
	max     int64
	total   int64
	buckets [24 * 60]int64
	minute  int64 // the minute (since epoch) of the newest bucket
}

func newUsage(max int64) *usage { return &usage{max: max} }

// roll forgets buckets older than 24 hours. Caller holds mu.
func (u *usage) roll(now time.Time) {
	m := now.Unix() / 60
	if m <= u.minute {
		return
	}
	steps := m - u.minute
	if steps > int64(len(u.buckets)) {
		steps = int64(len(u.buckets))
	}
	for i := int64(1); i <= steps; i++ {
		idx := (u.minute + i) % int64(len(u.buckets))
		u.total -= u.buckets[idx]
		u.buckets[idx] = 0
	}
	u.minute = m
}

// use counts one request and returns the usage including it.
func (u *usage) use(now time.Time) (used, max int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.roll(now)
	u.buckets[u.minute%int64(len(u.buckets))]++
	u.total++
	return u.total, u.max
}

func (u *usage) current(now time.Time) (used, max int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.roll(now)
	return u.total, u.max
}

// set replaces the usage with used requests made now and, when max > 0,
// the allocation.
func (u *usage) set(now time.Time, used, max int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.buckets = [24 * 60]int64{}
	u.minute = now.Unix() / 60
	u.buckets[u.minute%int64(len(u.buckets))] = used
	u.total = used
	if max > 0 {
		u.max = max
	}
}

type limitValue struct {
	Max       int64 `json:"Max"`
	Remaining int64 `json:"Remaining"`
}

func (s *Server) handleLimits(w http.ResponseWriter, r *http.Request) {
	used, max := s.usage.current(s.clock.Now())
	remaining := max - used
	if remaining < 0 {
		remaining = 0
	}
	fixed := func(n int64) limitValue { return limitValue{Max: n, Remaining: n} }
	writeJSON(w, http.StatusOK, map[string]limitValue{
		"ConcurrentAsyncGetReportInstances": fixed(200),
		"ConcurrentSyncReportRuns":          fixed(20),
		"DailyApiRequests":                  {Max: max, Remaining: remaining},
		"DailyAsyncApexExecutions":          fixed(250000),
		"DailyBulkApiBatches":               fixed(15000),
		"DailyBulkV2QueryJobs":              fixed(10000),
		"DailyDeliveredPlatformEvents":      fixed(50000),
		"DailyGenericStreamingApiEvents":    fixed(10000),
		"DailyStreamingApiEvents":           fixed(1000000),
		"DataStorageMB":                     fixed(1024),
		"FileStorageMB":                     fixed(1024),
		"HourlyAsyncReportRuns":             fixed(1200),
		"HourlyTimeBasedWorkflow":           fixed(1000),
		"SingleEmail":                       fixed(5000),
	})
}
