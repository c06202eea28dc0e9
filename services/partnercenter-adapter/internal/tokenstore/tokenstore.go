// Package tokenstore keeps the Secure Application Model refresh token in
// Postgres, sealed with AES-256-GCM, and rotates it under a row lock so
// that replicas take turns redeeming it.
package tokenstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
)

// Store is the refresh token of one (tenant, application).
type Store struct {
	pool     *pgxpool.Pool
	aead     cipher.AEAD
	tenantID string
	clientID string
}

// New returns the store for tenantID and clientID, sealing with key (32
// bytes, AES-256).
func New(pool *pgxpool.Pool, key []byte, tenantID, clientID string) (*Store, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("tokenstore: key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("tokenstore: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("tokenstore: %w", err)
	}
	return &Store{pool: pool, aead: aead, tenantID: tenantID, clientID: clientID}, nil
}

// additionalData binds a sealed token to its row, so a ciphertext copied to
// another tenant's row does not open.
func (s *Store) additionalData() []byte {
	return []byte("cosell/partnercenter-adapter/refresh-token\x00" + s.tenantID + "\x00" + s.clientID)
}

// seal encrypts token as nonce || ciphertext || tag.
func (s *Store) seal(token string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(token)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal refresh token: %w", err)
	}
	return s.aead.Seal(nonce, nonce, []byte(token), s.additionalData()), nil
}

// open decrypts what seal produced; it returns
// auth.ErrRefreshTokenUnreadable when the key does not open it.
func (s *Store) open(sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		// Nothing a key could open: the row was altered.
		return "", auth.ErrRefreshTokenUnreadable
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], s.additionalData())
	if err != nil {
		return "", auth.ErrRefreshTokenUnreadable
	}
	return string(plain), nil
}

// Save stores refreshToken, replacing any previous one (after `login`).
func (s *Store) Save(ctx context.Context, refreshToken string) error {
	sealed, err := s.seal(refreshToken)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.refresh_tokens (tenant_id, client_id, sealed)
		VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, client_id) DO UPDATE SET sealed = EXCLUDED.sealed, rotations = 0, created_at = now(), rotated_at = now()`,
		s.tenantID, s.clientID, sealed)
	if err != nil {
		return fmt.Errorf("save refresh token: %w", store.MapError(err))
	}
	return nil
}

// Rotate locks the stored token, hands it to redeem and stores what redeem
// returns before committing. When redeem fails nothing changes. It
// returns auth.ErrNoRefreshToken when nothing is stored.
func (s *Store) Rotate(ctx context.Context, redeem func(ctx context.Context, current string) (next string, err error)) error {
	return store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var sealed []byte
		err := tx.QueryRow(ctx, `SELECT sealed FROM partnercenter_adapter.refresh_tokens
			WHERE tenant_id = $1 AND client_id = $2 FOR UPDATE`, s.tenantID, s.clientID).Scan(&sealed)
		if errors.Is(err, pgx.ErrNoRows) {
			return auth.ErrNoRefreshToken
		}
		if err != nil {
			return fmt.Errorf("lock refresh token: %w", store.MapError(err))
		}
		current, err := s.open(sealed)
		if err != nil {
			return err
		}
		next, err := redeem(ctx, current)
		if err != nil {
			return err
		}
		if next == current {
			return nil
		}
		resealed, err := s.seal(next)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE partnercenter_adapter.refresh_tokens
			SET sealed = $3, rotations = rotations + 1, rotated_at = now()
			WHERE tenant_id = $1 AND client_id = $2`, s.tenantID, s.clientID, resealed); err != nil {
			return fmt.Errorf("store rotated refresh token: %w", store.MapError(err))
		}
		return nil
	}, store.Attempts(1)) // never redeem twice: the first redemption already rotated the token
}
