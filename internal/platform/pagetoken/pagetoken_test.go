package pagetoken

import (
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	for n, want := range map[int32]int{0: DefaultPageSize, 1: 1, 7: 7, MaxPageSize: MaxPageSize, MaxPageSize + 1: MaxPageSize} {
		if got, err := Size(n); err != nil || got != want {
			t.Errorf("Size(%d) = %d, %v; want %d", n, got, err, want)
		}
	}
	if _, err := Size(-1); err == nil || err.Error() != "page_size must not be negative" {
		t.Errorf("Size(-1) error = %v", err)
	}
}

func TestRoundTripAndRefusals(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tok := Encode("orgs/acme/projects/web", "example.com", "kind = PRIMARY", now)
	if after, err := Decode(tok, "orgs/acme/projects/web", "kind = PRIMARY", now.Add(time.Hour)); err != nil || after != "example.com" {
		t.Fatalf("Decode = %q, %v; want example.com", after, err)
	}
	if after, err := Decode("", "anything", "x", now); err != nil || after != "" {
		t.Fatalf("Decode of the empty token = %q, %v; want the first page", after, err)
	}
	for _, c := range []struct {
		name, tok, where, filter string
		at                       time.Time
		want                     string
	}{
		{"not base64", "!!", "orgs/acme/projects/web", "kind = PRIMARY", now, "malformed page_token"},
		{"not JSON", "bm90IGpzb24", "orgs/acme/projects/web", "kind = PRIMARY", now, "malformed page_token"},
		{"another query", tok, "orgs/acme/projects/api", "kind = PRIMARY", now, "page_token belongs to another query"},
		{"another filter", tok, "orgs/acme/projects/web", "", now, "page_token was made for another filter"},
		{"expired", tok, "orgs/acme/projects/web", "kind = PRIMARY", now.Add(TTL + time.Second), "page_token expired"},
	} {
		if _, err := Decode(c.tok, c.where, c.filter, c.at); err == nil || err.Error() != c.want {
			t.Errorf("%s: Decode error = %v, want %q", c.name, err, c.want)
		}
	}
}
