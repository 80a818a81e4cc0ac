// Command fdserve serves zone files with FlashDNS's query path
// (internal/flashdns/zone and internal/flashdns/dnsserver) and nothing
// else: no Chainfire, no API. bench/flashdns runs it as its own process,
// as it runs NSD and Knot, so that every server's CPU and memory are
// accounted apart from the load generator's. It stands in for bin/flashdns
// until that binary can serve a zone file directly; bench/flashdns's
// -flashdns-cmd switches to any other command.
//
//	fdserve -addr 127.0.0.1:5300 -zone example.com.=example.com.zone [-zone ...]
//
// Once the zones are loaded, before it binds its sockets, it prints one
// line,
//
//	loaded zones=2 records=10234 heap_live_bytes=4194304
//
// (heap_live_bytes is the Go heap after a GC with the zones loaded: what
// the zones occupy), so the line is in its output by the time it answers.
// It serves until SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/photoncloud/photoncloud/internal/flashdns/dnsserver"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

type zoneFlags []string

func (z *zoneFlags) String() string     { return strings.Join(*z, ",") }
func (z *zoneFlags) Set(v string) error { *z = append(*z, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "fdserve: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var zones zoneFlags
	addr := flag.String("addr", "127.0.0.1:5300", "UDP and TCP address to answer on")
	sockets := flag.Int("sockets", 0, "SO_REUSEPORT sockets per protocol (0: dnsserver's default, one per GOMAXPROCS)")
	flag.Var(&zones, "zone", "origin=zonefile to serve (repeatable)")
	flag.Parse()
	if len(zones) == 0 {
		return errors.New("no -zone given")
	}
	var snaps []*zone.Snapshot
	records := 0
	for _, z := range zones {
		origin, file, ok := strings.Cut(z, "=")
		if !ok {
			return fmt.Errorf("-zone %q: want origin=file", z)
		}
		s, err := load(origin, file)
		if err != nil {
			return err
		}
		records += s.Len()
		snaps = append(snaps, s)
	}
	table := zone.NewTable(snaps...)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("loaded zones=%d records=%d heap_live_bytes=%d\n", len(snaps), records, ms.HeapAlloc)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := dnsserver.Start(ctx, dnsserver.Config{
		Addrs:          []string{*addr},
		SocketsPerAddr: *sockets,
		Zones:          func() *zone.Table { return table },
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// Metrics are counted as in production (the cost is part of the
		// query path) but nobody scrapes them here.
		Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		return fmt.Errorf("start dns server: %w", err)
	}
	<-ctx.Done()
	return srv.Close()
}

func load(origin, file string) (*zone.Snapshot, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("open zone: %w", err)
	}
	defer f.Close()
	d, err := zone.ParseZoneFile(f, origin, 3600)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	s, err := zone.Build(d)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", origin, err)
	}
	return s, nil
}
