package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// clusterReport is the cluster mode's comparison: key-value rows, the watch
// fan-out, the failover times, and per-operation costs.
type clusterReport struct {
	cfg     *config
	env     *environment
	results []*rowResult
	trials  map[string][]*failoverTrial
}

// table is one titled table of a report.
type table struct {
	title  string
	header []string
	rows   [][]string
	note   string // markdown only
}

func (r *clusterReport) find(server, workload, target string, sh shape) *rowResult {
	for _, res := range r.results {
		if res.Server == server && res.Workload == workload && res.Target == target && res.Clients == sh.clients && res.Conns == sh.conns {
			return res
		}
	}
	return nil
}

func (r *clusterReport) comparing() bool { return len(r.cfg.servers) >= 2 }

func (r *clusterReport) ratioHeader() []string {
	base, cand := r.cfg.servers[0], r.cfg.servers[1]
	return []string{fmt.Sprintf("ratio %s/%s", cand, base), "p99 verdict"}
}

// compareCells are every server's throughput, p50 and p99 for one row, then
// the ratio and p99 verdict.
func (r *clusterReport) compareCells(get func(server string) *rowResult) []string {
	var row []string
	for _, s := range r.cfg.servers {
		res := get(s)
		if res == nil {
			row = append(row, "-", "-", "-")
			continue
		}
		row = append(row, fmt.Sprintf("%.0f", res.throughput()), ms(res.P50), ms(res.P99))
	}
	if r.comparing() {
		b, c := get(r.cfg.servers[0]), get(r.cfg.servers[1])
		if b == nil || c == nil {
			return append(row, "-", "-")
		}
		row = append(row, fmt.Sprintf("%.2f", c.throughput()/b.throughput()), verdict(b.P99, c.P99, r.cfg.p99Tolerance))
	}
	return row
}

func targetText(t string) string {
	if t == targetAll || t == "" {
		// "": the watch fan-out, whose watchers are on all members.
		return "all members"
	}
	return t
}

func (r *clusterReport) tables() []table {
	cfg := r.cfg
	var out []table
	var kvRows, watchRows []clusterRow
	failover := false
	for _, cr := range cfg.clusterRows {
		switch cr.workload {
		case wWatch:
			watchRows = append(watchRows, cr)
		case wFailover:
			failover = true
		default:
			kvRows = append(kvRows, cr)
		}
	}

	if len(kvRows) > 0 {
		t := table{title: "Key-value workloads", header: []string{"workload", "to", "clients (conns)"}}
		for _, s := range cfg.servers {
			t.header = append(t.header, s+" ops/s", s+" p50 ms", s+" p99 ms")
		}
		if r.comparing() {
			t.header = append(t.header, r.ratioHeader()...)
		}
		for _, cr := range kvRows {
			for _, sh := range cfg.shapes {
				row := []string{cr.workload, targetText(cr.target), fmt.Sprintf("%d (%d)", sh.clients, sh.conns)}
				t.rows = append(t.rows, append(row, r.compareCells(func(s string) *rowResult { return r.find(s, cr.workload, cr.target, sh) })...))
			}
		}
		t.note = "\"to leader\": every connection dials the leader only. \"to all members\": every connection dials all members and " +
			"clientv3's round-robin balancer sends successive requests to successive members (followers forward writes to the leader " +
			"and ask it for a read index on linearizable reads). ratio = ops/s ÷ baseline ops/s; p99 verdict: within ±" +
			fmt.Sprintf("%.0f%%", cfg.p99Tolerance*100) + " is \"on par\", the factor is p99 ÷ baseline p99."
		out = append(out, t)
	}

	if len(watchRows) > 0 {
		sh := cfg.watchShape()
		t := table{title: "Watch fan-out", header: []string{"watchers (conns)", "puts/s"}}
		for _, s := range cfg.servers {
			t.header = append(t.header, s+" events/s", s+" p50 ms", s+" p99 ms")
		}
		if r.comparing() {
			t.header = append(t.header, r.ratioHeader()...)
		}
		row := []string{fmt.Sprintf("%d (%d)", sh.clients, sh.conns), fmt.Sprintf("%.0f", cfg.watchRate)}
		t.rows = append(t.rows, append(row, r.compareCells(func(s string) *rowResult { return r.find(s, wWatch, "", sh) })...))
		t.note = fmt.Sprintf("One writer puts one key %.0f times a second through the leader, each value stamped with its send time; "+
			"%d watchers of that key, each on its own watch stream, %d connections pinned round robin to the members, "+
			"record receive time minus send time (one machine, one clock). events/s counts events delivered to all watchers together: "+
			"the puts follow a fixed schedule, so it is puts/s × watchers unless events go missing (see the notes column below), "+
			"and the comparison is in the latencies, which are over every delivered event.", cfg.watchRate, sh.clients, sh.conns)
		out = append(out, t)
	}

	if failover {
		t := table{title: "Leader failover (kill -9 of the leader under writes)", header: []string{"time from kill to", "trials"}}
		for _, s := range cfg.servers {
			t.header = append(t.header, s+" median ms", s+" max ms")
		}
		if r.comparing() {
			t.header = append(t.header, fmt.Sprintf("ratio of medians %s/%s", cfg.servers[1], cfg.servers[0]), "verdict")
		}
		measures := []struct {
			name string
			f    func(*failoverTrial) time.Duration
		}{
			{"a survivor reports itself leader", func(t *failoverTrial) time.Duration { return t.Leader }},
			{"first write acknowledged", func(t *failoverTrial) time.Duration { return t.FirstWrite }},
		}
		for _, m := range measures {
			row := []string{m.name, fmt.Sprint(len(r.trials[cfg.servers[0]]))}
			var medians []time.Duration
			for _, s := range cfg.servers {
				med, mx := failoverStats(r.trials[s], m.f)
				medians = append(medians, med)
				row = append(row, ms(med), ms(mx))
			}
			if r.comparing() {
				if medians[0] > 0 {
					row = append(row, fmt.Sprintf("%.2f", float64(medians[1])/float64(medians[0])), verdict(medians[0], medians[1], cfg.p99Tolerance))
				} else {
					row = append(row, "-", "-")
				}
			}
			t.rows = append(t.rows, row)
		}
		t.note = fmt.Sprintf("Every trial starts a fresh cluster, writes through a client that knows every member (a put every %v, each "+
			"on its own goroutine, %v timeout), kills the leader with SIGKILL, then polls Status on the survivors every %v. "+
			"\"first write acknowledged\" is the earliest acknowledgement of a put sent after the kill. Both servers elect "+
			"with a randomized timeout in [1, 2) election timeouts after the last heartbeat, so single trials vary by up to a second: "+
			"compare medians over many trials. Verdict: lower is better.", failoverPutEvery, failoverPutTimeout, failoverPollEvery)
		out = append(out, t)
	}

	if len(kvRows)+len(watchRows) > 0 {
		t := table{title: "Cost per operation (all members together)", header: append([]string{"workload", "to", "clients", "server"}, costHeader...)}
		t.header = append(t.header, "notes")
		add := func(cr clusterRow, sh shape) {
			for _, s := range cfg.servers {
				res := r.find(s, cr.workload, cr.target, sh)
				if res == nil {
					continue
				}
				note := res.Note
				if cr.workload == wWatch {
					note = strings.TrimPrefix(fmt.Sprintf("%s; %.0f puts/s, %d events missing", note, float64(res.Writes)/res.Elapsed.Seconds(), res.Missing), "; ")
				}
				row := append([]string{cr.workload, targetText(cr.target), fmt.Sprint(sh.clients), s}, costCells(res)...)
				t.rows = append(t.rows, append(row, note))
			}
		}
		for _, cr := range kvRows {
			for _, sh := range cfg.shapes {
				add(cr, sh)
			}
		}
		for _, cr := range watchRows {
			add(cr, cfg.watchShape())
		}
		t.note = "Server CPU, disk writes, RSS, metric deltas and sync syscalls are summed over all members of the cluster; " +
			"for watch-fanout an operation is one event delivered to one watcher. See the single-member report for what each column means. " +
			"\"other procs CPU %\" is the rest of the machine during the window: rows where it is high are noisy."
		out = append(out, t)
	}

	if failover {
		t := table{title: "Failover trials", header: []string{"server", "round", "trial", "leader ms", "first write ms", "failed puts before it"}}
		for _, s := range cfg.servers {
			for _, tr := range r.trials[s] {
				t.rows = append(t.rows, []string{s, fmt.Sprint(tr.Round), fmt.Sprint(tr.Trial), ms(tr.Leader), ms(tr.FirstWrite), fmt.Sprint(tr.FailedWrites)})
			}
		}
		out = append(out, t)
	}
	return out
}

func (r *clusterReport) settings() string {
	c := r.cfg
	rounds := ""
	if c.rounds > 1 {
		rounds = fmt.Sprintf(" x %d interleaved rounds, pooled", c.rounds)
	}
	return fmt.Sprintf("%s measured per row%s after %s warmup; %d keys pre-populated for the key-value rows, %d-byte values; "+
		"fresh %d-member cluster per row and per failover trial, members on loopback with separate data dirs, "+
		"--heartbeat-interval %d --election-timeout %d (ms; both servers' defaults), --quota-backend-bytes %d, --snapshot-count 10000, "+
		"no auto compaction; one cluster at a time, server order alternating per row; load generator (clientv3) on the same machine",
		c.duration, rounds, c.warmup, c.keys, c.valueSize, c.members, heartbeatMs, electionMs, c.quota)
}

func (r *clusterReport) text() string {
	var b strings.Builder
	for _, t := range r.tables() {
		fmt.Fprintf(&b, "\n%s\n", t.title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
		for _, row := range t.rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
	fmt.Fprintf(&b, "\n%s\nmachine: %s, %d cores, kernel %s, data on %s; load average before %s, after %s\n",
		r.settings(), r.env.cpu, r.env.cores, r.env.kernel, r.env.fs, r.env.loadBefore, r.env.loadAfter)
	for _, srv := range r.cfg.servers {
		fmt.Fprintf(&b, "%s: %s\n", srv, r.env.binaries[srv])
	}
	return b.String()
}

func (r *clusterReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Chainfire vs etcd benchmark: %d-member cluster\n\n", r.cfg.members)
	b.WriteString("Generated by `make bench-chainfire-cluster` (bench/chainfire/run.sh --cluster); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "- Date: %s\n- Machine: %s, %d cores, kernel %s, %s\n- Data dirs on: %s\n- Load average before / after: %s / %s\n- Settings: %s.\n",
		r.env.date, r.env.cpu, r.env.cores, r.env.kernel, r.env.goVersion, r.env.fs, r.env.loadBefore, r.env.loadAfter, r.settings())
	for _, srv := range r.cfg.servers {
		fmt.Fprintf(&b, "- %s: %s\n", srv, r.env.binaries[srv])
	}
	for _, t := range r.tables() {
		fmt.Fprintf(&b, "\n## %s\n\n", t.title)
		writeMarkdownTable(&b, t.header, t.rows)
		if t.note != "" {
			fmt.Fprintf(&b, "\n%s\n", t.note)
		}
	}
	return b.String()
}
