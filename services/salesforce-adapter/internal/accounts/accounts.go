// Package accounts finds or creates the Salesforce Account of a referral's
// customer. A customer is matched by name and country/postal code; the
// Account Id found (or created) is cached in Postgres under the normalised
// match key, so a referral for a known customer costs no Salesforce call,
// and a batch of new customers costs one query and at most one create call
// per 200 customers.
package accounts

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
)

// Customer is the customer a referral names.
type Customer struct {
	// Name is the company name; required for matching.
	Name string
	// Country is the ISO 3166-1 alpha-2 code (Account.BillingCountry).
	Country string
	// PostalCode is Account.BillingPostalCode.
	PostalCode string
	// City, State and Street fill the billing address of a new Account.
	City, State, Street string
	// Fields are further Account fields to set when creating it, keyed by
	// API name; they never override the fields above.
	Fields map[string]json.RawMessage
}

// normalized returns the customer with the matched fields cleaned the way
// the match key sees them: runs of white space collapsed, the country and
// postal code upper-cased.
func (c Customer) normalized() Customer {
	c.Name = collapse(c.Name)
	c.Country = strings.ToUpper(collapse(c.Country))
	c.PostalCode = strings.ToUpper(collapse(c.PostalCode))
	return c
}

// collapse trims s and turns every run of white space into one space.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// Key returns the customer's match key: the normalised name, country and
// postal code, lower-cased because Salesforce compares text
// case-insensitively. An empty key means the customer cannot be matched
// (no name).
func Key(c Customer) string {
	n := c.normalized()
	if n.Name == "" {
		return ""
	}
	return strings.ToLower(n.Name) + "|" + strings.ToLower(n.Country) + "|" + strings.ToLower(n.PostalCode)
}

// Cache is the durable map of match keys to Account Ids.
type Cache interface {
	// Get returns the cached Ids of those keys that have one.
	Get(ctx context.Context, keys []string) (map[string]string, error)
	// Fill locks keys against other replicas resolving the same
	// customers, calls fn with the Ids cached by then, and stores the Ids
	// fn returns, all before releasing the locks.
	Fill(ctx context.Context, keys []string, fn func(cached map[string]string) (found map[string]Found, err error)) error
	// Forget drops a key whose Account turned out to be gone.
	Forget(ctx context.Context, key string) error
}

// Found is an Account Id resolved for a key, and whether the adapter
// created the Account.
type Found struct {
	ID      string
	Created bool
}

// Salesforce is what the resolver needs of the Salesforce client.
type Salesforce interface {
	Query(ctx context.Context, soql string) (*sfclient.QueryResult, error)
	CreateCollection(ctx context.Context, sobject string, records []sfclient.Record) ([]sfclient.SaveResult, error)
}

// Resolution is the outcome for one customer.
type Resolution struct {
	// ID is the Account Id; empty when Rejected is set.
	ID string
	// Cached is true when the Id came from the cache without a call.
	Cached bool
	// Rejected holds Salesforce's errors when the Account could not be
	// created (a validation rule, a field too long).
	Rejected []sfclient.ErrorItem
}

// Resolver finds or creates Accounts.
type Resolver struct {
	cache Cache
	sf    Salesforce
}

// NewResolver returns a resolver using cache and sf.
func NewResolver(cache Cache, sf Salesforce) *Resolver {
	return &Resolver{cache: cache, sf: sf}
}

// queryChunk is how many customers one SOQL query looks for; it keeps the
// query string (sent in the URL) a few kilobytes long.
const queryChunk = 25

// Resolve returns the Account of every customer, keyed by Key. An error
// means nothing could be decided (Postgres or Salesforce unavailable, API
// budget exhausted); a customer Salesforce refused to create is reported in
// its Resolution instead.
func (r *Resolver) Resolve(ctx context.Context, customers []Customer) (map[string]Resolution, error) {
	byKey := map[string]Customer{}
	for _, c := range customers {
		if k := Key(c); k != "" {
			if _, dup := byKey[k]; !dup {
				byKey[k] = c.normalized()
			}
		}
	}
	if len(byKey) == 0 {
		return map[string]Resolution{}, nil
	}
	keys := sortedKeys(byKey)
	cached, err := r.cache.Get(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("resolve accounts: %w", err)
	}
	out := make(map[string]Resolution, len(keys))
	var missing []string
	for _, k := range keys {
		if id, ok := cached[k]; ok {
			out[k] = Resolution{ID: id, Cached: true}
		} else {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	err = r.cache.Fill(ctx, missing, func(cachedNow map[string]string) (map[string]Found, error) {
		var todo []string
		for _, k := range missing {
			if id, ok := cachedNow[k]; ok {
				// Another replica resolved it while we waited for the lock.
				out[k] = Resolution{ID: id, Cached: true}
			} else {
				todo = append(todo, k)
			}
		}
		return r.lookupOrCreate(ctx, todo, byKey, out)
	})
	if err != nil {
		return nil, fmt.Errorf("resolve accounts: %w", err)
	}
	return out, nil
}

// Forget drops the cached Account of a customer, after Salesforce said it
// no longer exists.
func (r *Resolver) Forget(ctx context.Context, c Customer) error {
	k := Key(c)
	if k == "" {
		return nil
	}
	if err := r.cache.Forget(ctx, k); err != nil {
		return fmt.Errorf("forget account: %w", err)
	}
	return nil
}

// lookupOrCreate queries Salesforce for the customers of keys, creates the
// ones it does not find, records every outcome in out and returns the Ids
// to cache.
func (r *Resolver) lookupOrCreate(ctx context.Context, keys []string, byKey map[string]Customer, out map[string]Resolution) (map[string]Found, error) {
	found := map[string]Found{}
	for start := 0; start < len(keys); start += queryChunk {
		chunk := keys[start:min(start+queryChunk, len(keys))]
		if err := r.query(ctx, chunk, byKey, found); err != nil {
			return nil, err
		}
	}
	var create []string
	for _, k := range keys {
		if _, ok := found[k]; !ok {
			create = append(create, k)
		}
	}
	for start := 0; start < len(create); start += sfclient.MaxCollection {
		chunk := create[start:min(start+sfclient.MaxCollection, len(create))]
		recs := make([]sfclient.Record, len(chunk))
		for i, k := range chunk {
			recs[i] = accountRecord(byKey[k])
		}
		res, err := r.sf.CreateCollection(ctx, "Account", recs)
		if err != nil {
			return nil, fmt.Errorf("create accounts: %w", err)
		}
		for i, k := range chunk {
			if res[i].Success && res[i].ID != "" {
				found[k] = Found{ID: res[i].ID, Created: true}
			} else {
				out[k] = Resolution{Rejected: res[i].Errors}
			}
		}
	}
	for k, f := range found {
		out[k] = Resolution{ID: f.ID}
	}
	return found, nil
}

// accountRow is the part of an Account the match needs.
type accountRow struct {
	ID                string `json:"Id"`
	Name              string `json:"Name"`
	BillingCountry    string `json:"BillingCountry"`
	BillingPostalCode string `json:"BillingPostalCode"`
}

// query looks up the customers of keys in one SOQL query; the oldest
// matching Account wins, so every replica and every run picks the same one.
func (r *Resolver) query(ctx context.Context, keys []string, byKey map[string]Customer, found map[string]Found) error {
	var conds []string
	for _, k := range keys {
		conds = append(conds, "("+matchCondition(byKey[k])+")")
	}
	soql := "SELECT Id, Name, BillingCountry, BillingPostalCode FROM Account WHERE " +
		strings.Join(conds, " OR ") + " ORDER BY CreatedDate ASC, Id ASC LIMIT 2000"
	res, err := r.sf.Query(ctx, soql)
	if err != nil {
		return fmt.Errorf("query accounts: %w", err)
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	for _, raw := range res.Records {
		var row accountRow
		if err := json.Unmarshal(raw, &row); err != nil {
			return fmt.Errorf("query accounts: decode record: %w", err)
		}
		// A row matches every requested key whose conditions it satisfies;
		// keys without a postal code (or country) match any.
		for _, k := range keys {
			if _, done := found[k]; done || !want[k] {
				continue
			}
			if rowMatches(row, byKey[k]) {
				found[k] = Found{ID: row.ID}
			}
		}
	}
	return nil
}

// matchCondition is the SOQL condition for one customer. Values are
// escaped string literals; an empty country or postal code is not
// constrained.
func matchCondition(c Customer) string {
	parts := []string{"Name = " + sfclient.QuoteSOQL(c.Name)}
	if c.Country != "" {
		parts = append(parts, "BillingCountry = "+sfclient.QuoteSOQL(c.Country))
	}
	if c.PostalCode != "" {
		parts = append(parts, "BillingPostalCode = "+sfclient.QuoteSOQL(c.PostalCode))
	}
	return strings.Join(parts, " AND ")
}

// rowMatches mirrors matchCondition on a returned row, comparing the way
// SOQL does (case-insensitively).
func rowMatches(row accountRow, c Customer) bool {
	if !strings.EqualFold(row.Name, c.Name) {
		return false
	}
	if c.Country != "" && !strings.EqualFold(row.BillingCountry, c.Country) {
		return false
	}
	if c.PostalCode != "" && !strings.EqualFold(row.BillingPostalCode, c.PostalCode) {
		return false
	}
	return true
}

// accountRecord is the Account to create for a customer.
func accountRecord(c Customer) sfclient.Record {
	rec := sfclient.Record{}
	for k, v := range c.Fields {
		if sfclient.ValidAPIName(k) && !strings.EqualFold(k, "Id") {
			rec[k] = v
		}
	}
	rec["Name"] = c.Name
	set := func(field, v string) {
		if v = strings.TrimSpace(v); v != "" {
			rec[field] = v
		}
	}
	set("BillingCountry", c.Country)
	set("BillingPostalCode", c.PostalCode)
	set("BillingCity", c.City)
	set("BillingState", c.State)
	set("BillingStreet", c.Street)
	return rec
}

func sortedKeys(m map[string]Customer) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
