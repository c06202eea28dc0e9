package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Grant obtains a fresh token for resource.
type Grant func(ctx context.Context, resource string) (Token, error)

// RefreshStore keeps the SAM refresh token. Rotate must hold the stored
// token exclusively (a row lock) while redeem runs, and store the token
// redeem returns before releasing it, so that two replicas never redeem the
// same refresh token. It returns ErrNoRefreshToken when nothing is stored,
// ErrRefreshTokenUnreadable when the stored token cannot be opened, and
// redeem's error when redeem fails; any other error is the store's own.
type RefreshStore interface {
	Rotate(ctx context.Context, redeem func(ctx context.Context, current string) (next string, err error)) error
	Save(ctx context.Context, refreshToken string) error
}

// ErrNoRefreshToken reports that no operator has consented yet: run
// `partnercenter-adapter login`.
var ErrNoRefreshToken = errors.New("no stored refresh token: run `partnercenter-adapter login` once to consent (PC_AUTH_MODE=sam)")

// ErrRefreshTokenUnreadable reports that the stored refresh token does not
// open with the configured key: PC_TOKEN_KEY changed since the consent, or
// the row was altered. Consenting again (`login`) replaces it.
var ErrRefreshTokenUnreadable = errors.New("open refresh token: authentication failed (wrong PC_TOKEN_KEY, or the row was altered)")

// PasswordGrant returns a Grant using the resource-owner password flow.
func PasswordGrant(e *Endpoint, username, password string) Grant {
	return func(ctx context.Context, resource string) (Token, error) {
		return e.Password(ctx, resource, username, password)
	}
}

// SAMGrant returns a Grant that redeems the stored refresh token and
// stores the rotated one in the same locked step.
func SAMGrant(e *Endpoint, store RefreshStore) Grant {
	return func(ctx context.Context, resource string) (Token, error) {
		var tok Token
		var redeemErr error
		err := store.Rotate(ctx, func(ctx context.Context, current string) (string, error) {
			t, err := e.Refresh(ctx, resource, current)
			if err != nil {
				redeemErr = err
				return "", err
			}
			tok = t
			if t.RefreshToken == "" {
				// No rotation offered: keep the current token.
				return current, nil
			}
			return t.RefreshToken, nil
		})
		if err != nil {
			switch {
			case redeemErr != nil, errors.Is(err, ErrNoRefreshToken), errors.Is(err, ErrRefreshTokenUnreadable):
				// The token endpoint's answer, or what the store found.
			default:
				// Reading, locking or writing the row failed.
				err = &failure{ReasonStore, err}
			}
			return Token{}, fmt.Errorf("redeem refresh token: %w", err)
		}
		return tok, nil
	}
}

// Source caches access tokens per resource and gets new ones through its
// Grant shortly before they expire. It is safe for concurrent use; callers
// that find the cache empty at the same time wait for one grant.
type Source struct {
	grant  Grant
	margin time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

// entry is one resource's cached token; its own mutex serialises grants
// for that resource without blocking the other.
type entry struct {
	mu       sync.Mutex
	tok      Token
	obtained time.Time
}

// DefaultMargin is how long before expiry a cached token is replaced.
const DefaultMargin = 5 * time.Minute

// NewSource returns a Source using grant.
func NewSource(grant Grant) *Source {
	return &Source{grant: grant, margin: DefaultMargin, now: time.Now, entries: map[string]*entry{}}
}

// Token returns a valid access token for resource.
func (s *Source) Token(ctx context.Context, resource string) (string, error) {
	e := s.entry(resource)
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.fresh(e) {
		return e.tok.AccessToken, nil
	}
	obtained := s.now()
	tok, err := s.grant(ctx, resource)
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", resource, err)
	}
	e.tok, e.obtained = tok, obtained
	return tok.AccessToken, nil
}

// Invalidate drops the cached token for resource if it is still token, so
// the next Token call gets a new one (after a 401).
func (s *Source) Invalidate(resource, token string) {
	e := s.entry(resource)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tok.AccessToken == token {
		e.tok = Token{}
	}
}

func (s *Source) entry(resource string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[resource]
	if !ok {
		e = &entry{}
		s.entries[resource] = e
	}
	return e
}

// fresh reports whether the cached token is usable for a while yet: until
// the margin before expiry, or the last fifth of its life for tokens that
// live shorter than five margins.
func (s *Source) fresh(e *entry) bool {
	if e.tok.AccessToken == "" {
		return false
	}
	margin := min(s.margin, e.tok.ExpiresAt.Sub(e.obtained)/5)
	return s.now().Before(e.tok.ExpiresAt.Add(-margin))
}

// Login runs the device-code consent: it prints the user code and the
// verification URL to out, polls until an operator approves, and stores the
// refresh token through store. The access token obtained is discarded.
func Login(ctx context.Context, e *Endpoint, store RefreshStore, resource string, out io.Writer) error {
	dc, err := e.StartDeviceCode(ctx, resource)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "To consent, open %s and enter the code %s\n(the code expires at %s)\n",
		dc.VerificationURL, dc.UserCode, dc.ExpiresAt.UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("login: print instructions: %w", err)
	}
	tok, err := e.PollDeviceCode(ctx, resource, dc)
	if err != nil {
		return err
	}
	if tok.RefreshToken == "" {
		return errors.New("login: the token endpoint returned no refresh token")
	}
	if err := store.Save(ctx, tok.RefreshToken); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return nil
}
