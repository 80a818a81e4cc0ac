package dnsserver

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// notifyListener is a secondary stand-in: it records NOTIFYs and answers
// them (or not, or with an error) as told.
type notifyListener struct {
	t      *testing.T
	srv    *dns.Server
	addr   string
	mu     sync.Mutex
	got    []*dns.Msg
	tsigOK []bool
	ignore int // the first ignore NOTIFYs get no answer
	rcode  int
	ch     chan *dns.Msg
}

func startNotifyListener(t *testing.T, secrets map[string]string) *notifyListener {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &notifyListener{t: t, addr: pc.LocalAddr().String(), ch: make(chan *dns.Msg, 100)}
	l.srv = &dns.Server{PacketConn: pc, TsigSecret: secrets, Handler: dns.HandlerFunc(l.handle)}
	started := make(chan struct{})
	l.srv.NotifyStartedFunc = func() { close(started) }
	go l.srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { l.srv.Shutdown() })
	return l
}

func (l *notifyListener) handle(w dns.ResponseWriter, r *dns.Msg) {
	l.mu.Lock()
	l.got = append(l.got, r)
	l.tsigOK = append(l.tsigOK, r.IsTsig() != nil && w.TsigStatus() == nil)
	skip := len(l.got) <= l.ignore
	rcode := l.rcode
	l.mu.Unlock()
	l.ch <- r
	if skip {
		return
	}
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	if ts := r.IsTsig(); ts != nil && w.TsigStatus() == nil {
		m.SetTsig(ts.Hdr.Name, ts.Algorithm, 300, time.Now().Unix())
	}
	w.WriteMsg(m)
}

func (l *notifyListener) set(ignore, rcode int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ignore, l.rcode = ignore, rcode
}

func (l *notifyListener) wait(t *testing.T) *dns.Msg {
	t.Helper()
	select {
	case m := <-l.ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no NOTIFY received")
		return nil
	}
}

func (l *notifyListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

func serialZone(t testing.TB, serial int) *zone.Snapshot {
	return buildZone(t, "n.test.", "@ SOA ns.n.test. h.n.test. "+strconv.Itoa(serial)+" 60 60 600 60\n@ NS ns.n.test.\nns A 192.0.2.1\n")
}

// waitMetric polls a notify counter until it reaches want.
func waitMetric(t *testing.T, s *testServer, target, result string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if metricValue(s.h.m.notifies.WithLabelValues(target, result)) >= want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("notifies{%s,%s} = %v, want %v", target, result, metricValue(s.h.m.notifies.WithLabelValues(target, result)), want)
}

func TestNotifySent(t *testing.T) {
	l := startNotifyListener(t, nil)
	l2 := startNotifyListener(t, nil)
	s := startTest(t, func(c *Config) { c.NotifyTargets = []string{l.addr, l2.addr} })
	s.ZoneChanged(serialZone(t, 1), serialZone(t, 2))
	for _, l := range []*notifyListener{l, l2} {
		m := l.wait(t)
		if m.Opcode != dns.OpcodeNotify || !m.Authoritative || len(m.Question) != 1 ||
			m.Question[0].Name != "n.test." || m.Question[0].Qtype != dns.TypeSOA || len(m.Answer) != 1 ||
			m.Answer[0].(*dns.SOA).Serial != 2 {
			t.Fatalf("notify: %v", m)
		}
		waitMetric(t, s, l.addr, "ok", 1)
	}
	// Same serial: nothing to say. A new zone: notified.
	s.ZoneChanged(serialZone(t, 2), serialZone(t, 2))
	s.ZoneChanged(nil, buildZone(t, "other.test.", "@ SOA ns.other.test. h.other.test. 1 60 60 600 60\n@ NS ns.other.test.\nns A 192.0.2.1\n"))
	if m := l.wait(t); m.Question[0].Name != "other.test." {
		t.Fatalf("expected other.test., got %v", m)
	}
	time.Sleep(100 * time.Millisecond)
	if n := l.count(); n != 2 {
		t.Fatalf("%d NOTIFYs, want 2", n)
	}
}

func TestNotifyRetriesAndErrors(t *testing.T) {
	l := startNotifyListener(t, nil)
	l.set(2, dns.RcodeSuccess)
	s := startTest(t, func(c *Config) {
		c.NotifyTargets = []string{l.addr}
		c.NotifyTimeout = 50 * time.Millisecond
	})
	s.ZoneChanged(nil, serialZone(t, 5))
	waitMetric(t, s, l.addr, "ok", 1)
	if n := l.count(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	// A target that never answers: NotifyRetries attempts, then timeout.
	quiet := startNotifyListener(t, nil)
	quiet.set(1000, dns.RcodeSuccess)
	s2 := startTest(t, func(c *Config) {
		c.NotifyTargets = []string{quiet.addr}
		c.NotifyTimeout = 10 * time.Millisecond
		c.NotifyRetries = 3
	})
	s2.ZoneChanged(nil, serialZone(t, 5))
	waitMetric(t, s2, quiet.addr, "timeout", 1)
	if n := quiet.count(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	// An error rcode ends the round without retries.
	ref := startNotifyListener(t, nil)
	ref.set(0, dns.RcodeRefused)
	s3 := startTest(t, func(c *Config) { c.NotifyTargets = []string{ref.addr}; c.NotifyTimeout = 10 * time.Millisecond })
	s3.ZoneChanged(nil, serialZone(t, 5))
	waitMetric(t, s3, ref.addr, "error", 1)
	if n := ref.count(); n != 1 {
		t.Fatalf("%d attempts after REFUSED", n)
	}
	// Nobody listening (ICMP port unreachable): retried, then given up.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	s4 := startTest(t, func(c *Config) {
		c.NotifyTargets = []string{dead}
		c.NotifyTimeout = 10 * time.Millisecond
		c.NotifyRetries = 2
	})
	s4.ZoneChanged(nil, serialZone(t, 5))
	waitMetric(t, s4, dead, "timeout", 1)
}

func TestNotifyTSIG(t *testing.T) {
	secrets := map[string]string{"k256.": testSecret}
	l := startNotifyListener(t, secrets)
	s := startTest(t, func(c *Config) { c.NotifyTargets = []string{l.addr + " key K256."} })
	s.ZoneChanged(serialZone(t, 1), serialZone(t, 2))
	m := l.wait(t)
	waitMetric(t, s, l.addr, "ok", 1)
	l.mu.Lock()
	ok := l.tsigOK[0]
	l.mu.Unlock()
	if m.IsTsig() == nil || !ok {
		t.Fatalf("notify not validly signed: %v", m)
	}
	// A secondary with another secret: its BADSIG answer is an error.
	bad := startNotifyListener(t, map[string]string{"k256.": "b3RoZXJzZWNyZXQ="})
	s2 := startTest(t, func(c *Config) { c.NotifyTargets = []string{bad.addr + " key k256."} })
	s2.ZoneChanged(serialZone(t, 1), serialZone(t, 2))
	waitMetric(t, s2, bad.addr, "error", 1)
	// An unsigned answer to a signed NOTIFY is not trusted.
	unsigned := startNotifyListener(t, nil)
	s3 := startTest(t, func(c *Config) { c.NotifyTargets = []string{unsigned.addr + " key k256."} })
	s3.ZoneChanged(serialZone(t, 1), serialZone(t, 2))
	waitMetric(t, s3, unsigned.addr, "error", 1)
}

func TestNotifySupersededAndClose(t *testing.T) {
	l := startNotifyListener(t, nil)
	l.set(1, dns.RcodeSuccess) // the first NOTIFY (serial 2) is never answered
	s := startTest(t, func(c *Config) {
		c.NotifyTargets = []string{l.addr}
		c.NotifyTimeout = time.Hour
	})
	s.ZoneChanged(serialZone(t, 1), serialZone(t, 2))
	if m := l.wait(t); m.Answer[0].(*dns.SOA).Serial != 2 {
		t.Fatal(m)
	}
	// The newer serial cancels the round stuck waiting and is sent at once.
	s.ZoneChanged(serialZone(t, 2), serialZone(t, 3))
	if m := l.wait(t); m.Answer[0].(*dns.SOA).Serial != 3 {
		t.Fatal(m)
	}
	waitMetric(t, s, l.addr, "ok", 1)
	waitMetric(t, s, l.addr, "canceled", 1)
	// Close does not wait for pending retries.
	l.set(1000, dns.RcodeSuccess)
	s.ZoneChanged(serialZone(t, 3), serialZone(t, 4))
	l.wait(t)
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("close took %v", d)
	}
	// A deleted zone's pending NOTIFY is dropped.
	s2 := startTest(t, func(c *Config) { c.NotifyTargets = []string{l.addr}; c.NotifyTimeout = time.Hour })
	z := serialZone(t, 9)
	s2.ZoneChanged(nil, z)
	s2.ZoneChanged(z, nil)
	s2.Close()
}
