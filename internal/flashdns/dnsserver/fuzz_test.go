package dnsserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// newTestHandler builds the query handler without sockets.
func newTestHandler(t testing.TB) *handler {
	t.Helper()
	table := zone.NewTable(buildZone(t, "example.com.", exampleZone()), buildZone(t, "bigns.test.", bignsZone()),
		buildZone(t, "n.test.", "@ SOA ns.n.test. h.n.test. 5 60 60 600 60\n@ NS ns.n.test.\nns A 192.0.2.1\n"))
	st, err := newSettings(Config{
		Addrs:        []string{"127.0.0.1:0"},
		Zones:        func() *zone.Table { return table },
		TransferACL:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		TSIG:         []TSIGKey{{Name: "k256.", Secret: testSecret}},
		ChaosVersion: "v", ChaosID: "id",
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &handler{cfg: st, log: st.Logger, now: time.Now}
	h.m = newMetrics(st.Registry, st.Logger)
	return h
}

func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	add := func(m *dns.Msg) { seeds = append(seeds, mustPack(t, m)) }
	add(query("www.example.com.", dns.TypeA))
	add(queryEDNS("mx.example.com.", dns.TypeMX, 512, true))
	add(queryEDNS("a.sub.example.com.", dns.TypeA, 1232, false))
	m := queryEDNS("example.com.", dns.TypeSOA, 4096, false)
	m.IsEdns0().SetVersion(1)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: 100, Data: []byte{1, 2}})
	add(m)
	m = query("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	add(m)
	add(query("n.test.", dns.TypeAXFR))
	m = query("n.test.", dns.TypeIXFR)
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "n.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "a.", Mbox: "b.", Serial: 1}}
	add(m)
	m = query("www.example.com.", dns.TypeA)
	m.SetTsig("k256.", dns.HmacSHA256, 300, time.Now().Unix())
	b, _, err := dns.TsigGenerate(m, testSecret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	seeds = append(seeds, b)
	m = query("www.example.com.", dns.TypeA)
	m.Opcode = dns.OpcodeNotify
	add(m)
	return seeds
}

// checkResponse asserts what every answer must be: a well-formed message
// for the request's ID with QR set.
func checkResponse(t testing.TB, req, resp []byte) {
	if resp == nil {
		return
	}
	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("unparsable response %x to %x: %v", resp, req, err)
	}
	if !m.Response || m.Id != uint16(req[0])<<8|uint16(req[1]) {
		t.Fatalf("bad header in %v", m)
	}
}

// FuzzServeDNS feeds arbitrary packets to the query handler, over "UDP" and
// "TCP" (where transfers stream through a sink): it must not panic or hang,
// and whatever it answers must parse.
func FuzzServeDNS(f *testing.F) {
	h := newTestHandler(f)
	for _, s := range fuzzSeeds(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	w := newWorker(h)
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) {
		tr := &transport{tcp: tcp, remote: netip.MustParseAddr("127.0.0.1")}
		tr.send = func(msg []byte) error {
			checkResponse(t, pkt, msg[2:])
			return nil
		}
		resp := w.serve(pkt, tr)
		checkResponse(t, pkt, resp)
		if !tcp && len(resp) > 512 {
			// Without EDNS at most 512, with it at most our 1232.
			m := new(dns.Msg)
			if m.Unpack(pkt) == nil && m.IsEdns0() == nil && m.IsTsig() == nil {
				t.Fatalf("%d-byte UDP answer without EDNS", len(resp))
			}
			if len(resp) > 1232+tsigLenMax {
				t.Fatalf("%d-byte UDP answer", len(resp))
			}
		}
	})
}

// tsigLenMax bounds the TSIG RR of the fuzz key (k256., SHA-256).
const tsigLenMax = 100

func TestServeSeedsDirect(t *testing.T) {
	h := newTestHandler(t)
	w := newWorker(h)
	for _, s := range fuzzSeeds(t) {
		for _, tcp := range []bool{false, true} {
			tr := &transport{tcp: tcp, remote: netip.MustParseAddr("127.0.0.1"), send: func([]byte) error { return nil }}
			checkResponse(t, s, w.serve(s, tr))
		}
	}
}
