package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// OptedIn is one opportunity a seller opted in to co-sell sync and what
// became of it in Partner Center.
type OptedIn struct {
	OpportunityID string
	AccountID     string
	Name          string
	Amount        float64
	OptedInAt     time.Time // just before the seller's save
	ReferralID    string
	CreatedAt     time.Time // the referral's createdDateTime in Partner Center
	DealValue     float64   // the referral's current deal value
	WrittenBack   bool      // Referral_Identifier__c is on the opportunity
}

// Latency is the time from the seller's opt-in to the referral's creation.
func (o OptedIn) Latency() time.Duration { return o.CreatedAt.Sub(o.OptedInAt) }

// SeedOutbound plays n sellers: each creates a customer account and an
// opportunity with "Sync with Partner Center" ticked (a partner-led deal:
// no help requested from Microsoft), through the Salesforce emulator's
// control API so the records are the seller's, not the integration user's.
func SeedOutbound(ctx context.Context, sf *Salesforce, run string, n, parallel int) ([]*OptedIn, error) {
	out := make([]*OptedIn, n)
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := seedOne(ctx, sf, run, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			out[i] = o
		}(i)
	}
	wg.Wait()
	return out, firstErr
}

func seedOne(ctx context.Context, sf *Salesforce, run string, i int) (*OptedIn, error) {
	cust := Customers()[i%len(Customers())]
	addr := cust["address"].(map[string]any)
	var acct map[string]any
	if err := sf.Control(ctx, http.MethodPost, "/records/Account", map[string]any{
		"Name":              fmt.Sprintf("%s %s %d", run, cust["name"], i+1),
		"BillingCountry":    addr["country"],
		"BillingPostalCode": addr["postalCode"],
		"BillingCity":       addr["city"],
		"BillingStreet":     addr["addressLine1"],
	}, &acct); err != nil {
		return nil, fmt.Errorf("create account %d: %w", i+1, err)
	}
	o := &OptedIn{AccountID: str(acct["Id"]), Name: fmt.Sprintf("%s outbound deal %d", run, i+1), Amount: float64(20000 + 500*i)}
	o.OptedInAt = time.Now()
	var opp map[string]any
	if err := sf.Control(ctx, http.MethodPost, "/records/Opportunity", map[string]any{
		"Name":                        o.Name,
		"AccountId":                   o.AccountID,
		"Amount":                      o.Amount,
		"CurrencyIsoCode":             "USD",
		"CloseDate":                   time.Now().UTC().Add(60 * 24 * time.Hour).Format("2006-01-02"),
		"StageName":                   "Qualification",
		"Description":                 fmt.Sprintf("Seeded by %s: the customer wants an Azure landing zone.", run),
		"Sync_with_Partner_Center__c": true,
	}, &opp); err != nil {
		return nil, fmt.Errorf("create opportunity %d: %w", i+1, err)
	}
	o.OpportunityID = str(opp["Id"])
	return o, nil
}

// ChangeAmount plays the seller changing an opportunity's amount.
func ChangeAmount(ctx context.Context, sf *Salesforce, oppID string, amount float64) error {
	return sf.Control(ctx, http.MethodPatch, "/records/Opportunity/"+oppID, map[string]any{"Amount": amount}, nil)
}

// Referrals returns the referrals whose externalReferenceId is one of
// the given opportunities' ids, keyed by it. It asks the Referrals API (as
// the partner, with the stack's test-tenant credentials) with OData
// filters of a few ids each, so it stays cheap when the emulator holds
// tens of thousands of referrals.
func (p *PartnerCenter) Referrals(ctx context.Context, opts []*OptedIn) (map[string]map[string]any, error) {
	tok, err := p.token(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, o := range opts {
		if o != nil {
			ids = append(ids, o.OpportunityID)
		}
	}
	out := map[string]map[string]any{}
	for start := 0; start < len(ids); start += 25 {
		var terms []string
		for _, id := range ids[start:min(start+25, len(ids))] {
			terms = append(terms, "externalReferenceId eq '"+strings.ReplaceAll(id, "'", "''")+"'")
		}
		next := p.BaseURL + "/v1.0/engagements/referrals?$filter=" + url.QueryEscape(strings.Join(terms, " or "))
		for next != "" {
			var page struct {
				Value    []map[string]any `json:"value"`
				NextLink string           `json:"@odata.nextLink"`
			}
			if err := doJSON(ctx, p.c, http.MethodGet, next, http.Header{"Authorization": {"Bearer " + tok}}, nil, &page, http.StatusOK); err != nil {
				return nil, err
			}
			for _, r := range page.Value {
				if ext := str(r["externalReferenceId"]); ext != "" {
					out[ext] = r
				}
			}
			next = page.NextLink
		}
	}
	return out, nil
}

// token returns a Referrals API access token from the emulator's password
// grant (the stack's test tenant), cached for the client's life.
func (p *PartnerCenter) token(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.accessToken != "" {
		return p.accessToken, nil
	}
	form := url.Values{"grant_type": {"password"}, "resource": {"https://api.partner.microsoft.com"},
		"client_id": {PCClientID}, "client_secret": {PCClientSecret}, "username": {PCUsername}, "password": {PCPassword}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.BaseURL+"/"+PCTenantID+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return "", fmt.Errorf("partner center token: %s: %v", resp.Status, err)
	}
	p.accessToken = tok.AccessToken
	return p.accessToken, nil
}

// WaitForReferrals polls Partner Center until every opted-in opportunity
// has a referral, and Salesforce until each carries its Referral ID, or ctx
// ends. It returns how many referrals were created.
func WaitForReferrals(ctx context.Context, pc *PartnerCenter, sf *Salesforce, opts []*OptedIn, every time.Duration) (int, error) {
	for {
		refs, err := pc.Referrals(ctx, opts)
		if err != nil {
			return 0, err
		}
		created, pending := 0, false
		for _, o := range opts {
			if o == nil {
				continue
			}
			if r, ok := refs[o.OpportunityID]; ok {
				created++
				o.ReferralID = str(r["id"])
				o.CreatedAt, _ = time.Parse(time.RFC3339Nano, str(r["createdDateTime"]))
				if d, ok := r["details"].(map[string]any); ok {
					o.DealValue, _ = d["dealValue"].(float64)
				}
			} else {
				pending = true
			}
		}
		if !pending {
			if err := markWrittenBack(ctx, sf, opts); err != nil {
				return created, err
			}
			done := true
			for _, o := range opts {
				if o != nil && !o.WrittenBack {
					done = false
				}
			}
			if done {
				return created, nil
			}
		}
		select {
		case <-ctx.Done():
			return created, ctx.Err()
		case <-time.After(every):
		}
	}
}

func markWrittenBack(ctx context.Context, sf *Salesforce, opts []*OptedIn) error {
	for _, o := range opts {
		if o == nil || o.WrittenBack {
			continue
		}
		var rec map[string]any
		if err := sf.Control(ctx, http.MethodGet, "/records/Opportunity/"+o.OpportunityID, nil, &rec); err != nil {
			return err
		}
		o.WrittenBack = str(rec["Referral_Identifier__c"]) == o.ReferralID && o.ReferralID != ""
	}
	return nil
}

// WaitForDealValues waits until each opted-in opportunity's referral has
// deal value want(o), and returns how many do.
func WaitForDealValues(ctx context.Context, pc *PartnerCenter, opts []*OptedIn, want func(*OptedIn) float64) (int, error) {
	for {
		refs, err := pc.Referrals(ctx, opts)
		if err != nil {
			return 0, err
		}
		done := 0
		for _, o := range opts {
			if r, ok := refs[o.OpportunityID]; ok {
				if d, ok := r["details"].(map[string]any); ok {
					o.DealValue, _ = d["dealValue"].(float64)
				}
				if o.DealValue == want(o) {
					done++
				}
			}
		}
		if done == len(opts) {
			return done, nil
		}
		select {
		case <-ctx.Done():
			return done, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
