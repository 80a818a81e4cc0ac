package e2e

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// withoutInitialCluster drops --initial-cluster and its value from args.
func withoutInitialCluster(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--initial-cluster" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// waitVoters polls `etcdctl member list` until it shows n members, all
// voters, and returns them.
func waitVoters(t *testing.T, c *Cluster, endpoints string, n int) []CtlMember {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ms := c.MemberList(t, endpoints)
		voters := 0
		for _, m := range ms {
			if !m.IsLearner {
				voters++
			}
		}
		if len(ms) == n && voters == n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list never showed %d voters: %+v", n, ms)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// statusErrors returns the Errors of `etcdctl endpoint status -w json` at endpoint.
func statusErrors(t *testing.T, c *Cluster, endpoint string) []string {
	t.Helper()
	var out []struct {
		Status struct {
			Errors []string `json:"errors"`
		} `json:"Status"`
	}
	decodeJSON(t, "endpoint status", c.CtlAt(t, endpoint, "endpoint", "status", "-w", "json"), &out)
	if len(out) != 1 {
		t.Fatalf("endpoint status: %d entries", len(out))
	}
	return out[0].Status.Errors
}

// TestJoinWithGossip is the acceptance test of --join: three members
// bootstrapped with --initial-cluster that also run gossip, and a fourth
// started with only --join (no --initial-cluster, nobody runs `member add`)
// that ends up a voter with the cluster's data. Its restart does not add it
// again; its stop shows in the others' Status; its /metrics has the gossip
// health of every member.
func TestJoinWithGossip(t *testing.T) {
	t.Parallel()
	if FindBinaries(t).Kind != KindChainfire {
		t.Skip("--join and gossip are Chainfire's own")
	}
	gossipPorts, err := testenv.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	gossipAddr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(gossipPorts[i]) }
	c := NewCluster(t, ClusterOptions{Size: 3})
	for i, m := range c.Members {
		m.opts.ExtraArgs = append(m.opts.ExtraArgs, "--gossip-addr", gossipAddr(i))
	}
	c.Start()
	c.CtlAt(t, c.Endpoints(), "put", "before-join", "1")

	// m4 knows nothing but one seed: the gossip address of m2.
	j := NewServer(t, Options{Name: "m4", FixedPorts: true, Args: func(s *Server) []string {
		return append(withoutInitialCluster(s.DefaultArgs()), "--join", gossipAddr(1), "--gossip-addr", gossipAddr(3))
	}})
	j.Start()
	j.WaitReady()
	ms := waitVoters(t, c, c.Endpoints(), 4)
	var joined CtlMember
	for _, m := range ms {
		if m.Name == "m4" {
			joined = m
		}
	}
	if joined.Name == "" || len(joined.ClientURLs) != 1 || joined.ClientURLs[0] != j.ClientURL() || joined.PeerURLs[0] != j.PeerURL() {
		t.Fatalf("m4 in the member list: %+v (all: %+v)", joined, ms)
	}
	wantOut(t, "get on the joined member", j.Ctl(t, "get", "before-join", "--print-value-only"), "1\n")
	j.Ctl(t, "put", "after-join", "2")
	wantOut(t, "get on m1", c.CtlAt(t, c.Members[0].Endpoint(), "get", "after-join", "--print-value-only"), "2\n")

	// Gossip health: every member alive, on the joined member's /metrics
	// and in everyone's Status.
	metricsDeadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := j.HTTPClient(t).Get(j.HTTPURL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		all := true
		for _, want := range []string{`chainfire_gossip_members{state="alive"} 4`, `chainfire_gossip_member_healthy{member="m1"} 1`,
			`chainfire_gossip_member_healthy{member="m2"} 1`, `chainfire_gossip_member_healthy{member="m3"} 1`, `chainfire_gossip_member_healthy{member="m4"} 1`} {
			all = all && strings.Contains(string(body), want+"\n")
		}
		if all {
			break
		}
		if time.Now().After(metricsDeadline) {
			t.Fatalf("gossip metrics of m4 never showed four healthy members:\n%s", grepLines(string(body), "chainfire_gossip"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, m := range append(c.Members, j) {
		if errs := statusErrors(t, c, m.Endpoint()); len(errs) != 0 {
			t.Errorf("status of %s reports %q", m.Name, errs)
		}
	}

	// A restart on the same data dir does not add the member again.
	j.Restart()
	ms = waitVoters(t, c, c.Endpoints(), 4)
	if !containsMember(ms, joined) {
		t.Fatalf("after the restart m4 is not the same member: %+v, want %+v", ms, joined)
	}
	if n := strings.Count(j.Log(), "added this member to the cluster as a learner"); n != 1 {
		t.Fatalf("m4 added itself %d times", n)
	}
	wantOut(t, "get after restart", j.Ctl(t, "get", "after-join", "--print-value-only", "--consistency=s"), "2\n")

	// Its stop shows in Status.
	if err := j.Stop(); err != nil {
		t.Fatalf("stop m4: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		errs := statusErrors(t, c, c.Members[0].Endpoint())
		if len(errs) == 1 && errs[0] == "gossip: member m4 left" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of m1 after m4 stopped: errors %q", errs)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func containsMember(ms []CtlMember, want CtlMember) bool {
	for _, m := range ms {
		if m.ID == want.ID && m.Name == want.Name && !m.IsLearner {
			return true
		}
	}
	return false
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
