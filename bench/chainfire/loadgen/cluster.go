package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/bench/internal/hoststat"
)

// cluster is one server's multi-member cluster on loopback, every member
// with its own ports and data dir.
type cluster struct {
	server  string
	members []*process
	// status has one client per member, dialing only that member, for
	// Status polls (leader discovery, failover).
	status []*clientv3.Client
}

// startCluster starts cfg.members fresh members of kind server under dir
// and waits until each serves linearizable reads and knows its member ID.
func startCluster(ctx context.Context, lg *slog.Logger, cfg *config, server, dir string) (*cluster, error) {
	n := cfg.members
	began := time.Now()
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	url := func(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }
	specs := make([]memberSpec, n)
	var initial []string
	for i := range specs {
		name := fmt.Sprintf("m%d", i)
		specs[i] = memberSpec{
			name:    name,
			client:  url(ports[3*i]),
			peer:    url(ports[3*i+1]),
			metrics: url(ports[3*i+2]),
			token:   "bench-cluster",
			dataDir: filepath.Join(dir, name, "data"),
			logPath: filepath.Join(dir, name, "server.log"),
		}
		initial = append(initial, name+"="+specs[i].peer)
	}
	c := &cluster{server: server}
	for i := range specs {
		specs[i].initialCluster = strings.Join(initial, ",")
		p, err := spawn(cfg, server, specs[i])
		if err != nil {
			c.stop(lg)
			return nil, err
		}
		c.members = append(c.members, p)
	}
	for _, p := range c.members {
		if err := p.waitReady(ctx); err != nil {
			c.stop(lg)
			return nil, fmt.Errorf("%s member %s not ready: %w; log tail:\n%s", server, p.member, err, tail(p.logPath, 20))
		}
	}
	for _, p := range c.members {
		cl, err := newClient(p.clientAddr)
		if err != nil {
			c.stop(lg)
			return nil, err
		}
		c.status = append(c.status, cl)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cl.Status(rctx, p.clientAddr)
		cancel()
		if err != nil {
			c.stop(lg)
			return nil, fmt.Errorf("status of %s member %s: %w", server, p.member, err)
		}
		p.id = st.Header.MemberId
	}
	lg.Debug("cluster ready", "server", server, "members", n, "took", time.Since(began))
	return c, nil
}

func (c *cluster) addrs() []string {
	var a []string
	for _, p := range c.members {
		a = append(a, p.clientAddr)
	}
	return a
}

// leader waits until every live member names the same leader, one of
// them, and returns it.
func (c *cluster) leader(ctx context.Context) (*process, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		lead, err := c.agreedLeader(ctx)
		if err == nil {
			return lead, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no agreed leader within 30s: %w", c.server, err)
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

func (c *cluster) agreedLeader(ctx context.Context) (*process, error) {
	var lead uint64
	for i, p := range c.members {
		if !p.alive() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.status[i].Status(rctx, p.clientAddr)
		cancel()
		switch {
		case err != nil:
			return nil, fmt.Errorf("status of %s: %w", p.member, err)
		case st.Leader == 0:
			return nil, fmt.Errorf("%s has no leader", p.member)
		case lead != 0 && st.Leader != lead:
			return nil, fmt.Errorf("members disagree on the leader (%x, %x)", lead, st.Leader)
		}
		lead = st.Leader
	}
	for _, p := range c.members {
		if p.id == lead && p.alive() {
			return p, nil
		}
	}
	return nil, fmt.Errorf("leader %x is not a live member", lead)
}

// stop closes the status clients and kills every member. Nothing is
// measured after a row and its data is thrown away, so there is no point in
// a graceful stop, which costs etcd about 7 s when all members stop at once
// (each tries to hand leadership over to peers that are going too).
func (c *cluster) stop(lg *slog.Logger) {
	began := time.Now()
	for _, cl := range c.status {
		cl.Close()
	}
	for _, p := range c.members {
		p.kill9()
	}
	lg.Debug("cluster stopped", "server", c.server, "took", time.Since(began))
}

// removeData deletes the members' data dirs; their logs stay for
// post-mortems until the work dir goes.
func (c *cluster) removeData() error {
	for _, p := range c.members {
		if err := os.RemoveAll(p.dataDir); err != nil {
			return fmt.Errorf("remove data dir: %w", err)
		}
	}
	return nil
}

// logTails is the end of every member's log, for error reports.
func (c *cluster) logTails(n int) string {
	var b strings.Builder
	for _, p := range c.members {
		fmt.Fprintf(&b, "--- %s %s:\n%s\n", c.server, p.member, tail(p.logPath, n))
	}
	return b.String()
}

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill9 sends SIGKILL and waits until the process is gone.
func (p *process) kill9() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Cluster rows: key-value workloads aimed at the leader or spread over all
// members, the watch fan-out and the leader failover.
const (
	targetLeader = "leader"
	targetAll    = "all"
	wWatch       = "watch-fanout"
	wFailover    = "failover"
)

var defaultClusterRows = []string{"put@leader", "put@all", "get-linearizable@all", "get-serializable@all", wWatch, wFailover}

// clusterRow is one entry of -workloads in cluster mode: a key-value
// workload with its target (workload@leader, workload@all), or wWatch, or
// wFailover (target empty).
type clusterRow struct {
	workload string
	target   string
}

func (r clusterRow) String() string {
	if r.target == "" {
		return r.workload
	}
	return r.workload + "@" + r.target
}

func parseClusterRow(s string) (clusterRow, error) {
	if s == wWatch || s == wFailover {
		return clusterRow{workload: s}, nil
	}
	w, t, _ := strings.Cut(s, "@")
	if !isWorkload(w) || (t != targetLeader && t != targetAll) {
		return clusterRow{}, fmt.Errorf("unknown cluster workload %q: want <workload>@leader or <workload>@all (workload one of %s), %s or %s",
			s, strings.Join(allWorkloads, ","), wWatch, wFailover)
	}
	return clusterRow{workload: w, target: t}, nil
}

// runCluster is the cluster mode: every row on a fresh cluster of each
// server in turn, rounds interleaved as in single-member mode.
func (b *bench) runCluster(ctx context.Context, env *environment) error {
	cfg := b.cfg
	type rowKey struct {
		server string
		row    clusterRow
		sh     shape
	}
	rounds := map[rowKey][]*rowResult{}
	trials := map[string][]*failoverTrial{}
	for round := range cfg.rounds {
		row := 0
		// each runs one row of every server, in alternating order.
		each := func(f func(srv string) error) error {
			order := append([]string(nil), cfg.servers...)
			if (row+round)%2 == 1 {
				slices.Reverse(order)
			}
			row++
			for _, srv := range order {
				if err := f(srv); err != nil {
					return err
				}
			}
			return nil
		}
		for _, cr := range cfg.clusterRows {
			switch cr.workload {
			case wFailover:
				for trial := range cfg.failoverTrials {
					err := each(func(srv string) error {
						t, err := b.failoverTrial(ctx, srv, round*1000+row)
						if err != nil {
							return fmt.Errorf("%s failover trial %d: %w", srv, trial+1, err)
						}
						t.Round, t.Trial = round+1, trial+1
						b.lg.Info("failover trial done", "round", round+1, "trial", trial+1, "server", srv,
							"leader", t.Leader, "first_write", t.FirstWrite, "failed_puts", t.FailedWrites)
						trials[srv] = append(trials[srv], t)
						return nil
					})
					if err != nil {
						return err
					}
				}
			case wWatch:
				sh := cfg.watchShape()
				err := each(func(srv string) error {
					res, err := b.watchRow(ctx, srv, round*1000+row)
					if err != nil {
						return fmt.Errorf("%s %s: %w", srv, wWatch, err)
					}
					b.lg.Info("row done", "round", round+1, "server", srv, "workload", wWatch, "watchers", sh.clients,
						"events/s", fmt.Sprintf("%.0f", res.throughput()), "p50", res.P50, "p99", res.P99,
						"missing", res.Missing, "errors", res.Errors, "other_cpu", fmt.Sprintf("%.0f%%", res.otherCPUPercent()))
					rounds[rowKey{srv, cr, sh}] = append(rounds[rowKey{srv, cr, sh}], res)
					return nil
				})
				if err != nil {
					return err
				}
			default:
				for _, sh := range cfg.shapes {
					err := each(func(srv string) error {
						res, err := b.clusterKVRow(ctx, srv, cr, sh, round*1000+row)
						if err != nil {
							return fmt.Errorf("%s %s %s: %w", srv, cr, sh, err)
						}
						b.lg.Info("row done", "round", round+1, "server", srv, "workload", cr.String(), "clients", sh.clients, "conns", sh.conns,
							"ops/s", fmt.Sprintf("%.0f", res.throughput()), "p50", res.P50, "p99", res.P99, "errors", res.Errors,
							"other_cpu", fmt.Sprintf("%.0f%%", res.otherCPUPercent()))
						rounds[rowKey{srv, cr, sh}] = append(rounds[rowKey{srv, cr, sh}], res)
						return nil
					})
					if err != nil {
						return err
					}
				}
			}
		}
	}
	var results []*rowResult
	for _, cr := range cfg.clusterRows {
		shapes := cfg.shapes
		switch cr.workload {
		case wFailover:
			continue
		case wWatch:
			shapes = []shape{cfg.watchShape()}
		}
		for _, sh := range shapes {
			for _, srv := range cfg.servers {
				results = append(results, pool(rounds[rowKey{srv, cr, sh}]))
			}
		}
	}
	env.loadAfter = hoststat.LoadAvg()

	rep := &clusterReport{cfg: cfg, env: env, results: results, trials: trials}
	fmt.Print(rep.text())
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(rep.markdown()), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		b.lg.Info("markdown written", "file", cfg.out)
	}
	if cfg.jsonOut != "" {
		var all []*failoverTrial
		for _, srv := range cfg.servers {
			all = append(all, trials[srv]...)
		}
		if err := writeJSON(cfg.jsonOut, struct {
			Rows     []*rowResult
			Failover []*failoverTrial
		}{results, all}); err != nil {
			return err
		}
	}
	return nil
}

// clusterKVRow starts a fresh cluster, finds its leader, and runs one
// key-value workload against the leader only or against all members.
func (b *bench) clusterKVRow(ctx context.Context, server string, cr clusterRow, sh shape, row int) (*rowResult, error) {
	dir := filepath.Join(b.workDir, fmt.Sprintf("%04d-%s-%s-%s-%d", row, server, cr.workload, cr.target, sh.clients))
	b.lg.Info("row starting", "server", server, "workload", cr.String(), "clients", sh.clients, "conns", sh.conns)
	c, err := startCluster(ctx, b.lg, b.cfg, server, dir)
	if err != nil {
		return nil, err
	}
	res, err := b.clusterKVLoad(ctx, c, cr, sh, row, dir)
	c.stop(b.lg)
	if err != nil {
		return nil, fmt.Errorf("%w; server log tails:\n%s", err, c.logTails(10))
	}
	return res, c.removeData()
}

func (b *bench) clusterKVLoad(ctx context.Context, c *cluster, cr clusterRow, sh shape, row int, dir string) (*rowResult, error) {
	lead, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	t := &target{server: c.server, members: c.members, endpoints: c.addrs(), label: cr.target, dir: dir}
	if cr.target == targetLeader {
		t.endpoints = []string{lead.clientAddr}
	}
	res, err := b.load(ctx, t, cr.workload, sh, row)
	if err != nil {
		return nil, err
	}
	// A leader change in the window moves "to leader" load onto a follower
	// and costs an election's worth of unavailability: flag the row.
	if now, err := c.leader(ctx); err != nil || now != lead {
		res.Note = "leader changed during the row"
		b.lg.Warn("leader changed during the row", "server", c.server, "workload", cr.String(), "clients", sh.clients)
	}
	return res, nil
}
