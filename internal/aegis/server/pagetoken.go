package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

// Page tokens of the lists this package computes itself (LookupPrincipals;
// the store pages everything else). Like the store's, a token names the
// query it belongs to (a hash of its parameters), the last item returned
// and when it was made, so that it cannot be replayed on another query and
// expires.
type pageToken struct {
	Where string `json:"w"`
	After string `json:"a"`
	Time  int64  `json:"t"`
}

func queryHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func encodePageToken(where, after string, now time.Time) string {
	b, _ := json.Marshal(pageToken{Where: where, After: after, Time: now.Unix()})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken returns the item after which the page starts ("" for
// the first page).
func decodePageToken(tok, where string, now time.Time) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	var pt pageToken
	if err == nil {
		err = json.Unmarshal(b, &pt)
	}
	switch {
	case err != nil:
		return "", status.Error(codes.InvalidArgument, "malformed page_token")
	case pt.Where != where:
		return "", status.Error(codes.InvalidArgument, "page_token belongs to another query")
	case now.Sub(time.Unix(pt.Time, 0)) > store.PageTokenTTL:
		return "", status.Error(codes.InvalidArgument, "page_token expired")
	}
	return pt.After, nil
}

// pageSize applies the API's page size rules.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, status.Error(codes.InvalidArgument, "page_size must not be negative")
	case n == 0:
		return store.DefaultPageSize, nil
	case n > store.MaxPageSize:
		return store.MaxPageSize, nil
	}
	return int(n), nil
}
