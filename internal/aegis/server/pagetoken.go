package server

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/platform/pagetoken"
)

// Page tokens of the lists this package computes itself (LookupPrincipals;
// the store pages everything else), with the rules of package pagetoken:
// where is a hash of the query's parameters (queryHash).

func queryHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func encodePageToken(where, after string, now time.Time) string {
	return pagetoken.Encode(where, after, "", now)
}

// decodePageToken returns the item after which the page starts ("" for
// the first page).
func decodePageToken(tok, where string, now time.Time) (string, error) {
	after, err := pagetoken.Decode(tok, where, "", now)
	if err != nil {
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	return after, nil
}

// pageSize applies the API's page size rules.
func pageSize(n int32) (int, error) {
	size, err := pagetoken.Size(n)
	if err != nil {
		return 0, status.Error(codes.InvalidArgument, err.Error())
	}
	return size, nil
}
