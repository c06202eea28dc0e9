package sfclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// WriteReadBack is the answer of an sObject Collections write followed, in
// the same Composite call, by a query that reads the written records back.
type WriteReadBack struct {
	// Results are the write's, in request order.
	Results []SaveResult
	// Records are the rows of the query's first page, read right after
	// the write; nil when ReadErr is set.
	Records []json.RawMessage
	// ReadErr says why the read-back failed. The write's results stand.
	ReadErr error
}

// Composite subrequest reference ids of a write with read-back.
const (
	refWrite    = "write"
	refReadBack = "readBack"
)

type compositeSub struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	ReferenceID string `json:"referenceId"`
	Body        any    `json:"body,omitempty"`
}

type compositeSubResult struct {
	Body           json.RawMessage `json:"body"`
	HTTPStatusCode int             `json:"httpStatusCode"`
	ReferenceID    string          `json:"referenceId"`
}

// UpsertCollectionReadBack is UpsertCollection followed by the query soql
// in one Composite request, which counts as one API call: the query sees
// the records as the upsert (and any automation it fired) left them, with
// their new SystemModstamp. The Composite request is not all-or-none, so a
// failed read-back leaves the write's results standing (WriteReadBack.
// ReadErr). Values in soql must have been escaped with QuoteSOQL.
func (c *Client) UpsertCollectionReadBack(ctx context.Context, sobject, extField string, records []Record, soql string) (WriteReadBack, error) {
	if !ValidAPIName(sobject) || !ValidAPIName(extField) {
		return WriteReadBack{}, fmt.Errorf("salesforce upsert collection: invalid sObject %q or field %q", sobject, extField)
	}
	return c.writeReadBack(ctx, "composite.upsert_read_back", http.MethodPatch,
		c.dataPath("/composite/sobjects/"+sobject+"/"+extField), sobject, records, soql)
}

// UpdateCollectionReadBack is UpdateCollection followed by the query soql
// in one Composite request, like UpsertCollectionReadBack.
func (c *Client) UpdateCollectionReadBack(ctx context.Context, sobject string, records []Record, soql string) (WriteReadBack, error) {
	if !ValidAPIName(sobject) {
		return WriteReadBack{}, fmt.Errorf("salesforce update collection: invalid sObject %q", sobject)
	}
	for i, r := range records {
		if id, _ := r["Id"].(string); id == "" {
			return WriteReadBack{}, fmt.Errorf("salesforce update collection: record %d has no Id", i)
		}
	}
	return c.writeReadBack(ctx, "composite.update_read_back", http.MethodPatch,
		c.dataPath("/composite/sobjects"), sobject, records, soql)
}

// writeReadBack sends the write and the query as two subrequests of one
// Composite call. A write subrequest that failed as a whole is returned
// as an *APIError with the subrequest's status, and retried like a failed
// call when it is temporary.
func (c *Client) writeReadBack(ctx context.Context, op, method, path, sobject string, records []Record, soql string) (WriteReadBack, error) {
	if len(records) == 0 {
		return WriteReadBack{}, nil
	}
	if len(records) > MaxCollection {
		return WriteReadBack{}, fmt.Errorf("salesforce %s: %d records, at most %d per call", op, len(records), MaxCollection)
	}
	write := collectionBody{Records: make([]Record, len(records))}
	for i, r := range records {
		write.Records[i] = withType(sobject, r)
	}
	data, err := json.Marshal(struct {
		AllOrNone        bool           `json:"allOrNone"`
		CompositeRequest []compositeSub `json:"compositeRequest"`
	}{CompositeRequest: []compositeSub{
		{Method: method, URL: path, ReferenceID: refWrite, Body: write},
		{Method: http.MethodGet, URL: c.dataPath("/query") + "?q=" + url.QueryEscape(soql), ReferenceID: refReadBack},
	}})
	if err != nil {
		return WriteReadBack{}, fmt.Errorf("salesforce %s: encode records: %w", op, err)
	}
	var out WriteReadBack
	check := func(body []byte) error {
		out = WriteReadBack{}
		var resp struct {
			CompositeResponse []compositeSubResult `json:"compositeResponse"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return fmt.Errorf("salesforce %s: decode response: %w", op, err)
		}
		var w, q *compositeSubResult
		for i := range resp.CompositeResponse {
			switch resp.CompositeResponse[i].ReferenceID {
			case refWrite:
				w = &resp.CompositeResponse[i]
			case refReadBack:
				q = &resp.CompositeResponse[i]
			}
		}
		if w == nil {
			return fmt.Errorf("salesforce %s: no answer for the write", op)
		}
		if w.HTTPStatusCode/100 != 2 {
			return decodeAPIError(op, w.HTTPStatusCode, w.Body)
		}
		if err := json.Unmarshal(w.Body, &out.Results); err != nil {
			return fmt.Errorf("salesforce %s: decode write results: %w", op, err)
		}
		if len(out.Results) != len(records) {
			return fmt.Errorf("salesforce %s: %d results for %d records", op, len(out.Results), len(records))
		}
		switch {
		case q == nil:
			out.ReadErr = fmt.Errorf("salesforce %s: no answer for the read-back", op)
		case q.HTTPStatusCode/100 != 2:
			out.ReadErr = decodeAPIError(op+".read_back", q.HTTPStatusCode, q.Body)
		default:
			var page QueryResult
			if err := json.Unmarshal(q.Body, &page); err != nil {
				out.ReadErr = fmt.Errorf("salesforce %s: decode read-back: %w", op, err)
			} else {
				out.Records = page.Records
			}
		}
		return nil
	}
	if err := c.do(ctx, request{op: op, method: http.MethodPost, path: c.dataPath("/composite"), body: data, check: check}, nil); err != nil {
		return WriteReadBack{}, err
	}
	return out, nil
}
