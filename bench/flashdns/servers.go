package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// Server names (the -servers flag).
const (
	srvNSD      = "nsd"
	srvKnot     = "knot"
	srvFlashDNS = "flashdns"
	// srvChainfire is not a -servers name: it is FlashDNS's store, started
	// with it and reported beside it.
	srvChainfire = "chainfire"
)

// zoneFile is one zone a server is started with.
type zoneFile struct {
	origin, file string
}

// server is one DNS server under test, running as its own process group.
type server struct {
	name string
	addr string
	pgid int
	stop func() error
	// storePgid is the process group of the server's store, whose CPU is
	// reported apart (FlashDNS's Chainfire); 0 for none.
	storePgid int
}

// starter starts a server on the zones, with its files under dir.
type starter func(ctx context.Context, zones []zoneFile, dir string) (*server, error)

func (c *config) starter(name string) (starter, error) {
	switch name {
	case srvNSD:
		return c.startNSD, nil
	case srvKnot:
		return c.startKnot, nil
	case srvFlashDNS:
		return c.startFlashDNS, nil
	}
	return nil, fmt.Errorf("unknown server %q (have nsd, knot, flashdns)", name)
}

// startNSD runs NSD with its defaults (testenv's config: no chroot, state
// in dir, rate limiting off) and server-count -nsd-servers.
func (c *config) startNSD(_ context.Context, zones []zoneFile, dir string) (*server, error) {
	var nz []testenv.NSDZone
	for _, z := range zones {
		nz = append(nz, testenv.NSDZone{Name: z.origin, ZoneFile: z.file})
	}
	n, err := testenv.LaunchNSD(testenv.NSDConfig{Dir: dir, Zones: nz, ServerCount: c.nsdServers, XFRDReloadTimeout: -1})
	if err != nil {
		return nil, err
	}
	return &server{name: srvNSD, addr: n.Addr(), pgid: n.Pid(), stop: n.Close}, nil
}

// startKnot runs knotd with -knot-workers UDP workers.
func (c *config) startKnot(_ context.Context, zones []zoneFile, dir string) (*server, error) {
	files := map[string]string{}
	for _, z := range zones {
		files[z.origin] = z.file
	}
	k, err := testenv.LaunchKnot(testenv.KnotConfig{Dir: dir, Zones: files, UDPWorkers: c.knotWorkers, TCPWorkers: 1})
	if err != nil {
		return nil, err
	}
	return &server{name: srvKnot, addr: k.Addr(), pgid: k.Pid(), stop: k.Close}, nil
}

// startFlashDNS runs the product: bin/chainfire and bin/flashdns (from
// -bin-dir) as their own process groups, imports the zones through the
// flashdns.v1 API and returns once DNS answers every imported serial. The
// measured process is FlashDNS's; Chainfire's CPU is reported apart.
func (c *config) startFlashDNS(ctx context.Context, zones []zoneFile, dir string) (*server, error) {
	st, err := c.startStack(ctx, c.lg, dir)
	if err != nil {
		return nil, err
	}
	if _, err := st.importZones(ctx, zones, false); err != nil {
		st.stop(c.lg)
		return nil, fmt.Errorf("%w; flashdns log tail:\n%s", err, st.fd.logTail())
	}
	return &server{name: srvFlashDNS, addr: st.dnsAddr, pgid: st.fd.pid(), storePgid: st.cf.pid(),
		stop: func() error { st.stop(c.lg); return nil }}, nil
}

// versionOf is the first line of a server's version output plus the start
// of its binary's SHA-256, so a report can be traced to what it measured.
func versionOf(name string, c *config) string {
	var bin string
	var args []string
	switch name {
	case srvNSD:
		bin, _ = testenv.FindNSD()
		args = []string{"-v"}
	case srvKnot:
		bin, _ = testenv.FindKnot()
		args = []string{"-V"}
	case srvFlashDNS, srvChainfire:
		return binaryID(filepath.Join(c.binDir, name))
	}
	if bin == "" {
		return "not found"
	}
	out, _ := exec.Command(bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if b, err := os.ReadFile(bin); err == nil {
		sum := sha256.Sum256(b)
		line += fmt.Sprintf(" (%s, sha256 %x)", bin, sum[:6])
	}
	return line
}
