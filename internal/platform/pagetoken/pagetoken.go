// Package pagetoken holds the paging rules every PhotonCloud List API
// shares: page sizes, and page tokens that name the query they belong to,
// the last item returned, the filter they were made for and when, so that
// a token cannot be replayed on another query or filter and expires. A
// token is opaque to clients (base64url of JSON), not secret: it holds
// nothing the caller could not list.
package pagetoken

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

const (
	// DefaultPageSize is the size of a page when the request gives none.
	DefaultPageSize = 50
	// MaxPageSize bounds a page; larger requests get this many.
	MaxPageSize = 1000
	// TTL is how long a page token stays valid.
	TTL = 24 * time.Hour
)

// Size applies the page size rules to a request's page_size: 0 means
// DefaultPageSize, more than MaxPageSize means MaxPageSize, negative is an
// error (the caller's INVALID_ARGUMENT).
func Size(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, errors.New("page_size must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(n), nil
}

// token is the decoded form of a page token.
type token struct {
	Where  string `json:"w"`
	After  string `json:"a"`
	Filter string `json:"f,omitempty"`
	Time   int64  `json:"t"`
}

func filterHash(filter string) string {
	if filter == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(filter))
	return hex.EncodeToString(sum[:8])
}

// Encode makes the token of the page after the item after, for the query
// named where with the filter text filter.
func Encode(where, after, filter string, now time.Time) string {
	b, _ := json.Marshal(token{Where: where, After: after, Filter: filterHash(filter), Time: now.Unix()})
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the item after which the page of tok starts ("" for the
// empty token, the first page). The error, the caller's INVALID_ARGUMENT,
// says what is wrong with the token.
func Decode(tok, where, filter string, now time.Time) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	var t token
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	switch {
	case err != nil:
		return "", errors.New("malformed page_token")
	case t.Where != where:
		return "", errors.New("page_token belongs to another query")
	case t.Filter != filterHash(filter):
		return "", errors.New("page_token was made for another filter")
	case now.Sub(time.Unix(t.Time, 0)) > TTL:
		return "", errors.New("page_token expired")
	}
	return t.After, nil
}
