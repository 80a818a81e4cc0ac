package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/test/dnsdiff"
)

// benchOrigin is the generated zone's name.
const benchOrigin = "bench.test."

// genZone writes a zone of n host names to path and returns the number of
// records. Each host-<i> has an A record; every 2nd an AAAA, every 5th a
// TXT, every 10th an MX pointing at another host; alias-<i> (n/10 of them)
// are CNAMEs to hosts; *.wild has an A and a TXT. It is shaped like a
// tenant's zone: mostly addresses, some aliases, a wildcard. With
// roundRobin > 0, every roundRobin-th host has a second A record.
func genZone(path string, n, roundRobin int) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("create zone: %w", err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "$ORIGIN %s\n$TTL 3600\n", benchOrigin)
	fmt.Fprintf(w, "@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\n@ NS ns2\nns1 A 192.0.2.1\nns2 A 192.0.2.2\n")
	records := 5
	for i := range n {
		fmt.Fprintf(w, "host-%d A 10.%d.%d.%d\n", i, i>>16&255, i>>8&255, i&255)
		records++
		if roundRobin > 0 && i%roundRobin == 0 {
			fmt.Fprintf(w, "host-%d A 10.%d.%d.%d\n", i, 128|i>>16&255, i>>8&255, i&255)
			records++
		}
		if i%2 == 0 {
			fmt.Fprintf(w, "host-%d AAAA 2001:db8::%x:%x\n", i, i>>16, i&0xffff)
			records++
		}
		if i%5 == 0 {
			fmt.Fprintf(w, "host-%d TXT \"v=host %d\"\n", i, i)
			records++
		}
		if i%10 == 0 {
			fmt.Fprintf(w, "host-%d MX 10 host-%d\n", i, (i+1)%n)
			records++
		}
	}
	for i := range n / 10 {
		fmt.Fprintf(w, "alias-%d CNAME host-%d\n", i, (i*7)%n)
		records++
	}
	fmt.Fprintf(w, "*.wild A 192.0.2.100\n*.wild TXT \"wildcard\"\n")
	records += 2
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, fmt.Errorf("write zone: %w", err)
	}
	return records, f.Close()
}

// genRecordsZone writes a zone of about records records with genZone's
// shape (for the memory measurement) and returns the exact count. Every
// 10th host has two addresses: with one record per set, 100k records
// would be just over FlashDNS's limit of 100,000 record sets per zone.
func genRecordsZone(path string, records int) (int, error) {
	// About 2 records per host (1 + 1/10 + 1/2 + 1/5 + 1/10 + 1/10
	// alias) in 1.9 record sets.
	return genZone(path, max(1, records/2), 10)
}

// minimalZone is the baseline of the memory measurement: SOA, NS and the
// name server's address (minimalRecords records).
const minimalZone = "$ORIGIN " + benchOrigin + "\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n"

const minimalRecords = 3

// mixShare is one kind of query in the dnsperf file and its share.
type mixShare struct {
	kind  string
	share float64
}

// queryMix is the default mix: mostly answers, with the negative and
// indirect cases a real zone sees.
var queryMix = []mixShare{
	{"hit", 0.55},      // host-<i> A/AAAA/TXT/MX
	{"nxdomain", 0.15}, // nonexistent names
	{"cname", 0.10},    // alias-<i> A: the CNAME and its target
	{"wildcard", 0.10}, // <random>.wild A/TXT
	{"nodata", 0.05},   // host-<i> SRV
	{"rules", 0.05},    // the dnsdiff corpus (UDP, no EDNS): every answer rule
}

// genQueries writes a dnsperf query file of lines queries ("name TYPE" per
// line) for a zone made by genZone(n), mixed per queryMix, and returns how
// many of each kind it wrote. The order is random (fixed seed), so that a
// run does not walk the zone in order.
func genQueries(path string, lines, n int, rules []dnsdiff.Query) (map[string]int, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	var out []string
	for _, m := range queryMix {
		k := int(m.share * float64(lines))
		if m.kind == "rules" && len(rules) == 0 {
			continue
		}
		for range k {
			var q string
			switch m.kind {
			case "hit":
				i := rng.IntN(n)
				t := "A"
				switch r := rng.IntN(10); {
				case r < 2 && i%2 == 0:
					t = "AAAA"
				case r == 2 && i%5 == 0:
					t = "TXT"
				case r == 3 && i%10 == 0:
					t = "MX"
				}
				q = fmt.Sprintf("host-%d.%s %s", i, benchOrigin, t)
			case "nxdomain":
				q = fmt.Sprintf("nx-%d.%s A", rng.IntN(1<<30), benchOrigin)
			case "cname":
				q = fmt.Sprintf("alias-%d.%s A", rng.IntN(max(1, n/10)), benchOrigin)
			case "wildcard":
				t := "A"
				if rng.IntN(4) == 0 {
					t = "TXT"
				}
				q = fmt.Sprintf("w%d.wild.%s %s", rng.IntN(1<<30), benchOrigin, t)
			case "nodata":
				q = fmt.Sprintf("host-%d.%s SRV", rng.IntN(n), benchOrigin)
			case "rules":
				r := rules[rng.IntN(len(rules))]
				q = r.Name + " " + dns.TypeToString[r.Type]
			}
			out = append(out, q)
			counts[m.kind]++
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write query file: %w", err)
	}
	return counts, nil
}

// ruleQueries are the dnsdiff corpus's plain UDP queries (no EDNS; dnsperf
// sets EDNS for all or none).
func ruleQueries(dir string) ([]dnsdiff.Zone, []dnsdiff.Query, error) {
	zones, err := dnsdiff.RuleZones(dir)
	if err != nil {
		return nil, nil, err
	}
	corpus, err := dnsdiff.Corpus(zones)
	if err != nil {
		return nil, nil, err
	}
	var qs []dnsdiff.Query
	for _, q := range corpus {
		if !q.TCP && !q.EDNS {
			qs = append(qs, q)
		}
	}
	return zones, qs, nil
}
