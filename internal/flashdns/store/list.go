package store

import (
	"time"

	"google.golang.org/protobuf/proto"

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
	// Match, if set, selects the items to return (the server's compiled
	// filter); pages are filled with matching items only.
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
