package httpx_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cosell/cosell/libs/httpx"
)

func TestMaxBytes(t *testing.T) {
	var reached int
	h := httpx.MaxBytes(8)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		if _, err := io.ReadAll(r.Body); err != nil {
			if httpx.IsTooLarge(err) {
				http.Error(w, "too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))

	do := func(body io.Reader, contentLength int64) int {
		req := httptest.NewRequest(http.MethodPost, "/", body)
		req.ContentLength = contentLength
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := do(strings.NewReader("12345678"), 8); code != http.StatusNoContent {
		t.Errorf("body at the limit: %d", code)
	}
	if code := do(strings.NewReader("123456789"), 9); code != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length over the limit: %d", code)
	}
	if reached != 1 {
		t.Errorf("handler reached %d times, want only for the allowed body", reached)
	}
	// Unknown length (chunked): the read itself fails.
	if code := do(io.MultiReader(strings.NewReader("12345"), strings.NewReader("67890")), -1); code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the limit: %d", code)
	}
	if httpx.IsTooLarge(io.ErrUnexpectedEOF) {
		t.Error("IsTooLarge(io.ErrUnexpectedEOF) = true")
	}
}
