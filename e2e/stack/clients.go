package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// newHTTPClient returns a keep-alive client with a short timeout.
func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
}

// doJSON sends body (marshalled when not nil) and decodes a JSON answer
// into out (when not nil), failing on any status other than want.
func doJSON(ctx context.Context, c *http.Client, method, u string, hdr http.Header, body, out any, want ...int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	ok := len(want) == 0 && resp.StatusCode/100 == 2
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, u, err)
		}
	}
	return nil
}

// PartnerCenter drives the Partner Center emulator's control API: it plays
// the Microsoft seller and the Partner Center side of a test.
type PartnerCenter struct {
	BaseURL string
	c       *http.Client

	mu          sync.Mutex
	accessToken string // Referrals API token, fetched on first use
}

// NewPartnerCenter returns a control client for the emulator at base.
func NewPartnerCenter(base string) *PartnerCenter {
	return &PartnerCenter{BaseURL: strings.TrimRight(base, "/"), c: newHTTPClient()}
}

// CreateInbound creates a referral as a Microsoft seller (inbound, New/Pending)
// with the given fields overriding the emulator's defaults, and returns the
// partner's referral document.
func (p *PartnerCenter) CreateInbound(ctx context.Context, fields map[string]any) (map[string]any, error) {
	var out struct {
		Referral        map[string]any `json:"referral"`
		RelatedReferral map[string]any `json:"relatedReferral"`
	}
	if err := doJSON(ctx, p.c, http.MethodPost, p.BaseURL+"/_emulator/referrals", nil, fields, &out, http.StatusCreated); err != nil {
		return nil, err
	}
	return out.Referral, nil
}

// CreateInboundID is CreateInbound for callers that need only the new
// referral's id: it skips decoding both referral documents into maps,
// which is most of a load generator's CPU per referral.
func (p *PartnerCenter) CreateInboundID(ctx context.Context, fields map[string]any) (string, error) {
	var out struct {
		Referral struct {
			ID string `json:"id"`
		} `json:"referral"`
	}
	if err := doJSON(ctx, p.c, http.MethodPost, p.BaseURL+"/_emulator/referrals", nil, fields, &out, http.StatusCreated); err != nil {
		return "", err
	}
	return out.Referral.ID, nil
}

// UpdateAsMicrosoft applies a change as the Microsoft seller (a JSON merge
// of fields into the referral) through the control API, which takes JSON
// Patch: nested objects become one "add" operation per leaf.
func (p *PartnerCenter) UpdateAsMicrosoft(ctx context.Context, id string, fields map[string]any) (map[string]any, error) {
	var out map[string]any
	err := doJSON(ctx, p.c, http.MethodPatch, p.BaseURL+"/_emulator/referrals/"+url.PathEscape(id), nil, mergeToPatch("", fields), &out)
	return out, err
}

// mergeToPatch turns a merge document into JSON Patch "add" operations
// (add replaces an existing member and creates a missing one).
func mergeToPatch(prefix string, fields map[string]any) []map[string]any {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ops []map[string]any
	for _, k := range keys {
		path := prefix + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
		if sub, ok := fields[k].(map[string]any); ok && len(sub) > 0 {
			ops = append(ops, mergeToPatch(path, sub)...)
			continue
		}
		ops = append(ops, map[string]any{"op": "add", "path": path, "value": fields[k]})
	}
	return ops
}

// Control sends any control request (path relative to /_emulator).
func (p *PartnerCenter) Control(ctx context.Context, method, path string, body, out any) error {
	return doJSON(ctx, p.c, method, p.BaseURL+"/_emulator"+path, nil, body, out)
}

// Counters returns the emulator's per-endpoint call counters.
func (p *PartnerCenter) Counters(ctx context.Context) (map[string]int64, error) {
	var out struct {
		Counters map[string]int64 `json:"counters"`
	}
	err := p.Control(ctx, http.MethodGet, "/counters", nil, &out)
	return out.Counters, err
}

// Salesforce is a minimal REST client for the Salesforce emulator that logs
// in with the client-credentials flow, as any third-party client would, and
// counts its own API calls so measurements can subtract them.
type Salesforce struct {
	BaseURL      string
	ClientID     string
	ClientSecret string
	APIVersion   string

	c     *http.Client
	mu    sync.Mutex
	token string
	inst  string
	calls int64
}

// NewSalesforce returns a client for the emulator at base with the stack's
// dev credentials.
func NewSalesforce(base string) *Salesforce {
	return &Salesforce{BaseURL: strings.TrimRight(base, "/"), ClientID: SFClientID, ClientSecret: SFClientSecret, APIVersion: "v62.0", c: newHTTPClient()}
}

// Calls returns how many REST API calls (not logins) the client made.
func (s *Salesforce) Calls() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *Salesforce) login(ctx context.Context) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" {
		return s.token, s.inst, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.BaseURL+"/services/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.c.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("salesforce login: %s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", "", err
	}
	s.token, s.inst = tok.AccessToken, strings.TrimRight(tok.InstanceURL, "/")
	return s.token, s.inst, nil
}

// Query runs a SOQL query and returns every record (following nextRecordsUrl).
func (s *Salesforce) Query(ctx context.Context, soql string) ([]map[string]any, error) {
	tok, inst, err := s.login(ctx)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	next := "/services/data/" + s.APIVersion + "/query?q=" + url.QueryEscape(soql)
	var all []map[string]any
	for next != "" {
		var page struct {
			Records        []map[string]any `json:"records"`
			NextRecordsURL string           `json:"nextRecordsUrl"`
			Done           bool             `json:"done"`
		}
		s.mu.Lock()
		s.calls++
		s.mu.Unlock()
		if err := doJSON(ctx, s.c, http.MethodGet, inst+next, hdr, nil, &page, http.StatusOK); err != nil {
			return nil, err
		}
		all = append(all, page.Records...)
		next = ""
		if !page.Done {
			next = page.NextRecordsURL
		}
	}
	return all, nil
}

// Count runs a SELECT COUNT() query and returns totalSize.
func (s *Salesforce) Count(ctx context.Context, soql string) (int, error) {
	tok, inst, err := s.login(ctx)
	if err != nil {
		return 0, err
	}
	var page struct {
		TotalSize int `json:"totalSize"`
	}
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	err = doJSON(ctx, s.c, http.MethodGet, inst+"/services/data/"+s.APIVersion+"/query?q="+url.QueryEscape(soql),
		http.Header{"Authorization": {"Bearer " + tok}}, nil, &page, http.StatusOK)
	return page.TotalSize, err
}

// Control sends a control-API request (path relative to /_emulator).
func (s *Salesforce) Control(ctx context.Context, method, path string, body, out any) error {
	return doJSON(ctx, s.c, method, s.BaseURL+"/_emulator"+path, nil, body, out)
}

// QuoteSOQL returns s as a SOQL string literal.
func QuoteSOQL(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\"", `\"`)
	return "'" + r.Replace(s) + "'"
}
