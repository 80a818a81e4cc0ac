package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/proto"
)

// Page sizes (see the flashdns.v1 package comment).
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
	// PageTokenTTL is how long a page token stays valid.
	PageTokenTTL = 24 * time.Hour
)

// ListOptions are the paging parameters of a List call.
type ListOptions[T proto.Message] struct {
	// PageSize: 0 means DefaultPageSize, larger than MaxPageSize means
	// MaxPageSize, negative is ErrInvalidArgument.
	PageSize int32
	// PageToken is the NextPageToken of the previous page, or "".
	PageToken string
	// Filter is the request's filter text. The store does not interpret
	// it; it binds page tokens to it, so that a token used with another
	// filter is ErrInvalidArgument.
	Filter string
	// Match, if set, selects the items to return (the server's compiled
	// filter); pages are filled with matching items only.
	Match func(T) bool
}

func (o *ListOptions[T]) size() (int, error) {
	switch {
	case o.PageSize < 0:
		return 0, invalidf("page_size must not be negative")
	case o.PageSize == 0:
		return DefaultPageSize, nil
	case o.PageSize > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(o.PageSize), nil
}

// pageToken is the decoded form of a page token: where the list is (so a
// token cannot be replayed on another query), the last item returned, the
// filter it was made for and when.
type pageToken struct {
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

func encodeToken(where, after, filter string, now time.Time) string {
	b, _ := json.Marshal(pageToken{Where: where, After: after, Filter: filterHash(filter), Time: now.Unix()})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeToken returns the item after which the page starts ("" for the
// first page).
func decodeToken(tok, where, filter string, now time.Time) (string, error) {
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
		return "", invalidf("malformed page_token")
	case pt.Where != where || pt.Filter != filterHash(filter):
		return "", invalidf("page_token belongs to another query")
	case now.Sub(time.Unix(pt.Time, 0)) > PageTokenTTL:
		return "", invalidf("page_token expired")
	}
	return pt.After, nil
}
