package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const testZone = `$ORIGIN example.test.
$TTL 300
@    IN SOA ns1 hostmaster %d 3600 900 604800 60
@    NS  ns1
ns1  A   192.0.2.1
www  A   192.0.2.2
`

func writeZone(t *testing.T, serial uint32) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "example.test.zone")
	if err := os.WriteFile(p, fmt.Appendf(nil, testZone, serial), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNSDPrimary(t *testing.T) {
	n := StartNSD(t, NSDConfig{Zones: []NSDZone{{Name: "example.test", ZoneFile: writeZone(t, 7)}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r, err := query(ctx, n.Addr(), "udp", "WWW.example.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		t.Fatalf("www A: %v", r)
	}
	rrs, err := n.AXFR(ctx, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	// SOA, NS, 2 A, SOA.
	if len(rrs) != 5 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[4].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("axfr: %v", rrs)
	}
	out, err := n.Control("zonestatus", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "state: primary") && !strings.Contains(out, "state: master") {
		t.Errorf("zonestatus: %s", out)
	}
}

// TestNSDSecondary runs NSD as a secondary of a small primary written here
// with miekg/dns, TSIG on the transfer and the NOTIFY: the same exchange
// FlashDNS's tests drive, so this pins what NSD 4.6 needs from a primary.
func TestNSDSecondary(t *testing.T) {
	key := &TSIGKey{Name: "xfr-key.", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="}
	for _, axfrOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("axfrOnly=%v", axfrOnly), func(t *testing.T) {
			p := startPrimary(t, key, 1)
			n := StartNSD(t, NSDConfig{Zones: []NSDZone{{
				Name: "example.test", Primary: p.addr, TSIG: key, AXFROnly: axfrOnly,
			}}})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := n.WaitSerial(ctx, "example.test", 1); err != nil {
				t.Fatal(err)
			}
			p.setSerial(2)
			if err := SendNotify(ctx, n.Addr(), "example.test", key); err != nil {
				t.Fatal(err)
			}
			if _, err := n.WaitSerial(ctx, "example.test", 2); err != nil {
				t.Fatal(err)
			}
			rrs, err := n.AXFR(ctx, "example.test")
			if err != nil {
				t.Fatal(err)
			}
			if len(rrs) != 5 || rrs[0].(*dns.SOA).Serial != 2 {
				t.Fatalf("axfr after notify: %v", rrs)
			}
			if !p.signed() {
				t.Error("NSD's transfer requests were not TSIG-signed")
			}
		})
	}
}

// primary is a minimal TSIG-checking AXFR primary.
type primary struct {
	addr string
	mu   sync.Mutex
	ser  uint32
	sig  bool
}

func (p *primary) setSerial(s uint32) { p.mu.Lock(); p.ser = s; p.mu.Unlock() }
func (p *primary) signed() bool       { p.mu.Lock(); defer p.mu.Unlock(); return p.sig }

func startPrimary(t *testing.T, key *TSIGKey, serial uint32) *primary {
	t.Helper()
	p := &primary{ser: serial}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	srv := &dns.Server{Listener: l, TsigSecret: map[string]string{key.Name: key.Secret}}
	srv.Handler = dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		t.Logf("primary: %s %s over %s, tsig=%v", dns.OpcodeToString[req.Opcode], dns.TypeToString[req.Question[0].Qtype], w.RemoteAddr().Network(), req.IsTsig() != nil)
		tsig := req.IsTsig()
		if tsig == nil || w.TsigStatus() != nil {
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeRefused)
			_ = w.WriteMsg(m)
			return
		}
		p.mu.Lock()
		p.sig = true
		ser := p.ser
		p.mu.Unlock()
		zp := dns.NewZoneParser(strings.NewReader(fmt.Sprintf(testZone, ser)), "", "")
		var rrs []dns.RR
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			rrs = append(rrs, rr)
		}
		switch req.Question[0].Qtype {
		case dns.TypeAXFR, dns.TypeIXFR:
			// IXFR answered with the full zone is allowed (RFC 1995 4).
			ch := make(chan *dns.Envelope, 1)
			ch <- &dns.Envelope{RR: append(rrs, rrs[0])}
			close(ch)
			tr := new(dns.Transfer)
			tr.TsigSecret = map[string]string{key.Name: key.Secret}
			_ = tr.Out(w, req, ch)
		case dns.TypeSOA:
			m := new(dns.Msg)
			m.SetReply(req)
			m.Authoritative = true
			m.Answer = rrs[:1]
			m.SetTsig(key.Name, dns.HmacSHA256, 300, time.Now().Unix())
			_ = w.WriteMsg(m)
		default:
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeNotImplemented)
			_ = w.WriteMsg(m)
		}
	})
	// NSD 4.6 transfers over TCP only: AXFR while it holds nothing, then
	// IXFR (current SOA in the authority section) after a NOTIFY.
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return p
}

func TestKnot(t *testing.T) {
	k := StartKnot(t, KnotConfig{Zones: map[string]string{"example.test": writeZone(t, 3)}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := query(ctx, k.Addr(), "tcp", "www.example.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		t.Fatalf("www A: %v", r)
	}
}
