package dnsdiff

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// maxFullDiffs is how many failing queries are printed with both answers
// in full; the rest get the one-line-per-problem form.
const maxFullDiffs = 15

// startNSD serves the rule zones from NSD with its defaults (which the
// comparison is against), apart from what testenv must change to run it
// unprivileged in a temp dir.
func startNSD(t *testing.T, zones []Zone) Target {
	var nz []testenv.NSDZone
	for _, z := range zones {
		nz = append(nz, testenv.NSDZone{Name: z.Origin, ZoneFile: z.File})
	}
	n := testenv.StartNSD(t, testenv.NSDConfig{Zones: nz})
	return Target{Name: "nsd", UDP: n.Addr(), TCP: n.Addr()}
}

func ruleSetup(t *testing.T) ([]Zone, []Query) {
	t.Helper()
	zones, err := RuleZones(".")
	if err != nil {
		t.Fatal(err)
	}
	corpus, err := Corpus(zones)
	if err != nil {
		t.Fatal(err)
	}
	return zones, corpus
}

// report fails t with a readable diff per failing query.
func report(t *testing.T, res *Result) {
	t.Helper()
	t.Logf("%d queries, %d differ", res.Queries, len(res.Diffs))
	if len(res.Diffs) == 0 {
		return
	}
	var b strings.Builder
	for i, d := range res.Diffs {
		if i < maxFullDiffs {
			b.WriteString(d.Full())
		} else {
			b.WriteString(d.String())
		}
	}
	if p := os.Getenv("DNSDIFF_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Errorf("write %s: %v", p, err)
		}
	}
	t.Errorf("%d of %d queries differ:\n%s", len(res.Diffs), res.Queries, b.String())
}

func summary(res *Result) string {
	byWhy := map[string]int{}
	for _, d := range res.Diffs {
		byWhy[d.Query.Why]++
	}
	var b strings.Builder
	for w, n := range byWhy {
		fmt.Fprintf(&b, "  %4d  %s\n", n, w)
	}
	return b.String()
}

// TestFlashDNSMatchesNSD is the differential test of issue 5.
func TestFlashDNSMatchesNSD(t *testing.T) {
	zones, corpus := ruleSetup(t)
	nsd := startNSD(t, zones)
	fd := startFlashDNS(t, zones)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := Run(ctx, corpus, nsd, fd, 8)
	if len(res.Diffs) > 0 {
		t.Logf("differences by rule:\n%s", summary(res))
	}
	report(t, res)
}
