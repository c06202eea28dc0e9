package salesforce

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// gzipped compresses s.
func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// gunzip decompresses b.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompressedRequestBodies is the regression test for go-salesforce's
// WithCompressionHeaders: Salesforce accepts gzip request bodies (reference
// §2.1), so the emulator must not answer them JSON_PARSER_ERROR.
func TestCompressedRequestBodies(t *testing.T) {
	h := newHarness(t)
	body, _ := json.Marshal(newOpp(map[string]any{"Amount": 42}))

	var res struct {
		ID string `json:"id"`
	}
	h.expect(http.MethodPost, v+"/sobjects/Opportunity", gzipped(t, string(body)), http.StatusCreated, &res, "Content-Encoding", "gzip")
	if rec := h.get("Opportunity", res.ID); rec["Amount"] != 42.0 {
		t.Fatalf("gzip create stored %v", rec)
	}
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+res.ID, gzipped(t, `{"NextStep":"gz"}`), http.StatusNoContent, nil, "Content-Encoding", "gzip")
	if rec := h.get("Opportunity", res.ID); rec["NextStep"] != "gz" {
		t.Fatalf("gzip update stored %v", rec)
	}

	// HTTP "deflate" is a zlib stream.
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write([]byte(`{"NextStep":"deflated"}`))
	_ = zw.Close()
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+res.ID, z.String(), http.StatusNoContent, nil, "Content-Encoding", "deflate")
	if rec := h.get("Opportunity", res.ID); rec["NextStep"] != "deflated" {
		t.Fatalf("deflate update stored %v", rec)
	}

	// Clients send the header on bodiless requests too.
	h.expect(http.MethodGet, v+"/sobjects/Opportunity/"+res.ID, nil, http.StatusOK, nil, "Content-Encoding", "gzip")
	h.expect(http.MethodDelete, v+"/sobjects/Opportunity/"+res.ID, nil, http.StatusNoContent, nil, "Content-Encoding", "gzip")

	// A body that is not in the announced encoding, or an encoding
	// Salesforce does not document, is refused and writes nothing.
	h.expectError(http.MethodPost, v+"/sobjects/Opportunity", string(body), http.StatusBadRequest, "JSON_PARSER_ERROR", "", "Content-Encoding", "gzip")
	h.expectError(http.MethodPost, v+"/sobjects/Opportunity", string(body), http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE",
		"Content-Encoding header specified in HTTP request is not supported: br", "Content-Encoding", "br")
	var q queryResult
	h.expect(http.MethodGet, v+"/query?q=SELECT+Id+FROM+Opportunity", nil, http.StatusOK, &q)
	if q.TotalSize != 0 {
		t.Fatalf("refused bodies wrote records: %+v", q)
	}
}

// TestCompressedResponses checks that large REST responses are gzipped for
// clients that accept gzip, small ones and other clients' are sent plain.
func TestCompressedResponses(t *testing.T) {
	h := newHarness(t)
	path := v + "/sobjects/Opportunity/describe"

	// Setting Accept-Encoding by hand turns off the transport's transparent
	// decompression, so the raw response is visible.
	resp, b := h.do(http.MethodGet, path, nil, "Accept-Encoding", "gzip, deflate")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("describe with gzip: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.HasPrefix(resp.Header.Get(limitInfoHeader), "api-usage=") || resp.Header.Get("Content-Type") != "application/json;charset=UTF-8" {
		t.Fatalf("compressed response headers %v", resp.Header)
	}
	var d struct {
		Name string `json:"name"`
	}
	mustUnmarshal(t, gunzip(t, b), &d)
	if d.Name != "Opportunity" {
		t.Fatalf("decompressed describe name %q", d.Name)
	}

	// Errors are compressed the same way when large; small bodies are plain.
	for _, accept := range []string{"gzip", "", "identity", "gzip;q=0", "br"} {
		resp, b = h.do(http.MethodGet, v+"/sobjects/Opportunity/006000000000000AAA", nil, "Accept-Encoding", accept)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Encoding") != "" || !json.Valid(b) {
			t.Fatalf("small error, Accept-Encoding %q: %d %v %s", accept, resp.StatusCode, resp.Header, b)
		}
	}
	for _, accept := range []string{"identity", "gzip;q=0", "br"} {
		resp, b = h.do(http.MethodGet, path, nil, "Accept-Encoding", accept)
		if resp.Header.Get("Content-Encoding") != "" || !json.Valid(b) {
			t.Fatalf("describe, Accept-Encoding %q: %v", accept, resp.Header)
		}
	}
	resp, _ = h.do(http.MethodGet, path, nil, "Accept-Encoding", "*;q=0.5")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("describe, Accept-Encoding *: %v", resp.Header)
	}

	// 204 carries no body and no encoding.
	id := h.create("Opportunity", newOpp(nil))
	resp, b = h.do(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"NextStep": "x"}, "Accept-Encoding", "gzip")
	if resp.StatusCode != http.StatusNoContent || len(b) != 0 || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("204 with gzip: %d %v %q", resp.StatusCode, resp.Header, b)
	}

	// Composite subresponses are embedded uncompressed, the envelope is
	// compressed once.
	comp := map[string]any{"compositeRequest": []map[string]any{
		{"method": "GET", "url": v + "/sobjects/Opportunity/describe", "referenceId": "d", "httpHeaders": map[string]string{"Accept-Encoding": "gzip"}},
	}}
	resp, b = h.do(http.MethodPost, v+"/composite", comp, "Accept-Encoding", "gzip")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("composite with gzip: %d %v", resp.StatusCode, resp.Header)
	}
	var cr struct {
		CompositeResponse []struct {
			Body           json.RawMessage   `json:"body"`
			HTTPHeaders    map[string]string `json:"httpHeaders"`
			HTTPStatusCode int               `json:"httpStatusCode"`
		} `json:"compositeResponse"`
	}
	mustUnmarshal(t, gunzip(t, b), &cr)
	if len(cr.CompositeResponse) != 1 || cr.CompositeResponse[0].HTTPStatusCode != 200 || cr.CompositeResponse[0].HTTPHeaders["Content-Encoding"] != "" {
		t.Fatalf("composite subresponse %+v", cr)
	}
	mustUnmarshal(t, cr.CompositeResponse[0].Body, &d)
	if d.Name != "Opportunity" {
		t.Fatalf("composite describe name %q", d.Name)
	}
}
