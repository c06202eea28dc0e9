package salesforce

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"
)

// OAuth constants from reference §1.
const (
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantClientCredentials = "client_credentials"
	audLogin               = "https://login.salesforce.com"
	audTest                = "https://test.salesforce.com"
	// maxAssertionAhead bounds how far in the future a JWT's exp may lie.
	// Salesforce documents three minutes; widely used clients
	// (k-capehart/go-salesforce) send five and succeed, so five is allowed.
	maxAssertionAhead = 5 * time.Minute
)

// session is one issued access token. lastUsed (unix nanoseconds of
// emulated time) drives the inactivity timeout, like a Salesforce session.
type session struct {
	token    string
	userID   string
	issuedAt time.Time
	lastUsed atomic.Int64
	expired  atomic.Bool
}

// tokenStore holds the live sessions.
type tokenStore struct {
	mu     sync.RWMutex
	m      map[string]*session
	issued uint64
}

func newTokenStore() *tokenStore { return &tokenStore{m: map[string]*session{}} }

// sweepEvery is how many issued tokens pass between sweeps of dead
// sessions, which bound the map of a long-running emulator.
const sweepEvery = 256

func (t *tokenStore) add(s *session, now time.Time, lifetime time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[s.token] = s
	t.issued++
	if t.issued%sweepEvery != 0 {
		return
	}
	for k, old := range t.m {
		if old.expired.Load() || now.Sub(time.Unix(0, old.lastUsed.Load())) > lifetime {
			delete(t.m, k)
		}
	}
}

func (t *tokenStore) get(token string) *session {
	t.mu.RLock()
	s := t.m[token]
	t.mu.RUnlock()
	return s
}

// revoke deletes token, or every token when token is empty, and returns
// how many sessions ended.
func (t *tokenStore) revoke(token string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if token == "" {
		n := len(t.m)
		t.m = map[string]*session{}
		return n
	}
	if _, ok := t.m[token]; !ok {
		return 0
	}
	delete(t.m, token)
	return 1
}

// expire marks token (or every token when empty) as timed out, returning
// how many sessions it affected. Expired sessions stay known so the error
// is the same INVALID_SESSION_ID a real timeout gives.
func (t *tokenStore) expire(token string) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for k, s := range t.m {
		if token == "" || k == token {
			s.expired.Store(true)
			n++
		}
	}
	return n
}

func (t *tokenStore) count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// oauthError is the token endpoint's error body (not the REST array).
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}

// tokenResponse is the seven-field success body of reference §1.2.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	Signature   string `json:"signature"`
	Scope       string `json:"scope"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	IssuedAt    string `json:"issued_at"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.calls.Inc("token")
	if !s.applyOAuthFault(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case grantJWTBearer:
		s.tokenJWT(w, r)
	case grantClientCredentials:
		s.tokenClientCredentials(w, r)
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
	}
}

// applyOAuthFault renders an injected token-endpoint fault in OAuth style;
// it reports whether the request should proceed.
func (s *Server) applyOAuthFault(w http.ResponseWriter, r *http.Request) bool {
	f := s.faults.Match("token")
	if f == nil {
		return true
	}
	if !sleepCtx(r.Context(), time.Duration(f.Latency)) {
		return false
	}
	switch f.Kind {
	case faultLatency:
		return true
	case fault500:
		writeOAuthError(w, http.StatusInternalServerError, "unknown_error", "retry your request")
	default:
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "service temporarily unavailable")
	}
	return false
}

func (s *Server) tokenClientCredentials(w http.ResponseWriter, r *http.Request) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || id != s.cfg.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid")
		return
	}
	if !hmac.Equal([]byte(secret), []byte(s.cfg.ClientSecret)) {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "invalid client credentials")
		return
	}
	s.issueToken(w, s.IntegrationUserID())
}

func (s *Server) tokenJWT(w http.ResponseWriter, r *http.Request) {
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "assertion is required")
		return
	}
	if len(s.cfg.JWTCerts) == 0 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	now := s.clock.Now()
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithoutClaimsValidation(), // exp/aud rules below are Salesforce's, not the library's
	)
	var claims jwt.MapClaims
	verified := false
	for _, cert := range s.cfg.JWTCerts {
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			continue
		}
		c := jwt.MapClaims{}
		if _, err := parser.ParseWithClaims(assertion, c, func(*jwt.Token) (any, error) { return pub, nil }); err == nil {
			claims, verified = c, true
			break
		}
	}
	if !verified {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	if iss, _ := claims["iss"].(string); iss != s.cfg.ClientID {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid")
		return
	}
	if !audienceOK(claims["aud"]) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "audience is invalid")
		return
	}
	exp, ok := numericClaim(claims["exp"])
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	expAt := time.Unix(exp, 0)
	if !expAt.After(now) || expAt.After(now.Add(maxAssertionAhead)) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "expired authorization code")
		return
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		sub, _ = claims["prn"].(string)
	}
	if !strings.EqualFold(sub, s.cfg.Username) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "user hasn't approved this consumer")
		return
	}
	s.issueToken(w, s.IntegrationUserID())
}

func audienceOK(v any) bool {
	ok := func(s string) bool { return s == audLogin || s == audTest }
	switch a := v.(type) {
	case string:
		return ok(a)
	case []any:
		for _, x := range a {
			if s, _ := x.(string); ok(s) {
				return true
			}
		}
	}
	return false
}

func numericClaim(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// issueToken creates a session for userID and writes the token response.
func (s *Server) issueToken(w http.ResponseWriter, userID string) {
	now := s.clock.Now()
	tok, err := s.newAccessToken()
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "unknown_error", "could not issue a token")
		return
	}
	sess := &session{token: tok, userID: userID, issuedAt: now}
	sess.lastUsed.Store(now.UnixNano())
	s.tokens.add(sess, now, s.cfg.TokenLifetime)
	issued := strconv.FormatInt(now.UnixMilli(), 10)
	id := s.cfg.PublicURL + "/id/" + s.orgID + "/" + userID
	mac := hmac.New(sha256.New, []byte(s.cfg.ClientSecret))
	mac.Write([]byte(id + issued))
	s.log.Debug("token issued", "user_id", userID)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok,
		Signature:   base64.StdEncoding.EncodeToString(mac.Sum(nil)),
		Scope:       "api",
		InstanceURL: s.cfg.PublicURL,
		ID:          id,
		TokenType:   "Bearer",
		IssuedAt:    issued,
	})
}

// newAccessToken returns "<15-char org id>!<opaque>", the shape real
// session ids have.
func (s *Server) newAccessToken() (string, error) {
	var b [48]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return s.orgID[:15] + "!" + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// handleRevoke implements POST /services/oauth2/revoke (token=...), which
// ends a session; Salesforce answers 200 with an empty body, or 400
// unsupported_token_type for an unknown token.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	s.calls.Inc("revoke")
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed request")
		return
	}
	tok := r.Form.Get("token")
	if tok == "" || s.tokens.revoke(tok) == 0 {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_token_type", "this token type is not supported")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// authenticate returns the live session of r's bearer token, or the
// INVALID_SESSION_ID error. "OAuth <token>" is accepted too, as Salesforce
// does for older clients.
func (s *Server) authenticate(r *http.Request) (*session, *restError) {
	h := r.Header.Get("Authorization")
	var tok string
	switch {
	case len(h) > 7 && strings.EqualFold(h[:7], "Bearer "):
		tok = strings.TrimSpace(h[7:])
	case len(h) > 6 && strings.EqualFold(h[:6], "OAuth "):
		tok = strings.TrimSpace(h[6:])
	}
	if tok == "" {
		return nil, errInvalidSession()
	}
	sess := s.tokens.get(tok)
	if sess == nil || sess.expired.Load() {
		return nil, errInvalidSession()
	}
	now := s.clock.Now().UnixNano()
	if time.Duration(now-sess.lastUsed.Load()) > s.cfg.TokenLifetime {
		sess.expired.Store(true)
		return nil, errInvalidSession()
	}
	sess.lastUsed.Store(now)
	return sess, nil
}

func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	s.calls.Inc("userinfo")
	sess, rerr := s.authenticate(r)
	if rerr != nil {
		writeOAuthError(w, http.StatusForbidden, "Bad_OAuth_Token", "Bad_OAuth_Token")
		return
	}
	writeJSON(w, http.StatusOK, s.identity(sess.userID, true))
}

// handleIdentity serves the identity URL handed out as the token
// response's id.
func (s *Server) handleIdentity(w http.ResponseWriter, r *http.Request) {
	s.calls.Inc("identity")
	sess, rerr := s.authenticate(r)
	if rerr != nil {
		writeOAuthError(w, http.StatusForbidden, "Bad_OAuth_Token", "Bad_OAuth_Token")
		return
	}
	if chi.URLParam(r, "org") != s.orgID || chi.URLParam(r, "user") != sess.userID {
		writeOAuthError(w, http.StatusForbidden, "Bad_Id", "Bad_Id")
		return
	}
	writeJSON(w, http.StatusOK, s.identity(sess.userID, false))
}

// identity renders the user as the identity service does (userinfo uses
// OpenID Connect names, the id URL the legacy ones).
func (s *Server) identity(userID string, oidc bool) map[string]any {
	var username, name, email string
	s.store.read(nil, func(v *view) {
		if rec, ok := v.getLive("User", userID); ok {
			username, _ = rec["Username"].(string)
			name, _ = rec["Name"].(string)
			email, _ = rec["Email"].(string)
		}
	})
	v := "/services/data/v" + latestVersion + "/"
	urls := map[string]string{
		"rest":     s.cfg.PublicURL + v,
		"sobjects": s.cfg.PublicURL + v + "sobjects/",
		"query":    s.cfg.PublicURL + v + "query/",
		"profile":  s.cfg.PublicURL + "/" + userID,
	}
	if oidc {
		return map[string]any{
			"sub": s.cfg.PublicURL + "/id/" + s.orgID + "/" + userID, "user_id": userID,
			"organization_id": s.orgID, "preferred_username": username, "name": name,
			"email": email, "email_verified": true, "active": true, "user_type": "STANDARD",
			"urls": urls,
		}
	}
	return map[string]any{
		"id": s.cfg.PublicURL + "/id/" + s.orgID + "/" + userID, "user_id": userID,
		"organization_id": s.orgID, "username": username, "display_name": name,
		"email": email, "active": true, "user_type": "STANDARD", "urls": urls,
	}
}
