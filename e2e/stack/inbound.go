package stack

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Customers is a small set of customers the seeded referrals are spread
// over, so the account cache of the salesforce-adapter is exercised the way
// a real tenant does (many referrals, fewer customers).
func Customers() []map[string]any {
	return []map[string]any{
		{"name": "Contoso Retail Inc", "address": map[string]any{"city": "Redmond", "postalCode": "98052", "country": "US", "addressLine1": "1 Main St"}},
		{"name": "Fabrikam Manufacturing", "address": map[string]any{"city": "Munich", "postalCode": "80331", "country": "DE", "addressLine1": "Marienplatz 1"}},
		{"name": "Northwind Traders", "address": map[string]any{"city": "London", "postalCode": "EC1A 1BB", "country": "GB", "addressLine1": "1 King St"}},
		{"name": "Tailspin Toys", "address": map[string]any{"city": "Toronto", "postalCode": "M5H 2N2", "country": "CA", "addressLine1": "100 Queen St W"}},
		{"name": "Woodgrove Bank", "address": map[string]any{"city": "Sydney", "postalCode": "2000", "country": "AU", "addressLine1": "1 George St"}},
	}
}

// InboundReferral returns the fields of the i-th seeded inbound referral.
func InboundReferral(run string, i int) map[string]any {
	cust := Customers()[i%len(Customers())]
	return map[string]any{
		"name": fmt.Sprintf("%s %s opportunity %d", run, cust["name"], i+1),
		"customerProfile": map[string]any{
			"name":    cust["name"],
			"address": cust["address"],
			"team": []any{map[string]any{
				"firstName": "Dana", "lastName": fmt.Sprintf("Buyer%d", i+1),
				"email": fmt.Sprintf("dana.buyer%d@customer.example", i+1), "phoneNumber": "4255550100",
			}},
		},
		"details": map[string]any{
			"notes":           fmt.Sprintf("Seeded by %s: customer %d wants help with an Azure migration.", run, i+1),
			"dealValue":       float64(10000 + 250*i),
			"currency":        "USD",
			"closingDateTime": time.Now().UTC().Add(90 * 24 * time.Hour).Truncate(24 * time.Hour).Format(time.RFC3339),
			// details replaces the emulator's default as a whole, and a
			// co-sell (Shared) referral needs a solution.
			"requirements": map[string]any{"solutions": []any{map[string]any{"id": "SOL-6115380-IPC"}}},
		},
	}
}

// Seeded is one inbound referral a run created and what became of it.
type Seeded struct {
	ReferralID    string
	Name          string
	Customer      string
	DealValue     float64
	SentAt        time.Time // just before the Microsoft seller's create call
	OpportunityID string
	StageName     string
	Amount        float64
	CreatedAt     time.Time // the opportunity's CreatedDate in Salesforce
}

// Latency is the time from the referral's creation to its opportunity's.
func (s Seeded) Latency() time.Duration { return s.CreatedAt.Sub(s.SentAt) }

// SeedInbound creates n inbound referrals as a Microsoft seller, with at
// most parallel requests at once, spread over per to approximate a rate
// (per = 0 sends as fast as it can).
func SeedInbound(ctx context.Context, pc *PartnerCenter, run string, n, parallel int, per time.Duration) ([]*Seeded, error) {
	out := make([]*Seeded, n)
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for i := 0; i < n; i++ {
		if per > 0 {
			if d := time.Until(start.Add(time.Duration(i) * per)); d > 0 {
				time.Sleep(d)
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			fields := InboundReferral(run, i)
			sent := time.Now()
			id, err := pc.CreateInboundID(ctx, fields)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("create referral %d: %w", i+1, err)
				}
				return
			}
			out[i] = &Seeded{ReferralID: id, Name: fields["name"].(string),
				Customer:  fields["customerProfile"].(map[string]any)["name"].(string),
				DealValue: fields["details"].(map[string]any)["dealValue"].(float64), SentAt: sent}
		}(i)
		mu.Lock()
		err := firstErr
		mu.Unlock()
		if err != nil {
			break
		}
	}
	wg.Wait()
	return out, firstErr
}

// WaitForOpportunities polls Salesforce (one query per round, batched by
// referral id) until every seeded referral has an opportunity or ctx ends.
// It returns how many were found.
func WaitForOpportunities(ctx context.Context, sf *Salesforce, seeded []*Seeded, every time.Duration) (int, error) {
	byID := map[string]*Seeded{}
	for _, s := range seeded {
		if s != nil {
			byID[s.ReferralID] = s
		}
	}
	found := 0
	for {
		var pending []string
		for id, s := range byID {
			if s.OpportunityID == "" {
				pending = append(pending, id)
			}
		}
		if len(pending) == 0 {
			return found, nil
		}
		sort.Strings(pending)
		for start := 0; start < len(pending); start += 200 {
			chunk := pending[start:min(start+200, len(pending))]
			quoted := make([]string, len(chunk))
			for i, id := range chunk {
				quoted[i] = QuoteSOQL(id)
			}
			recs, err := sf.Query(ctx, "SELECT Id, Referral_Identifier__c, StageName, Amount, CreatedDate FROM Opportunity WHERE Referral_Identifier__c IN ("+strings.Join(quoted, ",")+")")
			if err != nil {
				return found, err
			}
			for _, r := range recs {
				s := byID[str(r["Referral_Identifier__c"])]
				if s == nil || s.OpportunityID != "" {
					continue
				}
				s.OpportunityID = str(r["Id"])
				s.StageName = str(r["StageName"])
				s.Amount, _ = r["Amount"].(float64)
				s.CreatedAt, _ = time.Parse("2006-01-02T15:04:05.000-0700", str(r["CreatedDate"]))
				found++
			}
		}
		select {
		case <-ctx.Done():
			return found, ctx.Err()
		case <-time.After(every):
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// Percentile returns the p-th percentile (0..100) of ds by nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	return s[rank-1]
}
