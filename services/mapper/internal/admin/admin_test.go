package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/cosell/cosell/services/mapper/mapping"
)

func TestValidateMappingByAPI(t *testing.T) {
	r := chi.NewRouter()
	New(nil, nil, slog.New(slog.NewJSONHandler(io.Discard, nil))).Routes(r)
	describe, err := os.ReadFile("../../mapping/testdata/opportunity-describe.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(contentType, body string) (int, validateResponse) {
		req := httptest.NewRequest(http.MethodPost, "/admin/mapping/validate", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		var out validateResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer %q: %v", rec.Body.String(), err)
		}
		return rec.Code, out
	}
	if code, out := post("application/yaml", string(mapping.DefaultYAML())); code != http.StatusOK || !out.Valid || out.Version != 2 {
		t.Errorf("default: %d %+v", code, out)
	}
	body, _ := json.Marshal(map[string]any{"file": "mine.yaml", "mapping": strings.Replace(string(mapping.DefaultYAML()), "Closed Won: won", "Won: won", 1),
		"describe": json.RawMessage(describe)})
	code, out := post("application/json", string(body))
	if code != http.StatusUnprocessableEntity || len(out.Problems) != 1 || out.Problems[0].Field != "lifecycle.stages.Won" || out.Problems[0].File != "mine.yaml" || out.Problems[0].Line == 0 {
		t.Errorf("bad stage: %d %+v", code, out)
	}
	if code, out := post("application/yaml", "version: 2\n"); code != http.StatusUnprocessableEntity || len(out.Problems) == 0 {
		t.Errorf("empty mapping: %d %+v", code, out)
	}
}
