package accountstore_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accountstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfemutest"
)

// emulatorBin is built once by TestMain; tests only read it.
var emulatorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "accountstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	emulatorBin, err = sfemutest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	fsys, err := migrations.FS("salesforce-adapter")
	if err != nil {
		t.Fatal(err)
	}
	return storetest.NewDB(t, "salesforce-adapter", fsys)
}

func newClient(t *testing.T, emu *sfemutest.Emulator) *sfclient.Client {
	t.Helper()
	c, err := sfclient.New(sfclient.Config{
		Credentials: sfclient.Credentials{
			Mode: sfclient.AuthJWT, LoginURL: emu.URL, Audience: sfemutest.Audience,
			ClientID: sfemutest.ClientID, Username: sfemutest.Username, Key: emu.Key,
		},
		HTTPClient: &http.Client{Timeout: 10 * time.Second},
		Retry:      sfclient.Retry{Attempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestResolveCreatesOnceThenServesFromCache(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	db := newDB(t)
	r := accounts.NewResolver(accountstore.New(db), newClient(t, emu))
	ctx := context.Background()
	contoso := accounts.Customer{Name: "Contoso  Ltd", Country: "us", PostalCode: "98052", City: "Redmond"}
	fabrikam := accounts.Customer{Name: "Fabrikam", Country: "DE"}

	res, err := r.Resolve(ctx, []accounts.Customer{contoso, fabrikam, contoso})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if len(res) != 2 {
		t.Fatalf("%d resolutions, want 2: %v", len(res), res)
	}
	for k, v := range res {
		if v.ID == "" || v.Cached || !strings.HasPrefix(v.ID, "001") {
			t.Fatalf("%s = %+v, want a new account id", k, v)
		}
	}
	accts := emu.Records("Account")
	if len(accts) != 2 {
		t.Fatalf("%d accounts in Salesforce, want 2", len(accts))
	}
	for _, a := range accts {
		if a["Name"] == "Contoso Ltd" && (a["BillingCountry"] != "US" || a["BillingPostalCode"] != "98052" || a["BillingCity"] != "Redmond") {
			t.Fatalf("contoso account = %v", a)
		}
	}
	cnt := emu.Counters()
	if cnt.Calls["query"] != 1 || cnt.Calls["composite.sobjects"] != 1 {
		t.Fatalf("calls = %v, want one query and one create for two new customers", cnt.Calls)
	}

	emu.ResetCounters()
	again, err := r.Resolve(ctx, []accounts.Customer{{Name: "contoso ltd", Country: "US", PostalCode: "98052"}})
	if err != nil {
		t.Fatalf("resolve again: %v", err)
	}
	k := accounts.Key(contoso)
	if got := again[k]; !got.Cached || got.ID != res[k].ID {
		t.Fatalf("second resolution = %+v, want cached %s", got, res[k].ID)
	}
	if calls := emu.Counters().Calls; len(calls) != 0 {
		t.Fatalf("calls = %v, want none for a known customer", calls)
	}
}

func TestResolveFindsExistingAccount(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	r := accounts.NewResolver(accountstore.New(newDB(t)), newClient(t, emu))
	name := `O'Reilly \ Partners`
	other := emu.CreateRecord("Account", map[string]any{"Name": name, "BillingCountry": "GB", "BillingPostalCode": "EC1A 1BB"})
	existing := emu.CreateRecord("Account", map[string]any{"Name": name, "BillingCountry": "IE", "BillingPostalCode": "D02"})

	res, err := r.Resolve(context.Background(), []accounts.Customer{{Name: " o'reilly \\ partners ", Country: "IE", PostalCode: "d02"}})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	for _, v := range res {
		if v.ID != existing["Id"] {
			t.Fatalf("resolved %+v, want existing %v (not %v)", v, existing["Id"], other["Id"])
		}
	}
	if n := len(emu.Records("Account")); n != 2 {
		t.Fatalf("%d accounts, want 2 (nothing created)", n)
	}
	if c := emu.Counters().Calls["composite.sobjects"]; c != 0 {
		t.Fatalf("%d create calls, want 0", c)
	}
}

func TestResolveReportsRejectedCustomer(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	r := accounts.NewResolver(accountstore.New(newDB(t)), newClient(t, emu))
	long := accounts.Customer{Name: strings.Repeat("x", 300), Country: "US"}
	ok := accounts.Customer{Name: "Fine Inc", Country: "US"}
	res, err := r.Resolve(context.Background(), []accounts.Customer{long, ok})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if got := res[accounts.Key(long)]; got.ID != "" || len(got.Rejected) == 0 || got.Rejected[0].Code != "STRING_TOO_LONG" {
		t.Fatalf("long name = %+v, want STRING_TOO_LONG", got)
	}
	if got := res[accounts.Key(ok)]; got.ID == "" {
		t.Fatalf("fine customer = %+v, want an id", got)
	}
}

func TestConcurrentResolversCreateOneAccount(t *testing.T) {
	emu := sfemutest.Start(t, emulatorBin, sfemutest.Options{})
	db := newDB(t)
	c := accounts.Customer{Name: "Race Corp", Country: "FR", PostalCode: "75001"}
	var wg sync.WaitGroup
	ids := make([]string, 4)
	errs := make([]error, 4)
	for i := range 4 {
		// Separate resolvers and clients, as separate replicas would have.
		r := accounts.NewResolver(accountstore.New(db), newClient(t, emu))
		wg.Go(func() {
			res, err := r.Resolve(context.Background(), []accounts.Customer{c})
			ids[i], errs[i] = res[accounts.Key(c)].ID, err
		})
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil || ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("resolver %d: id %q err %v; want all %q", i, ids[i], errs[i], ids[0])
		}
	}
	if n := len(emu.Records("Account")); n != 1 {
		t.Fatalf("%d accounts, want 1", n)
	}
}

func TestForget(t *testing.T) {
	db := newDB(t)
	s := accountstore.New(db)
	ctx := context.Background()
	err := s.Fill(ctx, []string{"a|us|1"}, func(cached map[string]string) (map[string]accounts.Found, error) {
		return map[string]accounts.Found{"a|us|1": {ID: "001000000000001AAA", Created: true}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, []string{"a|us|1", "b||"})
	if err != nil || len(got) != 1 || got["a|us|1"] != "001000000000001AAA" {
		t.Fatalf("get = %v, %v", got, err)
	}
	if err := s.Forget(ctx, "a|us|1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, []string{"a|us|1"}); err != nil || len(got) != 0 {
		t.Fatalf("after forget = %v, %v", got, err)
	}
}
