package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEtcdctl drives one server with the real etcdctl v3.7.3 and checks its
// exact output for every command an operator uses, plus the HTTP listener.
// The subtests share the server and run in order: later ones rely on the
// revisions the earlier ones produced only through values they read back.
func TestEtcdctl(t *testing.T) {
	t.Parallel()
	s := StartServer(t, Options{Name: "ctl"})

	t.Run("put-get", func(t *testing.T) { testPutGet(t, s) })
	t.Run("del", func(t *testing.T) { testDel(t, s) })
	t.Run("txn", func(t *testing.T) { testTxn(t, s) })
	t.Run("watch", func(t *testing.T) { testWatch(t, s) })
	t.Run("lease", func(t *testing.T) { testLease(t, s) })
	t.Run("compaction", func(t *testing.T) { testCompaction(t, s) })
	t.Run("defrag", func(t *testing.T) {
		wantMatch(t, "defrag", s.Ctl(t, "defrag"),
			`Finished defragmenting etcd member\[`+regexp.QuoteMeta(s.Endpoint())+`\]\. took \S+\n`)
	})
	t.Run("member-list", func(t *testing.T) {
		wantMatch(t, "member list", s.Ctl(t, "member", "list"),
			`[0-9a-f]{1,16}, started, ctl, `+regexp.QuoteMeta(s.PeerURL())+`, `+regexp.QuoteMeta(s.ClientURL())+`, false\n`)
	})
	t.Run("endpoint", func(t *testing.T) { testEndpoint(t, s) })
	t.Run("snapshot-save", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "snap.db")
		out := s.Ctl(t, "snapshot", "save", path)
		wantContains(t, "snapshot save", out, "Snapshot saved at "+path+"\n")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("snapshot file: %v", err)
		}
		if fi.Size() == 0 {
			t.Errorf("snapshot file %s is empty", path)
		}
	})
	t.Run("alarm-list", func(t *testing.T) {
		wantOut(t, "alarm list", s.Ctl(t, "alarm", "list"), "")
	})
	t.Run("limits", func(t *testing.T) { testLimits(t, s) })
	t.Run("http", func(t *testing.T) { testHTTP(t, s) })
}

// testLimits checks etcd's default request limits and their error texts.
func testLimits(t *testing.T, s *Server) {
	wantFail := func(what, stdin string, want string, args ...string) {
		t.Helper()
		r := s.RunEtcdctl(nil, stdin, args...)
		if r.Err == nil {
			t.Errorf("%s succeeded, want %q", what, want)
			return
		}
		wantContains(t, what, r.Stderr, want)
	}
	// etcdctl put reads the value from stdin when it is not an argument.
	wantFail("put of 2 MB (over --max-request-bytes 1.5 MiB)", strings.Repeat("a", 2_000_000), "request is too large", "put", "lim/big")
	wantOut(t, "put of 1.4 MB", s.CtlStdin(t, strings.Repeat("a", 1_400_000), "put", "lim/med"), "OK\n")
	var ops strings.Builder
	for i := range 129 {
		fmt.Fprintf(&ops, "put lim/t%d v\n", i)
	}
	wantFail("txn of 129 puts (over --max-txn-ops 128)", "\n"+ops.String()+"\n\n", "too many operations in txn request", "txn")
	wantFail("txn putting one key twice", "\nput lim/dup a\nput lim/dup b\n\n\n", "duplicate key given in txn request", "txn")
	wantFail("put of the empty key", "", "key is not provided", "put", "", "v")
	wantOut(t, "del lim/", s.Ctl(t, "del", "lim/", "--prefix"), "1\n")
}

// currentRevision reads the store revision from a get's response header.
func currentRevision(t testing.TB, s *Server) int64 {
	t.Helper()
	var g ctlGet
	decodeJSON(t, "get -w json", s.Ctl(t, "get", "e2e/no-such-key", "-w", "json"), &g)
	return g.Header.Revision
}

func putRev(t testing.TB, s *Server, key, value string, extra ...string) int64 {
	t.Helper()
	var p ctlPut
	decodeJSON(t, "put -w json", s.Ctl(t, append([]string{"put", key, value, "-w", "json"}, extra...)...), &p)
	if p.Header.Revision == 0 {
		t.Fatalf("put %s: response header has no revision", key)
	}
	return p.Header.Revision
}

func testPutGet(t *testing.T, s *Server) {
	wantOut(t, "put", s.Ctl(t, "put", "g/a", "1"), "OK\n")

	var g ctlGet
	decodeJSON(t, "get -w json", s.Ctl(t, "get", "g/a", "-w", "json"), &g)
	if len(g.Kvs) != 1 || g.Count != 1 {
		t.Fatalf("get g/a -w json: kvs %d count %d, want 1 1", len(g.Kvs), g.Count)
	}
	rev1 := g.Kvs[0].ModRevision
	if kv := g.Kvs[0]; string(kv.Key) != "g/a" || string(kv.Value) != "1" || kv.Version != 1 || kv.CreateRevision != rev1 || rev1 != g.Header.Revision {
		t.Errorf("get g/a -w json: kv %+v header %+v, want key g/a value 1 version 1 create=mod=header revision", kv, g.Header)
	}
	if g.Header.ClusterID == "" || g.Header.MemberID == "" || g.Header.RaftTerm == 0 {
		t.Errorf("get -w json header %+v: want cluster_id, member_id and raft_term set", g.Header)
	}

	wantOut(t, "put", s.Ctl(t, "put", "g/b", "2"), "OK\n")
	wantOut(t, "put", s.Ctl(t, "put", "g/c", "3"), "OK\n")
	wantOut(t, "put overwrite", s.Ctl(t, "put", "g/a", "1b"), "OK\n")

	wantOut(t, "get", s.Ctl(t, "get", "g/a"), "g/a\n1b\n")
	wantOut(t, "get missing", s.Ctl(t, "get", "g/zzz"), "")
	wantOut(t, "get --prefix", s.Ctl(t, "get", "g/", "--prefix"), "g/a\n1b\ng/b\n2\ng/c\n3\n")
	wantOut(t, "get range", s.Ctl(t, "get", "g/a", "g/c"), "g/a\n1b\ng/b\n2\n")
	wantOut(t, "get --prefix --limit", s.Ctl(t, "get", "g/", "--prefix", "--limit", "2"), "g/a\n1b\ng/b\n2\n")
	wantOut(t, "get --from-key --limit", s.Ctl(t, "get", "g/b", "--from-key", "--limit", "2"), "g/b\n2\ng/c\n3\n")
	wantOut(t, "get --print-value-only", s.Ctl(t, "get", "g/a", "--print-value-only"), "1b\n")
	wantOut(t, "get --keys-only", s.Ctl(t, "get", "g/", "--prefix", "--keys-only"), "g/a\n\ng/b\n\ng/c\n\n")
	wantOut(t, "get --rev (old value)", s.Ctl(t, "get", "g/a", "--rev", strconv.FormatInt(rev1, 10)), "g/a\n1\n")
	wantOut(t, "get --rev before create", s.Ctl(t, "get", "g/b", "--rev", strconv.FormatInt(rev1, 10)), "")
	wantOut(t, "get --prefix --sort-by=MODIFY --order=DESCEND",
		s.Ctl(t, "get", "g/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"), "g/a\n1b\ng/c\n3\ng/b\n2\n")

	g = ctlGet{}
	decodeJSON(t, "get -w json", s.Ctl(t, "get", "g/a", "-w", "json"), &g)
	if len(g.Kvs) != 1 {
		t.Fatalf("get g/a -w json: %d kvs", len(g.Kvs))
	}
	if kv := g.Kvs[0]; kv.Version != 2 || kv.CreateRevision != rev1 || kv.ModRevision != rev1+3 || g.Header.Revision != rev1+3 || string(kv.Value) != "1b" {
		t.Errorf("get g/a after overwrite: kv %+v header revision %d; want version 2 create %d mod %d revision %d",
			kv, g.Header.Revision, rev1, rev1+3, rev1+3)
	}

	wantMatch(t, "get --count-only -w fields", s.Ctl(t, "get", "g/", "--prefix", "--count-only", "-w", "fields"),
		`"ClusterID" : \d+\n"MemberID" : \d+\n"Revision" : `+strconv.FormatInt(rev1+3, 10)+`\n"RaftTerm" : \d+\n"More" : false\n"Count" : 3\n`)
	g = ctlGet{}
	decodeJSON(t, "get --limit -w json", s.Ctl(t, "get", "g/", "--prefix", "--limit", "1", "-w", "json"), &g)
	if g.Count != 3 || len(g.Kvs) != 1 || !g.More {
		t.Errorf("get --limit 1 -w json: count %d kvs %d more %v, want 3 1 true", g.Count, len(g.Kvs), g.More)
	}

	r := s.CtlFail(t, "put", "g/l", "v", "--lease", "1234abcd")
	wantContains(t, "put with unknown lease", r.Stderr, "requested lease not found")
}

func testDel(t *testing.T, s *Server) {
	for _, k := range []string{"d/a", "d/b", "d/c", "d/x1", "d/x2"} {
		wantOut(t, "put", s.Ctl(t, "put", k, "val-"+k), "OK\n")
	}
	wantOut(t, "del", s.Ctl(t, "del", "d/a"), "1\n")
	wantOut(t, "del missing", s.Ctl(t, "del", "d/a"), "0\n")
	wantOut(t, "del --prev-kv", s.Ctl(t, "del", "d/b", "--prev-kv"), "1\nd/b\nval-d/b\n")
	wantOut(t, "del --prefix --prev-kv", s.Ctl(t, "del", "d/x", "--prefix", "--prev-kv"), "2\nd/x1\nval-d/x1\nd/x2\nval-d/x2\n")
	wantOut(t, "del --prefix", s.Ctl(t, "del", "d/", "--prefix"), "1\n")
	wantOut(t, "get after del", s.Ctl(t, "get", "d/", "--prefix"), "")
}

func testTxn(t *testing.T, s *Server) {
	rev := putRev(t, s, "t/k", "v1")
	const prompts = "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"

	// Success branch, several compare kinds at once.
	in := fmt.Sprintf("value(\"t/k\") = \"v1\"\nversion(\"t/k\") = \"1\"\ncreate(\"t/k\") = \"%d\"\nmod(\"t/k\") < \"%d\"\n\nput t/res yes\nget t/k\n\nput t/res no\n\n", rev, rev+1)
	wantOut(t, "txn -i success", s.CtlStdin(t, in, "txn", "-i"), prompts+"SUCCESS\n\nOK\n\nt/k\nv1\n")
	wantOut(t, "get after success", s.Ctl(t, "get", "t/res"), "t/res\nyes\n")

	// Failure branch.
	in = "value(\"t/k\") = \"nope\"\n\nput t/res yes\n\nput t/res no\ndel t/k\n\n"
	wantOut(t, "txn -i failure", s.CtlStdin(t, in, "txn", "-i"), prompts+"FAILURE\n\nOK\n\n1\n")
	wantOut(t, "get after failure", s.Ctl(t, "get", "t/", "--prefix"), "t/res\nno\n")

	// Non-interactive form reads the same grammar from stdin without prompts;
	// a missing key has version 0.
	in = "version(\"t/k\") = \"0\"\n\nput t/k v2\n\nget t/k\n\n"
	wantOut(t, "txn success", s.CtlStdin(t, in, "txn"), "SUCCESS\n\nOK\n")
	in = "version(\"t/k\") = \"0\"\n\nput t/k v3\n\nget t/k\n\n"
	wantOut(t, "txn failure", s.CtlStdin(t, in, "txn"), "FAILURE\n\nt/k\nv2\n")

	var resp struct {
		Header    ctlHeader `json:"header"`
		Succeeded bool      `json:"succeeded"`
	}
	in = "value(\"t/k\") = \"v2\"\n\nput t/k v4\n\n\n"
	decodeJSON(t, "txn -w json", s.CtlStdin(t, in, "txn", "-w", "json"), &resp)
	if !resp.Succeeded || resp.Header.Revision != currentRevision(t, s) {
		t.Errorf("txn -w json: succeeded %v revision %d, want true and the current revision", resp.Succeeded, resp.Header.Revision)
	}
}

// watchEvent is one event as etcdctl watch prints it: three lines.
type watchEvent struct{ typ, key, value string }

// ctlWatch is a background etcdctl watch whose output lines arrive on lines.
type ctlWatch struct {
	lines  chan string
	stderr *lockedBuffer
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine of exec and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startWatch(t *testing.T, s *Server, args ...string) *ctlWatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := s.EtcdctlCmd(ctx, append([]string{"watch"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("watch stdout: %v", err)
	}
	w := &ctlWatch{lines: make(chan string, 1000), stderr: &lockedBuffer{}}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start etcdctl watch: %v", err)
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(w.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case w.lines <- sc.Text():
			case <-ctx.Done():
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		cancel()
		<-readerDone
		_ = cmd.Wait()
	})
	return w
}

// line returns the next output line or fails the test after timeout.
func (w *ctlWatch) line(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-w.lines:
		if !ok {
			t.Fatalf("etcdctl watch ended early; stderr: %s", w.stderr)
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("no watch output within %v; stderr: %s", timeout, w.stderr)
		return ""
	}
}

// next returns the next three-line event (type, key, value).
func (w *ctlWatch) next(t *testing.T, timeout time.Duration) watchEvent {
	t.Helper()
	return watchEvent{w.line(t, timeout), w.line(t, timeout), w.line(t, timeout)}
}

func testWatch(t *testing.T, s *Server) {
	w := startWatch(t, s, "w/", "--prefix")
	// The watch is registered at an unknown moment: put a sentinel until the
	// watch reports one, then everything after is guaranteed to be seen.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("etcdctl watch saw no sentinel within 20s; stderr: %s", w.stderr)
		}
		s.Ctl(t, "put", "w/sentinel", strconv.Itoa(i))
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("etcdctl watch ended early; stderr: %s", w.stderr)
			}
			ev := watchEvent{l, w.line(t, 10*time.Second), w.line(t, 10*time.Second)}
			if ev.typ != "PUT" || ev.key != "w/sentinel" {
				t.Fatalf("first watch event %+v, want a PUT of w/sentinel", ev)
			}
		case <-time.After(300 * time.Millisecond):
			continue
		}
		break
	}
	startRev := putRev(t, s, "w/a", "1")
	s.Ctl(t, "put", "w/b", "2")
	s.Ctl(t, "put", "other", "x") // outside the prefix: must not be reported
	s.Ctl(t, "del", "w/a")
	want := []watchEvent{{"PUT", "w/a", "1"}, {"PUT", "w/b", "2"}, {"DELETE", "w/a", ""}}
	var got []watchEvent
	for len(got) < len(want) {
		ev := w.next(t, 10*time.Second)
		if ev.key == "w/sentinel" {
			continue // sentinels put before the first one arrived
		}
		got = append(got, ev)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("watch --prefix events %v, want %v", got, want)
	}

	// Replay from a past revision delivers the same history.
	rw := startWatch(t, s, "w/", "--prefix", "--rev", strconv.FormatInt(startRev, 10))
	got = nil
	for range want {
		got = append(got, rw.next(t, 10*time.Second))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("watch --rev %d events %v, want %v", startRev, got, want)
	}

	// --prev-kv prints the previous key-value before the event's.
	pw := startWatch(t, s, "w/b", "--prev-kv", "--rev", strconv.FormatInt(startRev, 10))
	ev := pw.next(t, 10*time.Second)
	if ev != (watchEvent{"PUT", "w/b", "2"}) {
		t.Errorf("watch --prev-kv first event %+v, want PUT w/b 2 (no previous)", ev)
	}
	s.Ctl(t, "put", "w/b", "3")
	var lines []string
	for range 5 {
		lines = append(lines, pw.line(t, 10*time.Second))
	}
	if fmt.Sprint(lines) != fmt.Sprint([]string{"PUT", "w/b", "2", "w/b", "3"}) {
		t.Errorf("watch --prev-kv output %q, want PUT, previous key-value, new key-value", lines)
	}
}

func testLease(t *testing.T, s *Server) {
	m := wantMatch(t, "lease grant", s.Ctl(t, "lease", "grant", "600"), `lease ([0-9a-f]+) granted with TTL\(600s\)\n`)
	if m == nil {
		t.FailNow()
	}
	id := m[1]
	wantOut(t, "put --lease", s.Ctl(t, "put", "l/k1", "v1", "--lease", id), "OK\n")
	wantOut(t, "put --lease", s.Ctl(t, "put", "l/k2", "v2", "--lease", id), "OK\n")
	m = wantMatch(t, "lease timetolive --keys", s.Ctl(t, "lease", "timetolive", id, "--keys"),
		`lease `+id+` granted with TTL\(600s\), remaining\((\d+)s\), attached keys\(\[l/k1 l/k2\]\)\n`)
	if m != nil {
		if r, _ := strconv.Atoi(m[1]); r < 570 || r > 600 {
			t.Errorf("lease timetolive remaining %ds, want within (570, 600]", r)
		}
	}
	var ttl struct {
		ID         int64    `json:"id"`
		TTL        int64    `json:"ttl"`
		GrantedTTL int64    `json:"granted-ttl"`
		Keys       [][]byte `json:"keys"`
	}
	decodeJSON(t, "lease timetolive -w json", s.Ctl(t, "lease", "timetolive", id, "--keys", "-w", "json"), &ttl)
	// etcdctl prints lease IDs as %016x, so compare numerically.
	if wantID, err := strconv.ParseUint(id, 16, 64); err != nil || uint64(ttl.ID) != wantID || ttl.GrantedTTL != 600 || len(ttl.Keys) != 2 {
		t.Errorf("lease timetolive -w json: %+v, want id %s granted-ttl 600 and 2 keys", ttl, id)
	}

	list := s.Ctl(t, "lease", "list")
	if !strings.HasPrefix(list, "found 1 leases\n") || !strings.Contains(list, "\n"+id+"\n") {
		t.Errorf("lease list = %q, want \"found 1 leases\" and %s", list, id)
	}
	wantOut(t, "lease keep-alive --once", s.Ctl(t, "lease", "keep-alive", "--once", id), "lease "+id+" keepalived with TTL(600)\n")
	wantOut(t, "lease revoke", s.Ctl(t, "lease", "revoke", id), "lease "+id+" revoked\n")
	wantOut(t, "get after revoke", s.Ctl(t, "get", "l/", "--prefix"), "")
	wantOut(t, "lease timetolive after revoke", s.Ctl(t, "lease", "timetolive", id), "lease "+id+" already expired\n")
	wantOut(t, "lease list after revoke", s.Ctl(t, "lease", "list"), "found 0 leases\n")
	r := s.CtlFail(t, "lease", "revoke", id)
	wantContains(t, "lease revoke twice", r.Stderr, "requested lease not found")

	// A short lease expires by itself and takes its key along.
	m = wantMatch(t, "lease grant", s.Ctl(t, "lease", "grant", "2"), `lease ([0-9a-f]+) granted with TTL\(2s\)\n`)
	if m == nil {
		t.FailNow()
	}
	s.Ctl(t, "put", "l/short", "v", "--lease", m[1])
	deadline := time.Now().Add(15 * time.Second)
	for s.Ctl(t, "get", "l/short") != "" {
		if time.Now().After(deadline) {
			t.Fatalf("key attached to a 2s lease still present after 15s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testCompaction(t *testing.T, s *Server) {
	rev1 := putRev(t, s, "c/k", "v1")
	rev2 := putRev(t, s, "c/k", "v2")
	wantOut(t, "compaction", s.Ctl(t, "compaction", strconv.FormatInt(rev2, 10)), fmt.Sprintf("compacted revision %d\n", rev2))
	r := s.CtlFail(t, "get", "c/k", "--rev", strconv.FormatInt(rev1, 10))
	wantContains(t, "get --rev compacted", r.Stderr, "required revision has been compacted")
	wantOut(t, "get --rev at compaction", s.Ctl(t, "get", "c/k", "--rev", strconv.FormatInt(rev2, 10)), "c/k\nv2\n")
	r = s.CtlFail(t, "compaction", strconv.FormatInt(rev1, 10))
	wantContains(t, "compaction below compacted", r.Stderr, "required revision has been compacted")
	r = s.CtlFail(t, "get", "c/k", "--rev", strconv.FormatInt(currentRevision(t, s)+100, 10))
	wantContains(t, "get --rev future", r.Stderr, "required revision is a future revision")
	r = s.CtlFail(t, "watch", "c/k", "--rev", strconv.FormatInt(rev1, 10))
	wantContains(t, "watch --rev compacted", r.Stdout+r.Stderr, "required revision has been compacted")
	rev3 := putRev(t, s, "c/k", "v3")
	wantOut(t, "compaction --physical", s.Ctl(t, "compaction", "--physical", strconv.FormatInt(rev3, 10)), fmt.Sprintf("compacted revision %d\n", rev3))
	r = s.CtlFail(t, "get", "c/k", "--rev", strconv.FormatInt(rev2, 10))
	wantContains(t, "get --rev compacted (physical)", r.Stderr, "required revision has been compacted")
}

// endpointStatus is one element of etcdctl endpoint status -w json.
type endpointStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   struct {
		Header    ctlHeader   `json:"header"`
		Version   string      `json:"version"`
		DBSize    int64       `json:"dbSize"`
		Leader    json.Number `json:"leader"`
		RaftIndex int64       `json:"raftIndex"`
		RaftTerm  int64       `json:"raftTerm"`
		Applied   int64       `json:"raftAppliedIndex"`
		DBInUse   int64       `json:"dbSizeInUse"`
		IsLearner bool        `json:"isLearner"`
		Errors    []string    `json:"errors"`
	} `json:"Status"`
}

func testEndpoint(t *testing.T, s *Server) {
	rev := currentRevision(t, s)
	var st []endpointStatus
	decodeJSON(t, "endpoint status -w json", s.Ctl(t, "endpoint", "status", "-w", "json"), &st)
	if len(st) != 1 {
		t.Fatalf("endpoint status -w json: %d entries, want 1", len(st))
	}
	e := st[0]
	if e.Endpoint != s.Endpoint() {
		t.Errorf("endpoint status Endpoint %q, want %q", e.Endpoint, s.Endpoint())
	}
	if e.Status.Header.Revision != rev {
		t.Errorf("endpoint status revision %d, want %d", e.Status.Header.Revision, rev)
	}
	if e.Status.Version == "" {
		t.Errorf("endpoint status has no version")
	}
	if e.Status.DBSize <= 0 {
		t.Errorf("endpoint status dbSize %d, want > 0", e.Status.DBSize)
	}
	if e.Status.Leader == "" || e.Status.Leader == "0" || e.Status.Leader != e.Status.Header.MemberID {
		t.Errorf("endpoint status leader %q, want this member %q", e.Status.Leader, e.Status.Header.MemberID)
	}
	if e.Status.RaftTerm < 1 || e.Status.RaftIndex < 1 || e.Status.Applied < 1 {
		t.Errorf("endpoint status raftTerm %d raftIndex %d raftAppliedIndex %d, want all >= 1", e.Status.RaftTerm, e.Status.RaftIndex, e.Status.Applied)
	}
	if e.Status.DBInUse <= 0 || e.Status.DBInUse > e.Status.DBSize {
		t.Errorf("endpoint status dbSizeInUse %d, want within (0, dbSize %d]", e.Status.DBInUse, e.Status.DBSize)
	}
	if len(e.Status.Errors) != 0 {
		t.Errorf("endpoint status errors %v", e.Status.Errors)
	}
	memberID, err := strconv.ParseUint(string(e.Status.Header.MemberID), 10, 64)
	if err != nil {
		t.Fatalf("member_id %q: %v", e.Status.Header.MemberID, err)
	}

	table := parseTable(t, s.Ctl(t, "endpoint", "status", "-w", "table"))
	if len(table) != 1 {
		t.Fatalf("endpoint status -w table: %d rows, want 1", len(table))
	}
	row := table[0]
	for col, want := range map[string]string{
		"ENDPOINT": s.Endpoint(), "ID": strconv.FormatUint(memberID, 16), "VERSION": e.Status.Version,
		"IS LEADER": "true", "IS LEARNER": "false", "RAFT TERM": strconv.FormatInt(e.Status.RaftTerm, 10), "ERRORS": "",
	} {
		if got, ok := row[col]; !ok || got != want {
			t.Errorf("endpoint status -w table column %q = %q (present %v), want %q", col, got, ok, want)
		}
	}
	if row["DB SIZE"] == "" {
		t.Errorf("endpoint status -w table: empty DB SIZE")
	}
	if p := row["PERCENTAGE NOT IN USE"]; !regexp.MustCompile(`^\d+%$`).MatchString(p) {
		t.Errorf("endpoint status -w table: PERCENTAGE NOT IN USE %q, want 0%%..100%%", p)
	}

	wantMatch(t, "endpoint health", s.Ctl(t, "endpoint", "health"),
		regexp.QuoteMeta(s.Endpoint())+` is healthy: successfully committed proposal: took = \S+\n`)

	hashRe := regexp.QuoteMeta(s.Endpoint()) + `, (\d+), (\d+)\n`
	h1 := wantMatch(t, "endpoint hashkv", s.Ctl(t, "endpoint", "hashkv"), hashRe)
	h2 := wantMatch(t, "endpoint hashkv again", s.Ctl(t, "endpoint", "hashkv"), hashRe)
	if h1 == nil || h2 == nil {
		return
	}
	if h1[2] != strconv.FormatInt(rev, 10) {
		t.Errorf("endpoint hashkv hash_revision %s, want the current revision %d", h1[2], rev)
	}
	if h1[1] != h2[1] {
		t.Errorf("endpoint hashkv changed without writes: %s then %s", h1[1], h2[1])
	}
	s.Ctl(t, "put", "e/hash", "changes")
	h3 := wantMatch(t, "endpoint hashkv after put", s.Ctl(t, "endpoint", "hashkv"), hashRe)
	if h3 != nil && (h3[1] == h1[1] || h3[2] != strconv.FormatInt(rev+1, 10)) {
		t.Errorf("endpoint hashkv after a put: hash %s rev %s, want a new hash at revision %d", h3[1], h3[2], rev+1)
	}
}

// parseTable parses etcdctl's box-drawing table into rows keyed by header.
func parseTable(t *testing.T, out string) []map[string]string {
	t.Helper()
	var header []string
	var rows []map[string]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "│") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "│"), "│")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		row := map[string]string{}
		for i, c := range cells {
			if i < len(header) {
				row[header[i]] = c
			}
		}
		rows = append(rows, row)
	}
	if header == nil {
		t.Fatalf("no table in %q", out)
	}
	return rows
}

func httpDo(t *testing.T, hc *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(Ctx(t, 15*time.Second), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("request %s: %v", url, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

func testHTTP(t *testing.T, s *Server) {
	hc := s.HTTPClient(t)
	base := s.HTTPURL()

	code, body := httpDo(t, hc, "GET", base+"/health", "")
	var health map[string]any
	decodeJSON(t, "/health", body, &health)
	if code != http.StatusOK || health["health"] != "true" {
		t.Errorf("GET /health = %d %s, want 200 {\"health\":\"true\",...}", code, body)
	}
	if code, body := httpDo(t, hc, "GET", base+"/readyz", ""); code != http.StatusOK {
		t.Errorf("GET /readyz = %d %q, want 200", code, body)
	}
	if code, body := httpDo(t, hc, "GET", base+"/livez", ""); code != http.StatusOK {
		t.Errorf("GET /livez = %d %q, want 200", code, body)
	}
	code, body = httpDo(t, hc, "GET", base+"/metrics", "")
	if code != http.StatusOK || !regexp.MustCompile(`(?m)^etcd_server_has_leader 1$`).MatchString(body) {
		t.Errorf("GET /metrics = %d, want 200 with \"etcd_server_has_leader 1\"; has_leader lines: %q",
			code, regexp.MustCompile(`(?m)^etcd_server_has_leader.*$`).FindAllString(body, -1))
	}

	// JSON gateway: keys and values are base64, int64s are strings.
	b64 := base64.StdEncoding.EncodeToString
	code, body = httpDo(t, hc, "POST", base+"/v3/kv/put", `{"key":"`+b64([]byte("gw/foo"))+`","value":"`+b64([]byte("bar"))+`"}`)
	var put struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	if code != http.StatusOK {
		t.Fatalf("POST /v3/kv/put = %d %s", code, body)
	}
	decodeJSON(t, "/v3/kv/put", body, &put)
	code, body = httpDo(t, hc, "POST", base+"/v3/kv/range", `{"key":"`+b64([]byte("gw/foo"))+`"}`)
	var rng struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
		Kvs []struct {
			Key         string `json:"key"`
			Value       string `json:"value"`
			ModRevision string `json:"mod_revision"`
			Version     string `json:"version"`
		} `json:"kvs"`
		Count string `json:"count"`
	}
	if code != http.StatusOK {
		t.Fatalf("POST /v3/kv/range = %d %s", code, body)
	}
	decodeJSON(t, "/v3/kv/range", body, &rng)
	if len(rng.Kvs) != 1 || rng.Kvs[0].Key != b64([]byte("gw/foo")) || rng.Kvs[0].Value != b64([]byte("bar")) ||
		rng.Kvs[0].ModRevision != put.Header.Revision || rng.Kvs[0].Version != "1" || rng.Count != "1" {
		t.Errorf("POST /v3/kv/range = %s, want gw/foo=bar at mod_revision %s", body, put.Header.Revision)
	}
	wantOut(t, "etcdctl get of a gateway put", s.Ctl(t, "get", "gw/foo"), "gw/foo\nbar\n")

	// The brief's literal example: key "foo", value "bar".
	code, body = httpDo(t, hc, "POST", base+"/v3/kv/put", `{"key":"Zm9v","value":"YmFy"}`)
	if code != http.StatusOK {
		t.Fatalf("POST /v3/kv/put foo = %d %s", code, body)
	}
	code, body = httpDo(t, hc, "POST", base+"/v3/kv/range", `{"key":"Zm9v"}`)
	if code != http.StatusOK || !strings.Contains(body, `"value":"YmFy"`) {
		t.Errorf("POST /v3/kv/range foo = %d %s, want value YmFy", code, body)
	}
}
