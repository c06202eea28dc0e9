package auth_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/tokenstore"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

const service = "partnercenter-adapter"

func endpoint(emu *pcemutest.Emulator) *auth.Endpoint {
	return &auth.Endpoint{
		TokenURL:      emu.URL + "/" + pcemutest.TenantID + "/oauth2/token",
		DeviceCodeURL: emu.URL + "/" + pcemutest.TenantID + "/oauth2/devicecode",
		ClientID:      pcemutest.ClientID,
		ClientSecret:  pcemutest.ClientSecret,
	}
}

func key(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func TestPasswordGrantCachesPerResource(t *testing.T) {
	emu := pcemutest.Start(t)
	src := auth.NewSource(auth.PasswordGrant(endpoint(emu), pcemutest.Username, pcemutest.Password))
	ctx := context.Background()

	a1, err := src.Token(ctx, pcclient.ResourceReferrals)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := src.Token(ctx, pcclient.ResourceReferrals)
	if err != nil {
		t.Fatal(err)
	}
	w, err := src.Token(ctx, pcclient.ResourceWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	if a1 != a2 {
		t.Error("a second Token call for the same resource did not use the cache")
	}
	if w == a1 {
		t.Error("the webhook audience got the referrals token")
	}
	if n := emu.Counters()["token"]; n != 2 {
		t.Errorf("%d token requests, want 2 (one per resource)", n)
	}
	src.Invalidate(pcclient.ResourceReferrals, a1)
	a3, err := src.Token(ctx, pcclient.ResourceReferrals)
	if err != nil {
		t.Fatal(err)
	}
	if a3 == a1 || emu.Counters()["token"] != 3 {
		t.Error("Invalidate did not force a new token")
	}

	bad := auth.NewSource(auth.PasswordGrant(endpoint(emu), pcemutest.Username, "wrong"))
	_, err = bad.Token(ctx, pcclient.ResourceReferrals)
	var oe *auth.OAuthError
	if !errors.As(err, &oe) || oe.Code != "invalid_grant" {
		t.Fatalf("wrong password: err = %v, want invalid_grant", err)
	}
}

// login runs the device-code consent, approving it as the operator would.
func login(t *testing.T, emu *pcemutest.Emulator, store auth.RefreshStore) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- auth.Login(context.Background(), endpoint(emu), store, pcclient.ResourceReferrals, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	code := regexp.MustCompile(`enter the code (\S+)`)
	approved := false
	for sc.Scan() {
		if m := code.FindStringSubmatch(sc.Text()); m != nil && !approved {
			emu.ApproveDeviceCode(m[1])
			approved = true
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("login: %v", err)
	}
	if !approved {
		t.Fatal("login printed no user code")
	}
}

func rotations(t *testing.T, pool *pgxpool.Pool) (n int64, sealed []byte) {
	t.Helper()
	err := pool.QueryRow(context.Background(),
		`SELECT rotations, sealed FROM partnercenter_adapter.refresh_tokens WHERE tenant_id = $1 AND client_id = $2`,
		pcemutest.TenantID, pcemutest.ClientID).Scan(&n, &sealed)
	if err != nil {
		t.Fatal(err)
	}
	return n, sealed
}

func TestDeviceCodeLoginThenEncryptedRotatingRefreshToken(t *testing.T) {
	emu := pcemutest.Start(t, "-device-code-interval", "1s")
	pool := storetest.NewDB(t, service, storetest.RepoMigrations(t, service))
	ctx := context.Background()
	store, err := tokenstore.New(pool, key(1), pcemutest.TenantID, pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}

	// Before consent the adapter says what to do.
	_, err = auth.NewSource(auth.SAMGrant(endpoint(emu), store)).Token(ctx, pcclient.ResourceReferrals)
	if !errors.Is(err, auth.ErrNoRefreshToken) {
		t.Fatalf("before login: err = %v, want ErrNoRefreshToken", err)
	}

	login(t, emu, store)
	n0, sealed0 := rotations(t, pool)
	if n0 != 0 || len(sealed0) < 28 {
		t.Fatalf("after login: rotations %d, sealed %d bytes", n0, len(sealed0))
	}
	if regexp.MustCompile(`^[\x20-\x7e]+$`).Match(sealed0) {
		t.Error("the stored refresh token looks like plain text")
	}

	// A replica redeems it for each audience; each redemption rotates it.
	src := auth.NewSource(auth.SAMGrant(endpoint(emu), store))
	if _, err := src.Token(ctx, pcclient.ResourceReferrals); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(ctx, pcclient.ResourceWebhooks); err != nil {
		t.Fatal(err)
	}
	n2, sealed2 := rotations(t, pool)
	if n2 != 2 || string(sealed2) == string(sealed0) {
		t.Fatalf("after two redemptions: rotations %d (want 2), sealed changed %v", n2, string(sealed2) != string(sealed0))
	}

	// Another replica (new cache) works from the rotated token: the
	// emulator refuses a redeemed one, so this proves the new one was kept.
	if _, err := auth.NewSource(auth.SAMGrant(endpoint(emu), store)).Token(ctx, pcclient.ResourceReferrals); err != nil {
		t.Fatalf("second replica: %v", err)
	}

	// The wrong key cannot open it.
	wrong, err := tokenstore.New(pool, key(2), pcemutest.TenantID, pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewSource(auth.SAMGrant(endpoint(emu), wrong)).Token(ctx, pcclient.ResourceReferrals); err == nil {
		t.Fatal("a store with the wrong key redeemed the token")
	}
}

func TestReplicasNeverRedeemTheSameRefreshToken(t *testing.T) {
	emu := pcemutest.Start(t, "-device-code-interval", "1s")
	pool := storetest.NewDB(t, service, storetest.RepoMigrations(t, service))
	store, err := tokenstore.New(pool, key(1), pcemutest.TenantID, pcemutest.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	login(t, emu, store)

	// Eight replicas, each with its own cache, all need a token at once.
	// Without the row lock most would redeem an already-rotated token and
	// get invalid_grant.
	const replicas = 8
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	for range replicas {
		wg.Go(func() {
			_, err := auth.NewSource(auth.SAMGrant(endpoint(emu), store)).Token(context.Background(), pcclient.ResourceReferrals)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n, _ := rotations(t, pool); n != replicas {
		t.Errorf("rotations = %d, want %d", n, replicas)
	}
}
