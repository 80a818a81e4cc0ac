package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsperf 2.10's output, verbatim apart from the trimmed answer lines.
const sampleOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 15360 -d q.txt -c 4 -q 50 -l 2 -v
[Status] Sending queries (to 127.0.0.1:15360)
[Status] Started at: Fri Nov 27 13:57:22 2026
[Status] Stopping after 2.000000 seconds
> NOERROR www.example.com A 0.000189
> NXDOMAIN nx.example.com A 0.000073
> T lost.example.com A
> NOERROR alias.example.com A 0.001050
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         383169
  Queries completed:    383168 (100.00%)
  Queries lost:         1 (0.00%)

  Response codes:       NOERROR 287377 (75.00%), NXDOMAIN 95791 (25.00%)
  Average packet size:  request 34, response 141
  Run time (s):         2.000182
  Queries per second:   191567.067397

  Average Latency (s):  0.000191 (min 0.000006, max 0.002156)
  Latency StdDev (s):   0.000082

`

func TestParseDnsperf(t *testing.T) {
	var rest bytes.Buffer
	lats, err := scanOutput(strings.NewReader(sampleOutput), &rest)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{189 * time.Microsecond, 73 * time.Microsecond, 1050 * time.Microsecond}
	if len(lats) != len(want) {
		t.Fatalf("latencies %v, want %v", lats, want)
	}
	for i := range want {
		if d := lats[i] - want[i]; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("latency %d = %v, want %v", i, lats[i], want[i])
		}
	}
	r, err := parseStats(rest.String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 383169 || r.Completed != 383168 || r.Lost != 1 || int(r.QPS) != 191567 {
		t.Errorf("counts: %+v", r)
	}
	if r.AvgLat != 191*time.Microsecond || r.MinLat != 6*time.Microsecond || r.MaxLat != 2156*time.Microsecond || r.StdDevLat != 82*time.Microsecond {
		t.Errorf("latencies: avg %v min %v max %v sd %v", r.AvgLat, r.MinLat, r.MaxLat, r.StdDevLat)
	}
	if r.Rcodes["NOERROR"] != 287377 || r.Rcodes["NXDOMAIN"] != 95791 {
		t.Errorf("rcodes: %v", r.Rcodes)
	}
	if _, err := parseStats("[Status] nothing\n"); err == nil {
		t.Error("output without statistics parsed")
	}
}

func TestSummarizeNearestRank(t *testing.T) {
	var l []time.Duration
	for i := 100; i >= 1; i-- {
		l = append(l, time.Duration(i))
	}
	s := summarize(l)
	if s.P50 != 50 || s.P99 != 99 || s.P999 != 100 || s.Max != 100 || s.N != 100 {
		t.Errorf("%+v", s)
	}
}

// The generated zone must parse, hold the records genZone counts, and the
// query file must only ask for names of the zone or of the rule zones.
func TestGeneratedZoneAndQueries(t *testing.T) {
	dir := t.TempDir()
	zp := filepath.Join(dir, "z")
	n, err := genZone(zp, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(zp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := dns.NewZoneParser(f, "", "")
	got := 0
	for _, ok := parser.Next(); ok; _, ok = parser.Next() {
		got++
	}
	if err := parser.Err(); err != nil || got != n {
		t.Fatalf("zone: %d records parsed (err %v), genZone said %d", got, err, n)
	}
	_, rules, err := ruleQueries("../../test/dnsdiff")
	if err != nil {
		t.Fatal(err)
	}
	qp := filepath.Join(dir, "q")
	kinds, err := genQueries(qp, 1000, 100, rules)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(qp)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 990 || kinds["rules"] == 0 || kinds["nxdomain"] == 0 {
		t.Fatalf("%d lines, kinds %v", len(lines), kinds)
	}
	for _, l := range lines {
		name, typ, ok := strings.Cut(l, " ")
		if _, known := dns.StringToType[typ]; !ok || !known {
			t.Fatalf("bad line %q", l)
		}
		if _, ok := dns.IsDomainName(name); !ok {
			t.Fatalf("bad name in %q", l)
		}
	}
}

// The memory zone's 100k records must fit FlashDNS's limit of 100,000
// record sets per zone (SOA and apex NS included), or its import fails.
func TestMemoryZoneFitsRecordSetLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "z")
	n, err := genRecordsZone(path, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type key struct {
		name string
		typ  uint16
	}
	sets := map[key]bool{}
	records := 0
	parser := dns.NewZoneParser(f, "", "")
	for rr, ok := parser.Next(); ok; rr, ok = parser.Next() {
		sets[key{rr.Header().Name, rr.Header().Rrtype}] = true
		records++
	}
	if err := parser.Err(); err != nil || records != n {
		t.Fatalf("%d records parsed (err %v), genRecordsZone said %d", records, err, n)
	}
	if n < 99_000 || n > 101_000 || len(sets) >= 100_000 {
		t.Errorf("%d records in %d record sets; want about 100k records in fewer than 100,000 sets", n, len(sets))
	}
}
