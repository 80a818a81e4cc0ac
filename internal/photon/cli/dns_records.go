package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

// maxTXTString is the longest character-string of a TXT record (RFC 1035
// §3.3): longer text is split into several strings.
const maxTXTString = 255

func newDNSRecordCommand(o *dnsOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "record",
		Aliases: []string{"records"},
		Short:   "Manage the record sets of a zone",
		Long: `record reads and changes the record sets of the zone --zone (which get
also takes as its first argument): all records of one owner name and type,
with one TTL. Owner names are relative to the zone (www, @ for the apex)
unless they end in a dot. Each record is one argument in zone-file form:
quote records with spaces ('10 mail.example.com.').
Every change increments the zone's serial and is served by every FlashDNS
replica within a second.`,
	}
	cmd.AddCommand(listRecordsCmd(o), getRecordCmd(o), setRecordCmd(o), deleteRecordCmd(o))
	return cmd
}

// recordZoneFlags are --zone and the project it is in.
type recordZoneFlags struct {
	zone string
	pf   projectFlags
}

func (z *recordZoneFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&z.zone, "zone", "", "the zone: example.com (with --org and --project), 192.0.2.0/24 or a full zone name")
	z.pf.add(fs)
}

func (z *recordZoneFlags) name() (string, error) {
	if z.zone == "" {
		return "", errors.New("--zone is required")
	}
	return zoneResource(z.zone, &z.pf)
}

func listRecordsCmd(o *dnsOptions) *cobra.Command {
	zf := recordZoneFlags{pf: o.projectFlags()}
	var prefix, typ string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the record sets of a zone, with the SOA and apex NS",
		Long: `list shows one line per record, ordered by owner name and type; TTL
"default" is a set that follows the zone's default TTL. -o json gives the
record sets as the API returns them.`,
		Example: `  photon dns record list --zone example.com --org acme --project web
  photon dns record list --zone example.com --org acme --project web --name-prefix www --type A`,
		Args: cobra.NoArgs,
		RunE: o.run(func(*cobra.Command, []string) (dnsAction, error) {
			if limit < 0 {
				return nil, fmt.Errorf("--limit %d: must not be negative", limit)
			}
			n, err := zf.name()
			if err != nil {
				return nil, err
			}
			req := &flashdnsv1.ListRecordSetsRequest{Zone: n, NamePrefix: prefix, Type: strings.ToUpper(typ)}
			return func(c *dnsCall) error {
				sets, err := listAll(c.ctx, limit, func(ctx context.Context, size int32, token string) ([]*flashdnsv1.RecordSet, string, error) {
					q := &flashdnsv1.ListRecordSetsRequest{Zone: req.Zone, NamePrefix: req.NamePrefix, Type: req.Type, PageSize: size, PageToken: token}
					r, err := c.records().ListRecordSets(ctx, q)
					return r.GetRecordSets(), r.GetNextPageToken(), err
				})
				if err != nil {
					return c.rpc("list record sets of "+n, err)
				}
				if c.out.json {
					return writeJSONList(c.out.w, sets)
				}
				return showList(c.out, recordRows(sets), recordColumns())
			}, nil
		}),
	}
	fs := cmd.Flags()
	zf.add(fs)
	fs.StringVar(&prefix, "name-prefix", "", "only owner names (fully qualified) starting with this, e.g. www; * for wildcards")
	fs.StringVar(&typ, "type", "", "only record sets of this type, e.g. MX")
	fs.IntVar(&limit, "limit", 0, "list at most this many record sets (0: all, following every page)")
	return cmd
}

// recordRows splits sets into one set per record, for a table of one row
// per record.
func recordRows(sets []*flashdnsv1.RecordSet) []*flashdnsv1.RecordSet {
	var rows []*flashdnsv1.RecordSet
	for _, s := range sets {
		if len(s.GetRecords()) == 0 {
			rows = append(rows, &flashdnsv1.RecordSet{Name: s.GetName(), Type: s.GetType(), Ttl: s.GetTtl()})
		}
		for _, r := range s.GetRecords() {
			rows = append(rows, &flashdnsv1.RecordSet{Name: s.GetName(), Type: s.GetType(), Ttl: s.GetTtl(), Records: []string{r}})
		}
	}
	return rows
}

func recordColumns() []column[*flashdnsv1.RecordSet] {
	return []column[*flashdnsv1.RecordSet]{
		{"NAME", (*flashdnsv1.RecordSet).GetName},
		{"TYPE", (*flashdnsv1.RecordSet).GetType},
		{"TTL", func(s *flashdnsv1.RecordSet) string {
			if s.GetTtl() == 0 {
				return "default"
			}
			return fmtUint(s.GetTtl())
		}},
		{"DATA", func(s *flashdnsv1.RecordSet) string { return strings.Join(s.GetRecords(), " ") }},
	}
}

func getRecordCmd(o *dnsOptions) *cobra.Command {
	zf := recordZoneFlags{pf: o.projectFlags()}
	cmd := &cobra.Command{
		Use:   "get [ZONE] NAME TYPE",
		Short: "Show one record set",
		Long: `get shows the record set NAME TYPE of ZONE, or of --zone as the other
record commands take the zone. The SOA set can be read too. -o json gives
the record set as the API returns it.`,
		Example: `  photon dns record get example.com www A --org acme --project web
  photon dns record get orgs/acme/projects/web/zones/example.com @ MX -o json
  photon dns record get --zone 192.0.2.0/24 --org acme --project web 1 PTR`,
		Args: cobra.RangeArgs(2, 3),
		RunE: o.run(func(_ *cobra.Command, args []string) (dnsAction, error) {
			switch {
			case len(args) == 3 && zf.zone != "":
				return nil, errors.New("give the zone as an argument or as --zone, not both")
			case len(args) == 3:
				zf.zone, args = args[0], args[1:]
			case zf.zone == "":
				return nil, errors.New("give the zone: get ZONE NAME TYPE, or --zone")
			}
			n, err := zf.name()
			if err != nil {
				return nil, err
			}
			if args[0] == "" {
				return nil, errors.New("empty owner name: use @ for the zone apex")
			}
			req := &flashdnsv1.GetRecordSetRequest{Zone: n, Name: args[0], Type: strings.ToUpper(args[1])}
			what := req.GetName() + " " + req.GetType()
			return func(c *dnsCall) error {
				r, err := c.records().GetRecordSet(c.ctx, req)
				if err != nil {
					return c.rpc("get "+what+" in "+n, err)
				}
				return showOne(c.out, r, recordSetDetail(r))
			}, nil
		}),
	}
	zf.add(cmd.Flags())
	return cmd
}

// recordSetDetail is the table of one set: a line per record, since
// records may hold the spaces and commas a joined list would need.
func recordSetDetail(s *flashdnsv1.RecordSet) []column[*flashdnsv1.RecordSet] {
	cols := recordColumns()[:3] // NAME, TYPE, TTL
	header := "RECORDS"
	for _, r := range s.GetRecords() {
		cols = append(cols, column[*flashdnsv1.RecordSet]{header, func(*flashdnsv1.RecordSet) string { return r }})
		header = ""
	}
	if header != "" {
		cols = append(cols, column[*flashdnsv1.RecordSet]{header, func(*flashdnsv1.RecordSet) string { return "" }})
	}
	return cols
}

func setRecordCmd(o *dnsOptions) *cobra.Command {
	zf := recordZoneFlags{pf: o.projectFlags()}
	var ttl uint32
	var etag string
	cmd := &cobra.Command{
		Use:   "set NAME TYPE RECORD...",
		Short: "Create or replace a record set (all records of one name and type)",
		Long: `set makes the record set NAME TYPE hold exactly RECORD... with --ttl,
creating it or replacing its records and TTL (an UPSERT). Without --ttl the
set follows the zone's default TTL.

A TXT record that is not quoted is taken as one text: it is quoted for
you, and text longer than 255 bytes is split into several strings (as DKIM
keys need). Quoted records ('"part one" "part two"') are sent as they are.`,
		Example: `  photon dns record set --zone example.com --org acme --project web www A 192.0.2.1 192.0.2.2 --ttl 300
  photon dns record set --zone example.com --org acme --project web @ MX '10 mail.example.com.' '20 mail2.example.com.'
  photon dns record set --zone example.com --org acme --project web @ TXT 'v=spf1 mx -all'
  photon dns record set --zone 192.0.2.0/24 --org acme --project web 1 PTR gateway.example.com.`,
		Args: cobra.MinimumNArgs(3),
		RunE: o.run(func(_ *cobra.Command, args []string) (dnsAction, error) {
			n, err := zf.name()
			if err != nil {
				return nil, err
			}
			set, err := recordSetArgs(args[0], args[1], args[2:])
			if err != nil {
				return nil, err
			}
			set.Ttl = ttl
			req := &flashdnsv1.ChangeRecordSetsRequest{Zone: n, Etag: etag,
				Changes: []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_UPSERT, RecordSet: set}}}
			what := set.GetName() + " " + set.GetType()
			return func(c *dnsCall) error {
				r, err := c.records().ChangeRecordSets(c.ctx, req)
				if err != nil {
					return c.rpc("set "+what+" in "+n, err)
				}
				return c.changed(r, fmt.Sprintf("Set %s in %s", what, n))
			}, nil
		}),
	}
	fs := cmd.Flags()
	zf.add(fs)
	addSeconds(fs, &ttl, "ttl", "TTL of the set, e.g. 300 or 5m (default: the zone's default TTL)")
	addEtag(fs, &etag)
	return cmd
}

func deleteRecordCmd(o *dnsOptions) *cobra.Command {
	zf := recordZoneFlags{pf: o.projectFlags()}
	var ttl uint32
	var etag string
	cmd := &cobra.Command{
		Use:   "delete NAME TYPE [RECORD...]",
		Short: "Delete a record set",
		Long: `delete deletes the record set NAME TYPE. Given RECORD... (and --ttl), it
deletes the set only if it holds exactly those records with that TTL, and
changes nothing otherwise: a guard against deleting what someone else
changed meanwhile. The apex NS set cannot be deleted (replace it with set,
or change the zone's --nameserver).`,
		Example: `  photon dns record delete --zone example.com --org acme --project web www A
  photon dns record delete --zone example.com --org acme --project web www A 192.0.2.1 192.0.2.2 --ttl 300`,
		Args: cobra.MinimumNArgs(2),
		RunE: o.run(func(cmd *cobra.Command, args []string) (dnsAction, error) {
			n, err := zf.name()
			if err != nil {
				return nil, err
			}
			set, err := recordSetArgs(args[0], args[1], args[2:])
			if err != nil {
				return nil, err
			}
			switch {
			case len(set.Records) > 0 && !cmd.Flags().Changed("ttl"):
				return nil, errors.New("deleting exact records compares the TTL too: give --ttl (0 for a set that follows the zone's default)")
			case len(set.Records) == 0 && cmd.Flags().Changed("ttl"):
				return nil, errors.New("--ttl applies only with the records to delete")
			}
			set.Ttl = ttl
			req := &flashdnsv1.ChangeRecordSetsRequest{Zone: n, Etag: etag,
				Changes: []*flashdnsv1.Change{{Action: flashdnsv1.Change_ACTION_DELETE, RecordSet: set}}}
			what := set.GetName() + " " + set.GetType()
			return func(c *dnsCall) error {
				r, err := c.records().ChangeRecordSets(c.ctx, req)
				if err != nil {
					return c.rpc("delete "+what+" from "+n, err)
				}
				return c.changed(r, fmt.Sprintf("Deleted %s from %s", what, n))
			}, nil
		}),
	}
	fs := cmd.Flags()
	zf.add(fs)
	addSeconds(fs, &ttl, "ttl", "with RECORD...: the TTL the set must have")
	addEtag(fs, &etag)
	return cmd
}

// changed reports a successful batch: the new serial for people, the
// response for scripts.
func (c *dnsCall) changed(r *flashdnsv1.ChangeRecordSetsResponse, what string) error {
	if c.out.json {
		return writeJSON(c.out.w, r)
	}
	_, err := fmt.Fprintf(c.out.w, "%s: serial %d.\n", cell(what), r.GetSerial())
	return err
}

// recordSetArgs builds a record set from the arguments of set and delete.
// Records of types with several fields must each be one argument; a TXT
// text without quotes is quoted (and split) here, since the zone-file
// syntax would otherwise make every word a string of its own.
func recordSetArgs(name, typ string, records []string) (*flashdnsv1.RecordSet, error) {
	if name == "" {
		return nil, errors.New("empty owner name: use @ for the zone apex")
	}
	typ = strings.ToUpper(typ)
	if typ == "SOA" {
		return nil, errors.New("the SOA record is managed by the zone: use photon dns zone update")
	}
	set := &flashdnsv1.RecordSet{Name: name, Type: typ}
	fields := map[string]string{"MX": "10 mail.example.com.", "SRV": "10 5 5060 sip.example.com.", "CAA": `0 issue "letsencrypt.org"`}
	for _, r := range records {
		if example, ok := fields[typ]; ok && len(strings.Fields(r)) < 2 {
			return nil, fmt.Errorf("%s record %q: give each record as one argument, quoted: '%s'", typ, r, example)
		}
		if typ == "TXT" {
			r = quoteTXT(r)
		}
		if strings.TrimSpace(r) == "" {
			return nil, fmt.Errorf("empty %s record", typ)
		}
		set.Records = append(set.Records, r)
	}
	return set, nil
}

// quoteTXT quotes the text of a TXT record, split into strings of at most
// 255 bytes, unless it is already in zone-file form (starts with a quote)
// or empty.
func quoteTXT(s string) string {
	if s == "" || strings.HasPrefix(strings.TrimSpace(s), `"`) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		n := min(len(s), maxTXTString)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for i := 0; i < n; i++ {
			switch c := s[i]; {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c == 0x7f:
				fmt.Fprintf(&b, "\\%03d", c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		s = s[n:]
	}
	return b.String()
}
