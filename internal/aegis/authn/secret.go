package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// secretHashPrefix marks a SHA-256 client-secret hash.
const secretHashPrefix = "sha256:"

// maxSecretBytes bounds a presented client secret; generated ones are 43
// characters.
const maxSecretBytes = 512

// NewClientSecret returns a new service-account key secret (256 random bits,
// base64url) and its hash for ServiceAccountKey.SecretHash. The store calls
// it when it creates a key, returns secret once and keeps only hash.
func NewClientSecret() (secret, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashClientSecret(secret)
}

// HashClientSecret returns the stored form of a client secret:
// "sha256:<lowercase hex>". A fast unsalted hash is enough for a secret of
// 256 random bits (nobody can guess one, at any hash speed), and it keeps a
// client-credentials grant to microseconds.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return secretHashPrefix + hex.EncodeToString(sum[:])
}

// checkSecret reports whether secret matches stored, a HashClientSecret
// output or an argon2id PHC string. err is set only when stored is
// malformed or the argon2 work could not run.
func (s *Service) checkSecret(ctx context.Context, secret, stored string) (bool, error) {
	if len(secret) > maxSecretBytes {
		return false, nil
	}
	if rest, ok := strings.CutPrefix(stored, secretHashPrefix); ok {
		want, err := hex.DecodeString(rest)
		if err != nil || len(want) != sha256.Size {
			return false, errors.New("malformed client secret hash")
		}
		got := sha256.Sum256([]byte(secret))
		// Constant time, so the comparison leaks nothing about how many
		// leading bytes of a guess were right.
		return subtle.ConstantTimeCompare(got[:], want) == 1, nil
	}
	ok, _, err := s.hasher.Verify(ctx, secret, stored)
	if err != nil {
		return false, fmt.Errorf("verify client secret: %w", err)
	}
	return ok, nil
}

// burnSecretCheck spends what checking a SHA-256 secret hash costs, for
// unknown client ids, so that their answer takes as long as a wrong secret.
func (s *Service) burnSecretCheck(secret string) {
	got := sha256.Sum256([]byte(secret))
	subtle.ConstantTimeCompare(got[:], s.dummySecret[:])
}
