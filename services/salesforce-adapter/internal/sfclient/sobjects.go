package sfclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// MaxCollection is the most records one sObject Collections call takes.
const MaxCollection = 200

// Record is one sObject's fields keyed by API name. Values are anything
// encoding/json can write, including json.RawMessage for values passed
// through as they came.
type Record map[string]any

// SaveResult is the outcome of one record of a collections call, in
// request order.
type SaveResult struct {
	// ID is the record's Id; empty when nothing was written.
	ID string `json:"id"`
	// Success reports whether the record was written.
	Success bool `json:"success"`
	// Created is true when an upsert inserted the record.
	Created bool `json:"created"`
	// Errors explains a failure.
	Errors []ErrorItem `json:"errors"`
}

// HasCode reports whether any of the item's errors carries code.
func (r SaveResult) HasCode(code string) bool {
	for _, e := range r.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// apiName matches sObject and field API names; they go into URL paths,
// so anything else is refused rather than escaped.
var apiName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// ValidAPIName reports whether s is a well-formed sObject or field API
// name.
func ValidAPIName(s string) bool { return apiName.MatchString(s) }

// collectionBody is the request of a collections call.
type collectionBody struct {
	AllOrNone bool     `json:"allOrNone"`
	Records   []Record `json:"records"`
}

// withType returns a copy of rec carrying attributes.type.
func withType(sobject string, rec Record) Record {
	out := make(Record, len(rec)+1)
	for k, v := range rec {
		out[k] = v
	}
	out["attributes"] = map[string]string{"type": sobject}
	return out
}

// UpsertCollection upserts up to MaxCollection records of sobject by the
// External ID field extField (each record must carry it) in one call,
// with allOrNone=false so that one bad record does not fail the others.
// The results are in request order; a record-level failure is reported in
// its SaveResult, not as an error.
func (c *Client) UpsertCollection(ctx context.Context, sobject, extField string, records []Record) ([]SaveResult, error) {
	if !ValidAPIName(sobject) || !ValidAPIName(extField) {
		return nil, fmt.Errorf("salesforce upsert collection: invalid sObject %q or field %q", sobject, extField)
	}
	return c.collection(ctx, "composite.sobjects.upsert", http.MethodPatch,
		c.dataPath("/composite/sobjects/"+sobject+"/"+extField), sobject, records)
}

// CreateCollection inserts up to MaxCollection records of sobject in one
// call, with allOrNone=false.
func (c *Client) CreateCollection(ctx context.Context, sobject string, records []Record) ([]SaveResult, error) {
	if !ValidAPIName(sobject) {
		return nil, fmt.Errorf("salesforce create collection: invalid sObject %q", sobject)
	}
	return c.collection(ctx, "composite.sobjects.create", http.MethodPost,
		c.dataPath("/composite/sobjects"), sobject, records)
}

// UpdateCollection updates up to MaxCollection existing records of sobject
// by Id in one call (PATCH /composite/sobjects), with allOrNone=false so
// that one bad record does not fail the others. Every record must carry
// its Id. The results are in request order; a record-level failure is
// reported in its SaveResult, not as an error.
func (c *Client) UpdateCollection(ctx context.Context, sobject string, records []Record) ([]SaveResult, error) {
	if !ValidAPIName(sobject) {
		return nil, fmt.Errorf("salesforce update collection: invalid sObject %q", sobject)
	}
	for i, r := range records {
		if id, _ := r["Id"].(string); id == "" {
			return nil, fmt.Errorf("salesforce update collection: record %d has no Id", i)
		}
	}
	return c.collection(ctx, "composite.sobjects.update", http.MethodPatch,
		c.dataPath("/composite/sobjects"), sobject, records)
}

// collection sends one collections call and checks the answer lines up
// with the request.
func (c *Client) collection(ctx context.Context, op, method, path, sobject string, records []Record) ([]SaveResult, error) {
	if len(records) == 0 {
		return nil, nil
	}
	if len(records) > MaxCollection {
		return nil, fmt.Errorf("salesforce %s: %d records, at most %d per call", op, len(records), MaxCollection)
	}
	body := collectionBody{Records: make([]Record, len(records))}
	for i, r := range records {
		body.Records[i] = withType(sobject, r)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("salesforce %s: encode records: %w", op, err)
	}
	var out []SaveResult
	if err := c.do(ctx, request{op: op, method: method, path: path, body: data}, &out); err != nil {
		return nil, err
	}
	if len(out) != len(records) {
		return nil, fmt.Errorf("salesforce %s: %d results for %d records", op, len(out), len(records))
	}
	return out, nil
}

// QueryResult is one page of a SOQL query.
type QueryResult struct {
	// TotalSize is the number of rows the query matched.
	TotalSize int `json:"totalSize"`
	// Done is false when NextRecordsURL leads to more rows.
	Done bool `json:"done"`
	// NextRecordsURL is the next page, relative to the instance URL.
	NextRecordsURL string `json:"nextRecordsUrl"`
	// Records are the rows as Salesforce returned them.
	Records []json.RawMessage `json:"records"`
}

// Query runs a SOQL query and returns its first page. Values in soql must
// have been escaped with QuoteSOQL.
func (c *Client) Query(ctx context.Context, soql string) (*QueryResult, error) {
	var out QueryResult
	path := c.dataPath("/query") + "?q=" + url.QueryEscape(soql)
	if err := c.do(ctx, request{op: "query", method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueryAll runs a SOQL query through queryAll, which also returns records
// in the recycle bin (IsDeleted = true), and returns its first page.
// Values in soql must have been escaped with QuoteSOQL.
func (c *Client) QueryAll(ctx context.Context, soql string) (*QueryResult, error) {
	var out QueryResult
	path := c.dataPath("/queryAll") + "?q=" + url.QueryEscape(soql)
	if err := c.do(ctx, request{op: "queryAll", method: http.MethodGet, path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Describe returns the describe of sobject (its fields, picklist values,
// child relationships) as Salesforce sent it.
func (c *Client) Describe(ctx context.Context, sobject string) (json.RawMessage, error) {
	if !ValidAPIName(sobject) {
		return nil, fmt.Errorf("salesforce describe: invalid sObject %q", sobject)
	}
	var out json.RawMessage
	if err := c.do(ctx, request{op: "describe", method: http.MethodGet, path: c.dataPath("/sobjects/" + sobject + "/describe")}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// QueryMore returns the page at a NextRecordsURL (of a query or a
// queryAll).
func (c *Client) QueryMore(ctx context.Context, nextRecordsURL string) (*QueryResult, error) {
	if !strings.HasPrefix(nextRecordsURL, "/services/data/") {
		return nil, fmt.Errorf("salesforce query more: unexpected next records URL %q", nextRecordsURL)
	}
	var out QueryResult
	if err := c.do(ctx, request{op: "query.more", method: http.MethodGet, path: nextRecordsURL}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// soqlEscaper escapes what SOQL string literals require: backslash and
// quotes, and the control characters that have escape sequences.
var soqlEscaper = strings.NewReplacer(
	`\`, `\\`,
	`'`, `\'`,
	`"`, `\"`,
	"\n", `\n`,
	"\r", `\r`,
	"\t", `\t`,
	"\b", `\b`,
	"\f", `\f`,
)

// QuoteSOQL returns s as a quoted SOQL string literal, escaped so that no
// value can end the literal early.
func QuoteSOQL(s string) string {
	return "'" + soqlEscaper.Replace(s) + "'"
}
