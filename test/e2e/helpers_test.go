package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// wantOut fails the test unless got is exactly want.
func wantOut(t testing.TB, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// wantMatch fails the test unless got matches the anchored regular
// expression re, and returns the submatches.
func wantMatch(t testing.TB, what, got, re string) []string {
	t.Helper()
	m := regexp.MustCompile(`^(?s:` + re + `)$`).FindStringSubmatch(got)
	if m == nil {
		t.Errorf("%s:\n got %q\nwant match for %q", what, got, re)
	}
	return m
}

// wantContains fails the test unless got contains sub.
func wantContains(t testing.TB, what, got, sub string) {
	t.Helper()
	if !strings.Contains(got, sub) {
		t.Errorf("%s: %q does not contain %q", what, got, sub)
	}
}

// decodeJSON decodes etcdctl -w json output (or an HTTP body) into v.
func decodeJSON(t testing.TB, what, data string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(data), v); err != nil {
		t.Fatalf("%s: decode JSON %q: %v", what, data, err)
	}
}

// ctlHeader is the response header as etcdctl -w json prints it (numbers as
// JSON numbers, uint64 IDs may exceed float64 precision, hence json.Number).
type ctlHeader struct {
	ClusterID json.Number `json:"cluster_id"`
	MemberID  json.Number `json:"member_id"`
	Revision  int64       `json:"revision"`
	RaftTerm  int64       `json:"raft_term"`
}

// ctlKV is a key-value as etcdctl -w json prints it; key and value are base64.
type ctlKV struct {
	Key            []byte `json:"key"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Value          []byte `json:"value"`
	Lease          int64  `json:"lease"`
}

// ctlGet is etcdctl get -w json.
type ctlGet struct {
	Header ctlHeader `json:"header"`
	Kvs    []ctlKV   `json:"kvs"`
	Count  int64     `json:"count"`
	More   bool      `json:"more"`
}

// ctlPut is etcdctl put -w json.
type ctlPut struct {
	Header ctlHeader `json:"header"`
}
