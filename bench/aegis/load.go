package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
)

// window is what one measured window of load against the servers gave.
type window struct {
	Kind       string        `json:"kind"`  // what was asked: an Authorize subject kind or a grant type
	Label      string        `json:"label"` // the row, for logs and -attach outputs
	Clients    int           `json:"clients"`
	Conns      int           `json:"conns"`
	Rate       float64       `json:"offered_per_s,omitempty"` // open-loop rows: the offered rate
	Calls      int           `json:"calls"`
	Window     time.Duration `json:"window_ns"`
	Lat        latencies     `json:"latency"`
	Outcomes   [3]int        `json:"outcomes,omitzero"` // allowed, denied by binding, other denials (Authorize rows)
	Errors     int           `json:"errors"`
	FirstErr   string        `json:"first_error,omitempty"`
	AegisCPU   time.Duration `json:"aegis_cpu_ns"`
	ChainCPU   time.Duration `json:"chainfire_cpu_ns"`
	LoadgenCPU time.Duration `json:"loadgen_cpu_ns"`
	OtherCPU   float64       `json:"other_cpu_percent"`
	AegisRSS   int64         `json:"aegis_rss_bytes"`
	// Metrics are deltas of Aegis's counters over the window.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

func (w *window) rate() float64 {
	if w.Window <= 0 {
		return 0
	}
	return float64(w.Calls) / w.Window.Seconds()
}

// perCall is a CPU time divided over the window's calls, in µs.
func (w *window) perCall(d time.Duration) float64 {
	if w.Calls == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(w.Calls)
}

// opFunc performs call i of one client and returns its outcome index
// (outAllowed, outDenied, outDefault) or -1 when there is none.
type opFunc func(ctx context.Context, client, i int) (int, error)

// Phases of a run of drive.
const (
	phaseWarmup = iota
	phaseMeasure
	phaseStop
)

// drive runs op in clients goroutines, back to back, for the warmup and
// then the measured window, and records every call that started and ended
// inside the window. CPU of Aegis, Chainfire and this process and the
// machine's total are sampled at the window's edges.
//
// With rate > 0 the load is open-loop: call n is due at start + n/rate,
// whichever client is free takes it, and its latency counts from when it
// was due, so a server that falls behind shows the queueing in its
// latency instead of silently getting fewer calls (coordinated
// omission). The clients then only bound the calls in flight.
func (b *bench) drive(ctx context.Context, kind, label string, clients, conns int, rate float64, op opFunc) (*window, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var phase atomic.Int32
	var ticket atomic.Int64
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	start := time.Now()
	type worker struct {
		lat      []time.Duration
		outcomes [3]int
		errors   int
		firstErr error
	}
	ws := make([]worker, clients)
	var wg sync.WaitGroup
	for k := range clients {
		wg.Go(func() {
			w := &ws[k]
			w.lat = make([]time.Duration, 0, 1<<14)
			// Clients start at different points of the request list, so
			// they do not ask the same thing at the same moment.
			for i := k * 7919; ; i++ {
				var due time.Time
				if interval > 0 {
					due = start.Add(time.Duration(ticket.Add(1)-1) * interval)
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				ph := phase.Load()
				if ph == phaseStop || lctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if interval > 0 {
					t0 = due
				}
				o, err := op(lctx, k, i)
				el := time.Since(t0)
				if ph != phaseMeasure || phase.Load() != phaseMeasure {
					continue
				}
				if err != nil {
					w.errors++
					if w.firstErr == nil {
						w.firstErr = err
					}
					continue
				}
				w.lat = append(w.lat, el)
				if o >= 0 {
					w.outcomes[o]++
				}
			}
		})
	}
	select {
	case <-time.After(b.cfg.warmup):
	case <-ctx.Done():
	}
	pids := []int{b.st.aegis.pid(), b.st.cf.pid()}
	metricsURL := "http://" + b.st.httpAddr + "/metrics"
	m0, _ := scrape(ctx, metricsURL)
	var att *attached
	if b.cfg.attach != "" {
		var err error
		out := filepath.Join(b.cfg.attachDir, fileSafe(label)+".attach")
		if att, err = startAttached(b.cfg.attach, b.st.aegis.pid(), out); err != nil {
			phase.Store(phaseStop)
			wg.Wait()
			return nil, err
		}
	}
	before := sampleCPU(pids...)
	phase.Store(phaseMeasure)
	select {
	case <-time.After(b.cfg.duration):
	case <-ctx.Done():
	}
	phase.Store(phaseStop)
	after := sampleCPU(pids...)
	if att != nil {
		att.stop()
	}
	res := &window{Kind: kind, Label: label, Clients: clients, Conns: conns, Rate: rate, Window: after.at.Sub(before.at),
		AegisCPU: procDelta(before, after, 0), ChainCPU: procDelta(before, after, 1), LoadgenCPU: after.self - before.self,
		OtherCPU: otherCPUPercent(before, after), AegisRSS: procRSS(b.st.aegis.pid())}
	m1, _ := scrape(ctx, metricsURL)
	if m0 != nil && m1 != nil {
		res.Metrics = map[string]float64{}
		for k, v := range m1 {
			res.Metrics[k] = v - m0[k]
		}
	}
	// Let the calls in flight finish (they are not counted): cancelling
	// them would only make the server log failed requests.
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all []time.Duration
	for i := range ws {
		w := &ws[i]
		all = append(all, w.lat...)
		for o := range w.outcomes {
			res.Outcomes[o] += w.outcomes[o]
		}
		res.Errors += w.errors
		if res.FirstErr == "" && w.firstErr != nil {
			res.FirstErr = w.firstErr.Error()
		}
	}
	res.Calls = len(all)
	res.Lat = summarize(all)
	b.lg.Info("window done", "row", label, "clients", clients, "per_s", fmt.Sprintf("%.0f", res.rate()),
		"p50", res.Lat.P50, "p99", res.Lat.P99, "errors", res.Errors,
		"aegis_cpu_us_per_call", fmt.Sprintf("%.1f", res.perCall(res.AegisCPU)), "other_cpu", fmt.Sprintf("%.0f%%", res.OtherCPU))
	return res, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileSafe(s string) string { return unsafeChars.ReplaceAllString(s, "_") }
