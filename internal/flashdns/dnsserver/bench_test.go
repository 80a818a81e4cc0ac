package dnsserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkHandler measures the query path without sockets: parse, zone
// lookup, pack. The steady state should not allocate.
func BenchmarkHandler(b *testing.B) {
	h := newTestHandler(b)
	w := newWorker(h)
	cases := []struct {
		name string
		m    *dns.Msg
	}{
		{"A", query("www.example.com.", dns.TypeA)},
		{"A-edns", queryEDNS("www.example.com.", dns.TypeA, 1232, true)},
		{"NXDOMAIN", query("nope.example.com.", dns.TypeA)},
		{"MX-glue-edns", queryEDNS("mx.example.com.", dns.TypeMX, 1232, false)},
		{"referral", query("a.sub.example.com.", dns.TypeA)},
		{"REFUSED", query("www.example.org.", dns.TypeA)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := mustPack(b, c.m)
			t := &transport{remote: netip.MustParseAddr("127.0.0.1")}
			if w.serve(req, t) == nil {
				b.Fatal("no answer")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w.serve(req, t)
			}
		})
	}
}

// BenchmarkUDPRoundTrip measures one query over loopback UDP, client
// included (a raw connected socket, so the client adds little).
func BenchmarkUDPRoundTrip(b *testing.B) {
	s := startTest(b, nil)
	c, err := net.Dial("udp", s.udp)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := mustPack(b, query("www.example.com.", dns.TypeA))
	buf := make([]byte, 2048)
	c.SetDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUDPParallel keeps several clients busy to show throughput over
// the SO_REUSEPORT sockets.
func BenchmarkUDPParallel(b *testing.B) {
	s := startTest(b, nil)
	req := mustPack(b, query("www.example.com.", dns.TypeA))
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp", s.udp)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, 2048)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
