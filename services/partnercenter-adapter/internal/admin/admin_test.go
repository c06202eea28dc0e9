package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/cosell/cosell/libs/httpx"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/admin"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

func serve(t *testing.T, emu *pcemutest.Emulator) string {
	t.Helper()
	ep := &auth.Endpoint{TokenURL: emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	pc, err := pcclient.New(pcclient.Config{APIBaseURL: emu.URL, WebhookAPIBaseURL: emu.URL,
		Tokens: auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password)), MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httpx.New(httpx.Config{})
	admin.Routes(srv.Router(), pc, nil)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, body
}

func TestGetReferralAsPartnerCenterReturnsIt(t *testing.T) {
	emu := pcemutest.Start(t)
	base := serve(t, emu)
	ref := emu.SeedInbound("Contoso migration", false)

	status, h, body := get(t, base+"/admin/referrals/"+ref.ID)
	if status != http.StatusOK || h.Get("Content-Type") != "application/json" || h.Get("ETag") != ref.ETag {
		t.Fatalf("status %d, headers %v", status, h)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got["id"] != ref.ID || got["name"] != "Contoso migration" || got["eTag"] != ref.ETag {
		t.Errorf("body %s", body)
	}
	// Byte for byte what Partner Center answers.
	pcStatus, _, pcBody := getWithToken(t, emu, emu.URL+"/v1.0/engagements/referrals/"+ref.ID)
	if pcStatus != http.StatusOK || string(pcBody) != string(body) {
		t.Errorf("admin body differs from Partner Center's:\n%s\n%s", body, pcBody)
	}
}

func TestGetReferralErrors(t *testing.T) {
	emu := pcemutest.Start(t)
	base := serve(t, emu)

	status, _, body := get(t, base+"/admin/referrals/9d4e3c1a-0000-4000-8000-000000000404")
	if status != http.StatusNotFound {
		t.Errorf("unknown referral: %d %s", status, body)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "itemNotFound" || e.Error.Message == "" {
		t.Errorf("404 body %s", body)
	}

	if status, _, _ := get(t, base+"/admin/referrals/a%20b"); status != http.StatusBadRequest {
		t.Errorf("bad id: %d", status)
	}

	emu.AddFault(pcemutest.Fault{Endpoint: "referrals.get", Kind: "503"})
	if status, _, body := get(t, base+"/admin/referrals/9d4e3c1a-0000-4000-8000-000000000404"); status != http.StatusBadGateway {
		t.Errorf("Partner Center down: %d %s", status, body)
	}
}

// getWithToken calls the emulator's API directly with a fresh token.
func getWithToken(t *testing.T, emu *pcemutest.Emulator, url string) (int, http.Header, []byte) {
	t.Helper()
	ep := &auth.Endpoint{TokenURL: emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	tok, err := auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password)).Token(t.Context(), pcclient.ResourceReferrals)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, body
}
