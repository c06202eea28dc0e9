package pcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// referralsPath is the Referrals API's collection path under the API base.
const referralsPath = "/v1.0/engagements/referrals"

// Referral is a referral document as Partner Center returned it, with the
// few fields the adapter itself needs parsed out. Everything else stays in
// Raw, because the schema is wide and keeps growing and the mapper decides
// what to read.
type Referral struct {
	// ID is the referral's id.
	ID string
	// EngagementID groups related referrals.
	EngagementID string
	// OrganizationID owns the referral ("msft" for Microsoft's side).
	OrganizationID string
	// UpdatedAt is updatedDateTime, the ordering key.
	UpdatedAt time.Time
	// CreatedAt is createdDateTime; zero when absent.
	CreatedAt time.Time
	// ExternalReferenceID is the CRM record the referral was created for
	// (the Salesforce opportunity id), empty when none.
	ExternalReferenceID string
	// ETag is eTag exactly as returned, quotes included.
	ETag string
	// Raw is the document exactly as returned.
	Raw json.RawMessage
}

// referralHead is the part of a referral the adapter parses.
type referralHead struct {
	ID             string `json:"id"`
	EngagementID   string `json:"engagementId"`
	OrganizationID string `json:"organizationId"`
	UpdatedAt      string `json:"updatedDateTime"`
	CreatedAt      string `json:"createdDateTime"`
	ExternalRef    string `json:"externalReferenceId"`
	ETag           string `json:"eTag"`
}

// ParseReferral parses a referral document.
func ParseReferral(raw []byte) (Referral, error) {
	var h referralHead
	if err := json.Unmarshal(raw, &h); err != nil {
		return Referral{}, fmt.Errorf("decode referral: %w", err)
	}
	if h.ID == "" {
		return Referral{}, errors.New("decode referral: no id")
	}
	updated, err := time.Parse(time.RFC3339Nano, h.UpdatedAt)
	if err != nil {
		return Referral{}, fmt.Errorf("decode referral %s: updatedDateTime %q: %w", h.ID, h.UpdatedAt, err)
	}
	var created time.Time
	if h.CreatedAt != "" {
		// Informational only: a malformed createdDateTime must not make
		// the referral unreadable.
		if t, err := time.Parse(time.RFC3339Nano, h.CreatedAt); err == nil {
			created = t.UTC()
		}
	}
	return Referral{
		ID:                  h.ID,
		EngagementID:        h.EngagementID,
		OrganizationID:      h.OrganizationID,
		UpdatedAt:           updated.UTC(),
		CreatedAt:           created,
		ExternalReferenceID: h.ExternalRef,
		ETag:                h.ETag,
		Raw:                 json.RawMessage(append([]byte(nil), raw...)),
	}, nil
}

// GetReferral reads one referral. A referral that does not exist is an
// *APIError for which IsNotFound is true.
func (c *Client) GetReferral(ctx context.Context, id string) (Referral, error) {
	if id == "" {
		return Referral{}, errors.New("partner center GetReferral: empty referral id")
	}
	u := c.apiBase.JoinPath(referralsPath, id).String()
	resp, err := c.do(ctx, request{
		op: "GetReferral", resource: ResourceReferrals, method: http.MethodGet, url: u,
		ok: []int{http.StatusOK}, attrs: []attribute.KeyValue{AttrReferralID.String(id)},
	})
	if err != nil {
		return Referral{}, err
	}
	r, err := ParseReferral(resp.body)
	if err != nil {
		return Referral{}, fmt.Errorf("partner center GetReferral %s: %w", id, err)
	}
	return r, nil
}

// ListQuery is the OData query of a referral listing.
type ListQuery struct {
	// OrderBy is $orderby, e.g. "updatedDateTime desc".
	OrderBy string
	// Filter is $filter; empty lists everything.
	Filter string
}

// listPage is one page of a listing.
type listPage struct {
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"@odata.nextLink"`
}

// ListReferrals lists referrals page by page, following @odata.nextLink,
// and calls fn with each page until fn returns false, an error, or there
// are no more pages.
func (c *Client) ListReferrals(ctx context.Context, q ListQuery, fn func(page []Referral) (more bool, err error)) error {
	u := c.apiBase.JoinPath(referralsPath)
	v := url.Values{}
	if q.OrderBy != "" {
		v.Set("$orderby", q.OrderBy)
	}
	if q.Filter != "" {
		v.Set("$filter", q.Filter)
	}
	u.RawQuery = v.Encode()
	next := u.String()
	for page := 1; next != ""; page++ {
		resp, err := c.do(ctx, request{
			op: "ListReferrals", resource: ResourceReferrals, method: http.MethodGet, url: next,
			ok: []int{http.StatusOK}, attrs: []attribute.KeyValue{attribute.Int("cosell.page", page)},
		})
		if err != nil {
			return err
		}
		var p listPage
		if err := json.Unmarshal(resp.body, &p); err != nil {
			return fmt.Errorf("partner center ListReferrals page %d: decode: %w", page, err)
		}
		refs := make([]Referral, 0, len(p.Value))
		for _, raw := range p.Value {
			r, err := ParseReferral(raw)
			if err != nil {
				return fmt.Errorf("partner center ListReferrals page %d: %w", page, err)
			}
			refs = append(refs, r)
		}
		more, err := fn(refs)
		if err != nil || !more {
			return err
		}
		if next, err = c.nextLink(p.NextLink); err != nil {
			return fmt.Errorf("partner center ListReferrals page %d: %w", page, err)
		}
	}
	return nil
}

// nextLink resolves an @odata.nextLink. A link on the API's own host is
// followed as returned; a link naming another host (the docs show one on
// http://api.partner.microsoft.com/v1.0/referrals) keeps only its query
// on the configured collection URL, so the bearer token never goes to a
// host we were not configured for.
func (c *Client) nextLink(link string) (string, error) {
	if link == "" {
		return "", nil
	}
	u, err := c.apiBase.Parse(link)
	if err != nil {
		return "", fmt.Errorf("bad @odata.nextLink: %w", err)
	}
	if u.Scheme == c.apiBase.Scheme && u.Host == c.apiBase.Host {
		return u.String(), nil
	}
	safe := c.apiBase.JoinPath(referralsPath)
	safe.RawQuery = u.RawQuery
	return safe.String(), nil
}

// String helps logs show a referral without its content.
func (r Referral) String() string {
	return "referral " + r.ID + " updated " + r.UpdatedAt.Format(time.RFC3339Nano) + " etag " + strconv.Quote(r.ETag)
}
