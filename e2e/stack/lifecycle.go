package stack

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file holds the control-API helpers of the outbound and lifecycle
// tests (issue 4): the Microsoft seller's side of a referral (its own
// related referral, acceptance, expiry) and the Salesforce seller's
// records read and written through the Salesforce emulator's control API,
// which neither counts against the API limit nor shows up in the
// emulator's counters, so tests can measure the services' calls exactly.

// CreateInboundPair creates an inbound referral as a Microsoft seller and
// returns the partner's referral and Microsoft's own referral of the same
// engagement (the "related" referral the Microsoft seller works on).
func (p *PartnerCenter) CreateInboundPair(ctx context.Context, fields map[string]any) (partner, microsoft map[string]any, err error) {
	var out struct {
		Referral        map[string]any `json:"referral"`
		RelatedReferral map[string]any `json:"relatedReferral"`
	}
	if err := doJSON(ctx, p.c, http.MethodPost, p.BaseURL+"/_emulator/referrals", nil, fields, &out, http.StatusCreated); err != nil {
		return nil, nil, err
	}
	if str(out.Referral["id"]) == "" || str(out.RelatedReferral["id"]) == "" {
		return nil, nil, fmt.Errorf("create inbound referral: the answer lacks a referral or Microsoft's related referral: %v", out)
	}
	return out.Referral, out.RelatedReferral, nil
}

// Accept plays Microsoft accepting the co-sell of the engagement of
// referral id: Microsoft's referral gets trackingInfo.microsoftMsxId.
func (p *PartnerCenter) Accept(ctx context.Context, id, msxID string) (map[string]any, error) {
	var out map[string]any
	body := map[string]any{}
	if msxID != "" {
		body["microsoftMsxId"] = msxID
	}
	err := doJSON(ctx, p.c, http.MethodPost, p.BaseURL+"/_emulator/referrals/"+url.PathEscape(id)+"/accept", nil, body, &out, http.StatusOK)
	return out, err
}

// Expire closes a referral as Partner Center does after 14 unanswered
// days (Closed/Expired).
func (p *PartnerCenter) Expire(ctx context.Context, id string) (map[string]any, error) {
	var out map[string]any
	err := doJSON(ctx, p.c, http.MethodPost, p.BaseURL+"/_emulator/referrals/"+url.PathEscape(id)+"/expire", nil, nil, &out, http.StatusOK)
	return out, err
}

// AllReferrals returns every referral of the emulator in creation order.
func (p *PartnerCenter) AllReferrals(ctx context.Context) ([]map[string]any, error) {
	var state struct {
		Referrals []map[string]any `json:"referrals"`
	}
	if err := p.Control(ctx, http.MethodGet, "/state", nil, &state); err != nil {
		return nil, err
	}
	return state.Referrals, nil
}

// ReferralsFor returns the referrals whose externalReferenceId is ext
// (an opportunity id): more than one is a duplicate.
func (p *PartnerCenter) ReferralsFor(ctx context.Context, ext string) ([]map[string]any, error) {
	all, err := p.AllReferrals(ctx)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, r := range all {
		if strings.EqualFold(str(r["externalReferenceId"]), ext) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Referral returns one referral by id, or nil when there is none.
func (p *PartnerCenter) Referral(ctx context.Context, id string) (map[string]any, error) {
	all, err := p.AllReferrals(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		if str(r["id"]) == id {
			return r, nil
		}
	}
	return nil, nil
}

// AddFault injects a Referrals API fault and returns its id.
func (p *PartnerCenter) AddFault(ctx context.Context, fault map[string]any) (int, error) {
	var out struct {
		ID int `json:"id"`
	}
	err := doJSON(ctx, p.c, http.MethodPost, p.BaseURL+"/_emulator/faults", nil, fault, &out, http.StatusCreated)
	return out.ID, err
}

// ClearFaults removes every Referrals API fault.
func (p *PartnerCenter) ClearFaults(ctx context.Context) error {
	return doJSON(ctx, p.c, http.MethodDelete, p.BaseURL+"/_emulator/faults", nil, nil, nil)
}

// Record reads a record as the seller sees it (every field, Audit__c included).
func (s *Salesforce) Record(ctx context.Context, object, id string) (map[string]any, error) {
	var rec map[string]any
	err := s.Control(ctx, http.MethodGet, "/records/"+object+"/"+url.PathEscape(id), nil, &rec)
	return rec, err
}

// CreateRecord creates a record as the seller and returns it.
func (s *Salesforce) CreateRecord(ctx context.Context, object string, fields map[string]any) (map[string]any, error) {
	var rec map[string]any
	if err := s.Control(ctx, http.MethodPost, "/records/"+object, fields, &rec); err != nil {
		return nil, err
	}
	if str(rec["Id"]) == "" {
		return nil, fmt.Errorf("created %s has no Id: %v", object, rec)
	}
	return rec, nil
}

// UpdateRecord changes a record as the seller (a save in the UI) and
// returns the record as saved.
func (s *Salesforce) UpdateRecord(ctx context.Context, object, id string, fields map[string]any) (map[string]any, error) {
	var rec map[string]any
	err := s.Control(ctx, http.MethodPatch, "/records/"+object+"/"+url.PathEscape(id), fields, &rec)
	return rec, err
}

// SFCalls returns the Salesforce emulator's API calls per endpoint.
func (s *Salesforce) SFCalls(ctx context.Context) (map[string]int64, error) {
	var c struct {
		Calls map[string]int64 `json:"calls"`
	}
	err := s.Control(ctx, http.MethodGet, "/counters", nil, &c)
	return c.Calls, err
}

// SFWriteEndpoints are the Salesforce emulator's endpoints that write records.
var SFWriteEndpoints = []string{"upsert", "composite", "composite.sobjects", "sobject.create", "sobject.update", "sobject.delete"}

// PCWriteEndpoints are the Partner Center emulator's endpoints that write referrals.
var PCWriteEndpoints = []string{"referrals.create", "referrals.patch", "referrals.put"}

// SumCounters adds up the named counters.
func SumCounters(c map[string]int64, names ...string) int64 {
	var n int64
	for _, k := range names {
		n += c[k]
	}
	return n
}

// ParseSFTime parses a Salesforce datetime (2006-01-02T15:04:05.000+0000).
func ParseSFTime(v any) (time.Time, error) {
	return time.Parse("2006-01-02T15:04:05.000-0700", str(v))
}
