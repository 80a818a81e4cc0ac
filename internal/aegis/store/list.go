package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Page sizes (see the aegis.v1 package comment).
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
	// Match, if set, selects the records to return (the server's compiled
	// filter); pages are filled with matching records only.
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
// token cannot be replayed on another parent), the last key returned, the
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

// decodeToken returns the key after which the page starts ("" for the
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
	case pt.Where != where:
		return "", invalidf("page_token belongs to another list")
	case pt.Filter != filterHash(filter):
		return "", invalidf("page_token was made for another filter")
	case now.Sub(time.Unix(pt.Time, 0)) > PageTokenTTL:
		return "", invalidf("page_token expired")
	}
	return pt.After, nil
}

// list pages through the records whose keys start with prefix.
func list[T proto.Message](s *Store, prefix string, opts ListOptions[T]) ([]T, string, error) {
	size, err := opts.size()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	after, err := decodeToken(opts.PageToken, prefix, opts.Filter, now)
	if err != nil {
		return nil, "", err
	}
	if after != "" {
		after = prefix + after
	}
	var out []T
	next := ""
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	var last string
	s.ix.ascend(prefix, after, func(e *entry) bool {
		m, ok := s.ix.out(e).(T)
		if !ok || (opts.Match != nil && !opts.Match(m)) {
			return true
		}
		if len(out) == size {
			// Only now is it certain that another page exists.
			next = encodeToken(prefix, last[len(prefix):], opts.Filter, now)
			return false
		}
		out = append(out, m)
		last = e.key
		return true
	})
	return out, next, nil
}

// out returns a copy of e's record as the API returns it: with its etag,
// and for groups with the member count and the latest update time.
func (ix *index) out(e *entry) proto.Message {
	m := proto.Clone(e.msg)
	etag := etagOf(ix.etagRev(e))
	switch r := m.(type) {
	case *aegisv1.Org:
		r.Etag = etag
	case *aegisv1.Project:
		r.Etag = etag
	case *aegisv1.User:
		r.Etag = etag
	case *aegisv1.Group:
		r.Etag = etag
		r.MemberCount = int32(ix.memberCount[e.name])
		if g, ok := ix.gvers[e.name]; ok && g.time.After(r.GetUpdateTime().AsTime()) {
			r.UpdateTime = timestamppb.New(g.time)
		}
	case *aegisv1.ServiceAccount:
		r.Etag = etag
	case *aegisv1.ServiceAccountKey:
		r.Etag = etag
		r.ClientSecret = ""
	case *aegisv1.Role:
		r.Etag = etag
	case *aegisv1.Binding:
		r.Etag = etag
	}
	return m
}

// get returns a copy of the record named name of kind k.
func get[T proto.Message](s *Store, k kind, name string) (T, error) {
	var zero T
	n, err := parseName(name)
	if err != nil {
		return zero, err
	}
	if n.kind != k {
		return zero, invalidf("%q is not a %s name", clip(name), k)
	}
	s.ix.mu.RLock()
	defer s.ix.mu.RUnlock()
	e := s.ix.getName(k, name)
	if e == nil {
		return zero, notFoundf("%s %q", k, clip(name))
	}
	return s.ix.out(e).(T), nil
}
