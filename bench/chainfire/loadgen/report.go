package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the comparison table plus per-row cost details.
type report struct {
	cfg     *config
	env     *environment
	results []*rowResult
}

func buildReport(cfg *config, env *environment, results []*rowResult) *report {
	return &report{cfg: cfg, env: env, results: results}
}

// find returns the result of one server for one row.
func (r *report) find(server, workload string, sh shape) *rowResult {
	for _, res := range r.results {
		if res.Server == server && res.Workload == workload && res.Clients == sh.clients && res.Conns == sh.conns {
			return res
		}
	}
	return nil
}

// comparing reports whether the table has a baseline and a candidate.
func (r *report) comparing() bool { return len(r.cfg.servers) >= 2 }

// summaryRows is the main table: one line per workload and shape.
func (r *report) summaryRows() (header []string, rows [][]string) {
	header = []string{"workload", "clients (conns)"}
	for _, s := range r.cfg.servers {
		header = append(header, s+" ops/s", s+" p50 ms", s+" p99 ms")
	}
	if r.comparing() {
		base, cand := r.cfg.servers[0], r.cfg.servers[1]
		header = append(header, fmt.Sprintf("ratio %s/%s", cand, base), "p99 verdict")
	}
	for _, w := range r.cfg.workloads {
		for _, sh := range r.cfg.shapes {
			row := []string{w, fmt.Sprintf("%d (%d)", sh.clients, sh.conns)}
			for _, s := range r.cfg.servers {
				res := r.find(s, w, sh)
				if res == nil {
					row = append(row, "-", "-", "-")
					continue
				}
				row = append(row, fmt.Sprintf("%.0f", res.throughput()), ms(res.P50), ms(res.P99))
			}
			if r.comparing() {
				b, c := r.find(r.cfg.servers[0], w, sh), r.find(r.cfg.servers[1], w, sh)
				if b == nil || c == nil {
					row = append(row, "-", "-")
				} else {
					row = append(row, fmt.Sprintf("%.2f", c.throughput()/b.throughput()), verdict(b.P99, c.P99, r.cfg.p99Tolerance))
				}
			}
			rows = append(rows, row)
		}
	}
	return header, rows
}

// verdict compares the candidate's p99 with the baseline's.
func verdict(base, cand time.Duration, tol float64) string {
	if base <= 0 {
		return "-"
	}
	x := float64(cand) / float64(base)
	switch {
	case x < 1-tol:
		return fmt.Sprintf("better (x%.2f)", x)
	case x <= 1+tol:
		return fmt.Sprintf("on par (x%.2f)", x)
	default:
		return fmt.Sprintf("worse (x%.2f)", x)
	}
}

// detailRows show where the time and the I/O go, per server and row.
func (r *report) detailRows() (header []string, rows [][]string) {
	header = append([]string{"workload", "clients", "server"}, costHeader...)
	header = append(header, "cas conflicts")
	for _, w := range r.cfg.workloads {
		for _, sh := range r.cfg.shapes {
			for _, s := range r.cfg.servers {
				res := r.find(s, w, sh)
				if res == nil {
					continue
				}
				row := append([]string{w, fmt.Sprint(sh.clients), s}, costCells(res)...)
				rows = append(rows, append(row, fmt.Sprint(res.Conflicts)))
			}
		}
	}
	return header, rows
}

// costHeader names the columns of costCells.
var costHeader = []string{"ops/s", "p90 ms", "p99.9 ms", "max ms",
	"server CPU µs/op", "loadgen CPU µs/op", "fdatasync+fsync/op", "sync_file_range/op", "wal_fsync metric/op", "backend commits/op", "disk KiB/op", "RSS MiB", "other procs CPU %", "errors"}

// costCells are one result's throughput, tail latency and per-operation
// costs.
func costCells(res *rowResult) []string {
	ops := float64(res.Ops)
	per := func(v float64) string { return fmt.Sprintf("%.3f", v/ops) }
	commits := "-"
	if v, ok := res.Metrics["etcd_disk_backend_commit_duration_seconds_count"]; ok {
		commits = per(v)
	}
	syncs, ranges := "-", "-"
	if c := res.SyncSyscalls; c != nil {
		syncs = per(float64(c["fdatasync"] + c["fsync"]))
		ranges = per(float64(c["sync_file_range"]))
	}
	errs := fmt.Sprint(res.Errors)
	if res.FirstErr != "" {
		errs += " (" + res.FirstErr + ")"
	}
	return []string{fmt.Sprintf("%.0f", res.throughput()),
		ms(res.P90), ms(res.P999), ms(res.Max),
		fmt.Sprintf("%.1f", float64(res.ServerCPU.Microseconds())/ops),
		fmt.Sprintf("%.1f", float64(res.LoadgenCPU.Microseconds())/ops),
		syncs, ranges, per(res.Metrics["etcd_disk_wal_fsync_duration_seconds_count"]), commits,
		fmt.Sprintf("%.2f", float64(res.WriteBytes)/1024/ops),
		fmt.Sprintf("%.0f", float64(res.ServerRSS)/(1<<20)),
		fmt.Sprintf("%.0f", res.otherCPUPercent()),
		errs}
}

// ms formats a latency in milliseconds with about three significant digits.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func (r *report) settings() string {
	c := r.cfg
	rounds := ""
	if c.rounds > 1 {
		rounds = fmt.Sprintf(" x %d interleaved rounds, pooled", c.rounds)
	}
	return fmt.Sprintf("%s measured per row%s after %s warmup; %d keys pre-populated, %d-byte values; "+
		"fresh single member per row, --quota-backend-bytes %d, --snapshot-count 10000, no auto compaction; "+
		"servers run one at a time, order alternating per row; load generator (clientv3) on the same machine",
		c.duration, rounds, c.warmup, c.keys, c.valueSize, c.quota)
}

func (r *report) text() string {
	var b strings.Builder
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	h, rows := r.summaryRows()
	fmt.Fprintln(tw, strings.Join(h, "\t"))
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	h, rows = r.detailRows()
	fmt.Fprintln(tw, strings.Join(h, "\t"))
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	fmt.Fprintf(&b, "\n%s\nmachine: %s, %d cores, kernel %s, data on %s; load average before %s, after %s\n",
		r.settings(), r.env.cpu, r.env.cores, r.env.kernel, r.env.fs, r.env.loadBefore, r.env.loadAfter)
	for _, srv := range r.cfg.servers {
		fmt.Fprintf(&b, "%s: %s\n", srv, r.env.binaries[srv])
	}
	return b.String()
}

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("# Chainfire vs etcd benchmark\n\n")
	b.WriteString("Generated by `make bench-chainfire` (bench/chainfire/run.sh); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "- Date: %s\n- Machine: %s, %d cores, kernel %s, %s\n- Data dirs on: %s\n- Load average before / after: %s / %s\n- Settings: %s.\n",
		r.env.date, r.env.cpu, r.env.cores, r.env.kernel, r.env.goVersion, r.env.fs, r.env.loadBefore, r.env.loadAfter, r.settings())
	for _, srv := range r.cfg.servers {
		fmt.Fprintf(&b, "- %s: %s\n", srv, r.env.binaries[srv])
	}
	b.WriteString("\n")
	h, rows := r.summaryRows()
	writeMarkdownTable(&b, h, rows)
	if r.comparing() {
		fmt.Fprintf(&b, "\nratio = %s ops/s ÷ %s ops/s. p99 verdict: %s p99 within ±%.0f%% of %s is \"on par\", "+
			"the factor is %s p99 ÷ %s p99. Latency is per request as the client sees it (nearest-rank percentiles over every request of the window).\n",
			r.cfg.servers[1], r.cfg.servers[0], r.cfg.servers[1], r.cfg.p99Tolerance*100, r.cfg.servers[0], r.cfg.servers[1], r.cfg.servers[0])
	}
	b.WriteString("\n## Cost per operation\n\n")
	h, rows = r.detailRows()
	writeMarkdownTable(&b, h, rows)
	b.WriteString("\nServer CPU and disk writes come from /proc/<pid>/stat and /proc/<pid>/io over the measured window; " +
		"fdatasync+fsync and sync_file_range are the server's system calls counted with perf's syscall tracepoints (`perf stat -p`). " +
		"The wal_fsync metric and backend commits are deltas of etcd_disk_wal_fsync_duration_seconds_count and " +
		"etcd_disk_backend_commit_duration_seconds_count from each server's /metrics. Each server reports the metric its own way, " +
		"so the syscall column is the one to compare (Chainfire builds before commit 7b2bb9a observed the metric on every raft log save, " +
		"synced or not, and showed about twice the real count). " +
		"Chainfire has no separate backend: its raft log and MVCC data share one Pebble store. " +
		"The load generator shares the cores with the server, so loadgen CPU is part of the budget. " +
		"\"other procs CPU %\" is the share of all cores used by the rest of the machine during the window (from /proc/stat): " +
		"rows where it is high were measured under outside contention and are noisy.\n")
	return b.String()
}

func writeMarkdownTable(b *strings.Builder, header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	b.WriteString("|" + strings.Join(sep, "|") + "|\n")
	for _, row := range rows {
		esc := make([]string, len(row))
		for i, c := range row {
			esc[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		b.WriteString("| " + strings.Join(esc, " | ") + " |\n")
	}
}

func writeJSON(path string, results any) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
