package pcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
)

// AttrExternalReferenceID is the span attribute naming the CRM record
// (the Salesforce opportunity id) a create is for.
const AttrExternalReferenceID = attribute.Key("cosell.external_reference_id")

// CreateReferral POSTs body, a complete referral document, and returns the
// referral Partner Center created.
//
// Partner Center has no upsert and a POST is not idempotent, so the client
// never sends it twice on its own: a transport failure or a server error
// (the request may have been applied, its answer lost) comes back to the
// caller, who must look the referral up by externalReferenceId before any
// new POST. Throttling (429) and a refused token (401) are
// still retried here, because Partner Center did nothing with those.
func (c *Client) CreateReferral(ctx context.Context, body []byte, externalReferenceID string) (Referral, error) {
	if len(body) == 0 {
		return Referral{}, errors.New("partner center CreateReferral: empty body")
	}
	resp, err := c.do(ctx, request{
		op: "CreateReferral", resource: ResourceReferrals, method: http.MethodPost,
		url: c.apiBase.JoinPath(referralsPath).String(), body: body, noReplay: true,
		// The emulator and the response-codes page say 201, the connector
		// spec 200: both are a creation.
		ok:    []int{http.StatusCreated, http.StatusOK},
		attrs: []attribute.KeyValue{AttrExternalReferenceID.String(externalReferenceID)},
	})
	if err != nil {
		return Referral{}, err
	}
	r, err := ParseReferral(resp.body)
	if err != nil {
		return Referral{}, fmt.Errorf("partner center CreateReferral: %w", err)
	}
	return r, nil
}

// PatchResult is the answer to a PATCH.
type PatchResult struct {
	// Referral is the referral after the patch when Partner Center sent it
	// back (Prefer: return=representation honoured); otherwise only ID and
	// ETag (from the ETag header, when present) are set.
	Referral Referral
	// Full reports whether Referral is the whole document.
	Full bool
	// Status is the HTTP status (200 or 204).
	Status int
}

// PatchReferral applies ops, a JSON Patch array, to the referral id, asking
// for the result back (Prefer: return=representation). ifMatch, when not
// empty, is sent as If-Match: a referral changed since that eTag answers
// 412 (an *APIError with Code "preconditionFailed").
//
// A patch is retried after transport failures and server errors only when
// repeating it is harmless: when it is conditional (a repeat that finds
// its own earlier write answers 412) or when no operation appends to an
// array ("/-"); otherwise such failures come back to the caller at once.
func (c *Client) PatchReferral(ctx context.Context, id string, ops []byte, ifMatch string) (PatchResult, error) {
	if id == "" {
		return PatchResult{}, errors.New("partner center PatchReferral: empty referral id")
	}
	if len(ops) == 0 {
		return PatchResult{}, errors.New("partner center PatchReferral: empty patch")
	}
	h := http.Header{}
	h.Set("Prefer", "return=representation")
	if ifMatch != "" {
		h.Set("If-Match", ifMatch)
	}
	resp, err := c.do(ctx, request{
		op: "PatchReferral", resource: ResourceReferrals, method: http.MethodPatch,
		url: c.apiBase.JoinPath(referralsPath, id).String(), body: ops, header: h,
		noReplay: ifMatch == "" && appends(ops),
		ok:       []int{http.StatusOK, http.StatusNoContent},
		attrs:    []attribute.KeyValue{AttrReferralID.String(id)},
	})
	if err != nil {
		return PatchResult{}, err
	}
	if resp.status == http.StatusNoContent || len(strings.TrimSpace(string(resp.body))) == 0 {
		return PatchResult{Referral: Referral{ID: id, ETag: resp.header.Get("ETag")}, Status: resp.status}, nil
	}
	r, err := ParseReferral(resp.body)
	if err != nil {
		return PatchResult{}, fmt.Errorf("partner center PatchReferral %s: %w", id, err)
	}
	return PatchResult{Referral: r, Full: true, Status: resp.status}, nil
}

// appends reports whether a JSON Patch adds to the end of an array, the
// one operation Partner Center allows whose repeat changes the result. A
// patch that does not parse counts as appending: it is not retried.
func appends(ops []byte) bool {
	var list []struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal(ops, &list); err != nil {
		return true
	}
	for _, op := range list {
		if strings.HasSuffix(op.Path, "/-") {
			return true
		}
	}
	return false
}

// FindByExternalReference lists the referrals whose externalReferenceId is
// exactly id, oldest first. Microsoft's referrals in the partner's
// engagements (organizationId "msft") are left out: they are not the
// partner's, whatever they carry.
func (c *Client) FindByExternalReference(ctx context.Context, id string) ([]Referral, error) {
	if id == "" {
		return nil, errors.New("partner center FindByExternalReference: empty id")
	}
	var found []Referral
	err := c.ListReferrals(ctx, ListQuery{Filter: "externalReferenceId eq " + ODataString(id)}, func(page []Referral) (bool, error) {
		for _, r := range page {
			// The filter already says so; checking again costs nothing and
			// guards against a server that compares loosely.
			if r.ExternalReferenceID == id && !strings.EqualFold(r.OrganizationID, "msft") {
				found = append(found, r)
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].CreatedAt.Before(found[j].CreatedAt) })
	return found, nil
}

// ODataString quotes s as an OData string literal: single quotes around
// it, and every single quote inside doubled.
func ODataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
