package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/test/testenv"
)

// benchProject is the project every zone is imported into. All zones go
// into one project: the rule zones include sub.example.com, nested in
// example.com, which FlashDNS allows only within a project.
const benchProject = "orgs/bench/projects/dns"

// Timeouts of the FlashDNS stack. An import of the 100k-record zone is a
// few hundred Chainfire transactions, each fsynced, on a shared machine.
const (
	readyTimeout  = time.Minute
	importTimeout = 5 * time.Minute
)

// fdStack is the product as deployed: a single-member bin/chainfire and a
// bin/flashdns replica on it (--auth none: the API's authorization is not
// what is measured), each its own process group, with the zones imported
// through the flashdns.v1 API.
type fdStack struct {
	cf, fd   *process
	cfClient string // Chainfire's client (etcd API) address
	cfHTTP   string // Chainfire's HTTP listener (/readyz, /metrics)
	dnsAddr  string
	grpcAddr string
	fdHTTP   string // FlashDNS's HTTP listener (/readyz, /metrics)
	conn     *grpc.ClientConn
	api      flashdnsv1.ZoneServiceClient
	dir      string
	starts   int // FlashDNS starts so far, to name their logs
}

// startStack starts Chainfire with its data under dir, then FlashDNS on
// it, and waits until FlashDNS is ready (it serves HTTP only once its
// store has loaded every zone from Chainfire and DNS answers).
func (c *config) startStack(ctx context.Context, lg *slog.Logger, dir string) (*fdStack, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("stack dir: %w", err)
	}
	s := &fdStack{dir: dir}
	ok := false
	defer func() {
		if !ok {
			s.stop(lg)
		}
	}()
	if err := s.startChainfire(ctx, c, dir); err != nil {
		return nil, err
	}
	if err := s.startFlashDNS(ctx, lg, c); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// restartFlashDNS stops FlashDNS and starts a new process on the same
// Chainfire, which loads every zone from there: a replica that did not
// write the zones itself.
func (s *fdStack) restartFlashDNS(ctx context.Context, lg *slog.Logger, c *config) error {
	_ = s.conn.Close()
	s.conn = nil
	if err := s.fd.stop(); err != nil {
		return err
	}
	return s.startFlashDNS(ctx, lg, c)
}

// startFlashDNS starts FlashDNS, waits until it is ready and dials its
// API. The DNS port is picked free for TCP; its UDP twin may be taken, so
// a start that lost that race is retried on new ports.
func (s *fdStack) startFlashDNS(ctx context.Context, lg *slog.Logger, c *config) error {
	for attempt := 0; ; attempt++ {
		err := s.launchFlashDNS(ctx, c)
		if err == nil {
			break
		}
		if attempt >= 2 || s.fd == nil || !bytes.Contains(readFile(s.fd.logPath), []byte("address already in use")) {
			return err
		}
		lg.Info("flashdns lost the race for its ports; retrying on new ones")
	}
	cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		// ImportZone takes zone files of up to 16 MiB.
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(17<<20)))
	if err != nil {
		return fmt.Errorf("dial flashdns: %w", err)
	}
	s.conn, s.api = cc, flashdnsv1.NewZoneServiceClient(cc)
	return nil
}

func (s *fdStack) startChainfire(ctx context.Context, c *config, dir string) error {
	ports, err := testenv.FreePorts(3)
	if err != nil {
		return err
	}
	s.cfClient = fmt.Sprintf("127.0.0.1:%d", ports[0])
	client := "http://" + s.cfClient
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	s.cfHTTP = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	s.cf, err = startProcess("chainfire", filepath.Join(c.binDir, "chainfire"), []string{
		"--name", "bench", "--data-dir", filepath.Join(dir, "chainfire"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench=" + peer, "--initial-cluster-state", "new",
		"--listen-http-urls", s.cfHTTP,
		"--log-level", "warn",
	}, filepath.Join(dir, "chainfire.log"))
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.cf, s.cfHTTP+"/readyz", readyTimeout); err != nil {
		return fmt.Errorf("chainfire not ready: %w; log tail:\n%s", err, s.cf.logTail())
	}
	return nil
}

func (s *fdStack) launchFlashDNS(ctx context.Context, c *config) error {
	if s.fd != nil {
		_ = s.fd.stop() // a failed attempt, or stopped already
	}
	ports, err := testenv.FreePorts(3)
	if err != nil {
		return err
	}
	s.dnsAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.grpcAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	s.fdHTTP = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	s.fd, err = startProcess("flashdns", filepath.Join(c.binDir, "flashdns"), []string{
		"--auth", "none",
		"--chainfire-endpoints", s.cfClient,
		"--dns-addrs", s.dnsAddr,
		"--dns-sockets", strconv.Itoa(c.fdSockets),
		"--listen-grpc-urls", "http://" + s.grpcAddr,
		"--listen-http-urls", s.fdHTTP,
		"--log-level", "warn",
	}, filepath.Join(s.dir, fmt.Sprintf("flashdns-%d.log", s.starts)))
	s.starts++
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.fd, s.fdHTTP+"/readyz", readyTimeout); err != nil {
		return fmt.Errorf("flashdns not ready: %w; log tail:\n%s", err, s.fd.logTail())
	}
	return nil
}

// importZones imports every zone through the API (ImportZone, parents
// before children, as given) and waits until DNS answers each zone's SOA
// with the serial the import acknowledged. With replace, existing zones
// of those names are replaced. It returns the serials.
func (s *fdStack) importZones(ctx context.Context, zones []zoneFile, replace bool) (map[string]uint32, error) {
	ctx, cancel := context.WithTimeout(ctx, importTimeout)
	defer cancel()
	serials := map[string]uint32{}
	for _, z := range zones {
		text, err := os.ReadFile(z.file)
		if err != nil {
			return nil, err
		}
		got, err := s.api.ImportZone(ctx, &flashdnsv1.ImportZoneRequest{
			Parent: benchProject, DnsName: z.origin, ZoneFile: string(text), ReplaceExisting: replace})
		if err != nil {
			return nil, fmt.Errorf("import %s through the API: %w", z.origin, err)
		}
		serials[z.origin] = got.GetSerial()
	}
	return serials, waitSerials(ctx, s.dnsAddr, serials, s.fd.exited)
}

// waitSerials polls until every zone answers its SOA authoritatively with
// the given serial.
func waitSerials(ctx context.Context, addr string, serials map[string]uint32, exited <-chan struct{}) error {
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	for {
		var err error
		for origin, want := range serials {
			m := new(dns.Msg)
			m.SetQuestion(origin, dns.TypeSOA)
			var r *dns.Msg
			if r, _, err = c.ExchangeContext(ctx, m, addr); err != nil {
				break
			}
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
				err = fmt.Errorf("%s SOA: %s, %d answers", origin, dns.RcodeToString[r.Rcode], len(r.Answer))
				break
			}
			if soa, ok := r.Answer[0].(*dns.SOA); !ok || soa.Serial != want {
				err = fmt.Errorf("%s SOA: %v, want serial %d", origin, r.Answer[0], want)
				break
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("flashdns exited")
		case <-ctx.Done():
			return fmt.Errorf("DNS does not answer the imported serials: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procMemory is one process's memory at one moment.
type procMemory struct {
	pss, rss int64
	// heap is the Go heap in use (spans holding objects, live or not yet
	// collected); live estimates the live heap at the last GC. -1: not
	// known.
	heap, live int64
}

// sampleMemory reads a process's PSS and RSS from /proc and its Go heap
// from its /metrics: go_memstats_heap_inuse_bytes, and the live heap at
// the last GC derived from the heap goal that GC set (goal = live × (1 +
// GOGC/100), stacks and globals aside, which the base subtracts). An
// idle Go process may not collect for two minutes, so the heap in use
// can hold much garbage from the import; the estimate does not.
func sampleMemory(ctx context.Context, p *process, httpURL string) procMemory {
	m := procMemory{heap: -1, live: -1}
	m.pss, m.rss = groupMemory(p.pid())
	g, err := scrapeGauges(ctx, httpURL+"/metrics", "go_memstats_heap_inuse_bytes", "go_memstats_next_gc_bytes", "go_gc_gogc_percent")
	if err != nil {
		return m
	}
	if v, ok := g["go_memstats_heap_inuse_bytes"]; ok {
		m.heap = int64(v)
	}
	if goal, ok := g["go_memstats_next_gc_bytes"]; ok {
		if pct, ok := g["go_gc_gogc_percent"]; ok && pct > 0 {
			m.live = int64(goal / (1 + pct/100))
		}
	}
	return m
}

// stop closes the API connection and stops FlashDNS, then Chainfire.
func (s *fdStack) stop(lg *slog.Logger) {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	for _, p := range []*process{s.fd, s.cf} {
		if p == nil {
			continue
		}
		if err := p.stop(); err != nil {
			lg.Warn("stop server", "server", p.name, "err", err)
		}
	}
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
