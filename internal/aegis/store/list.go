package store

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/platform/pagetoken"
)

// ListOptions are the paging parameters of a List call.
type ListOptions[T proto.Message] struct {
	// PageSize: 0 means pagetoken.DefaultPageSize, larger than
	// pagetoken.MaxPageSize means that, negative is ErrInvalidArgument.
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
	n, err := pagetoken.Size(o.PageSize)
	if err != nil {
		return 0, invalidf("%v", err)
	}
	return n, nil
}

func encodeToken(where, after, filter string, now time.Time) string {
	return pagetoken.Encode(where, after, filter, now)
}

// decodeToken returns the item after which the page starts ("" for the
// first page).
func decodeToken(tok, where, filter string, now time.Time) (string, error) {
	after, err := pagetoken.Decode(tok, where, filter, now)
	if err != nil {
		return "", invalidf("%v", err)
	}
	return after, nil
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
