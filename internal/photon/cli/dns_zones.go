package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
)

func newDNSZoneCommand(o *dnsOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "zone", Aliases: []string{"zones"}, Short: "Manage DNS zones"}
	cmd.AddCommand(
		createZoneCmd(o), getZoneCmd(o), listZonesCmd(o), updateZoneCmd(o), deleteZoneCmd(o, "zone", "ZONE"),
		importZoneCmd(o), exportZoneCmd(o),
	)
	return cmd
}

func newDNSReverseCommand(o *dnsOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reverse",
		Short: "Manage reverse zones that answer PTR queries for whole networks",
		Long: `reverse manages reverse zones: the in-addr.arpa. or ip6.arpa. zone of a
network, which can answer PTR queries for every address of the network
from a pattern instead of one PTR record per address. A reverse zone is a
zone like any other: photon dns zone get/update/export and photon dns
record work on it too (name it by its network, 192.0.2.0/24), and its
pattern changes with photon dns zone update --ptr-pattern.

Pattern placeholders: {1}..{4} the IPv4 octets in address order, {1}..{8}
the IPv6 groups, {ip} the address with '.' or ':' replaced by '-', {hex}
the address in hex digits.`,
	}
	cmd.AddCommand(createReverseCmd(o), listReverseCmd(o), deleteZoneCmd(o, "reverse zone", "ZONE|CIDR"))
	return cmd
}

// zoneFlags are the settable fields of a zone.
type zoneFlags struct {
	primaryNS   string
	admin       string
	refresh     uint32
	retry       uint32
	expire      uint32
	negativeTTL uint32
	defaultTTL  uint32
	nameservers []string
	enabled     bool
	labels      []string
	ptrPattern  string
}

// zoneMaskFields maps the flags of zone update to update_mask paths.
var zoneMaskFields = [][2]string{
	{"nameserver", "nameservers"}, {"primary-ns", "primary_ns"}, {"admin", "admin"},
	{"refresh", "refresh"}, {"retry", "retry"}, {"expire", "expire"}, {"negative-ttl", "negative_ttl"},
	{"default-ttl", "default_ttl"}, {"enabled", "enabled"}, {"label", "labels"}, {"ptr-pattern", "reverse.ptr_pattern"},
}

func (z *zoneFlags) add(fs *pflag.FlagSet, update bool) {
	dflt := " (default: FlashDNS's)"
	if update {
		dflt = "; given empty, restores the default"
	}
	fs.StringSliceVar(&z.nameservers, "nameserver", nil,
		"name server of the zone's apex NS set, a host name (repeatable, or comma-separated)"+dflt)
	fs.StringVar(&z.primaryNS, "primary-ns", "", "SOA primary name server (default: the first --nameserver)")
	fs.StringVar(&z.admin, "admin", "", "SOA mailbox, hostmaster@example.com or hostmaster.example.com. (default: hostmaster.<zone>)")
	addSeconds(fs, &z.refresh, "refresh", "SOA refresh timer (default 1h)")
	addSeconds(fs, &z.retry, "retry", "SOA retry timer (default 10m)")
	addSeconds(fs, &z.expire, "expire", "SOA expire timer (default 2w)")
	addSeconds(fs, &z.negativeTTL, "negative-ttl", "SOA minimum: how long resolvers cache negative answers (default 5m)")
	addSeconds(fs, &z.defaultTTL, "default-ttl", "TTL of record sets with TTL 0 and of the SOA (default 1h)")
	// Sent only when given; the default of the variable is never used.
	if update {
		fs.BoolVar(&z.enabled, "enabled", false, "--enabled=false stops serving the zone (DNS answers, transfers), --enabled serves it again")
	} else {
		fs.BoolVar(&z.enabled, "enabled", false, "--enabled=false creates the zone without serving it (default: served)")
	}
	addLabels(fs, &z.labels, update)
	if update {
		fs.StringVar(&z.ptrPattern, "ptr-pattern", "", "PTR pattern of a reverse zone, e.g. '{4}-{3}-{2}-{1}.hosts.example.com.' (empty: none)")
	}
}

// zone is the Zone the flags describe.
func (z *zoneFlags) zone(fs *pflag.FlagSet) (*flashdnsv1.Zone, error) {
	labels, err := parseLabels(z.labels)
	if err != nil {
		return nil, err
	}
	r := &flashdnsv1.Zone{
		PrimaryNs: z.primaryNS, Admin: z.admin,
		Refresh: z.refresh, Retry: z.retry, Expire: z.expire, NegativeTtl: z.negativeTTL, DefaultTtl: z.defaultTTL,
		Labels: labels,
	}
	// --nameserver '' is an empty list: on update, the default again.
	for _, ns := range z.nameservers {
		if ns = strings.TrimSpace(ns); ns != "" {
			r.Nameservers = append(r.Nameservers, ns)
		}
	}
	if fs.Changed("enabled") {
		r.Enabled = proto.Bool(z.enabled)
	}
	if fs.Changed("ptr-pattern") {
		r.Reverse = &flashdnsv1.ReverseConfig{PtrPattern: z.ptrPattern}
	}
	return r, nil
}

func createZoneCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	var zf zoneFlags
	cmd := &cobra.Command{
		Use:   "create ZONE",
		Short: "Create a zone with its SOA and apex NS records",
		Long: `create creates a zone: ZONE is its DNS name (example.com) in --org and
--project, or a full name (orgs/acme/projects/web/zones/example.com). A
zone whose name is a reverse name (2.0.192.in-addr.arpa) becomes a reverse
zone without a PTR pattern; photon dns reverse create makes one from a
network.`,
		Example: `  photon dns zone create example.com --org acme --project web \
      --nameserver ns1.example.net. --nameserver ns2.example.net. --admin hostmaster@example.com`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (dnsAction, error) {
			if _, err := netip.ParsePrefix(args[0]); err == nil {
				return nil, fmt.Errorf("%s is a network: create its reverse zone with photon dns reverse create --cidr %s", args[0], args[0])
			}
			parent, dnsName, err := zoneCreateTarget(args[0], &pf)
			if err != nil {
				return nil, err
			}
			z, err := zf.zone(cmd.Flags())
			if err != nil {
				return nil, err
			}
			z.DnsName = dnsName
			req := &flashdnsv1.CreateZoneRequest{Parent: parent, Zone: z}
			return func(c *dnsCall) error {
				r, err := c.zones().CreateZone(c.ctx, req)
				if err != nil {
					return c.rpc("create zone "+dnsName, err)
				}
				return showOne(c.out, r, zoneDetail())
			}, nil
		}),
	}
	pf.add(cmd.Flags())
	zf.add(cmd.Flags(), false)
	return cmd
}

// zoneCreateTarget splits the ZONE of a create or import: a full name
// gives the project and the DNS name, a DNS name takes the project from p.
func zoneCreateTarget(arg string, p *projectFlags) (parent, dnsName string, err error) {
	if strings.HasPrefix(arg, "orgs/") {
		parent, id, ok := splitZoneName(arg)
		if !ok {
			return "", "", fmt.Errorf("zone %q: want example.com or orgs/<org>/projects/<project>/zones/<zone>", arg)
		}
		return parent, id, nil
	}
	id, err := zoneID(arg)
	if err != nil {
		return "", "", err
	}
	if parent, err = p.name(); err != nil {
		return "", "", err
	}
	return parent, id, nil
}

func getZoneCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	cmd := &cobra.Command{
		Use:   "get ZONE",
		Short: "Show a zone",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (dnsAction, error) {
			n, err := zoneResource(args[0], &pf)
			if err != nil {
				return nil, err
			}
			return func(c *dnsCall) error {
				r, err := c.zones().GetZone(c.ctx, &flashdnsv1.GetZoneRequest{Name: n})
				if err != nil {
					return c.rpc("get zone "+n, err)
				}
				return showOne(c.out, r, zoneDetail())
			}, nil
		}),
	}
	pf.add(cmd.Flags())
	return cmd
}

// zoneFilterFields are the fields a ListZones filter takes.
const zoneFilterFields = "kind, dns_name, enabled, labels"

// zonePages lists the zones of parent matching filter.
func (c *dnsCall) zonePages(parent, filter string) page[*flashdnsv1.Zone] {
	return func(ctx context.Context, size int32, token string) ([]*flashdnsv1.Zone, string, error) {
		r, err := c.zones().ListZones(ctx, &flashdnsv1.ListZonesRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
		return r.GetZones(), r.GetNextPageToken(), err
	}
}

func listZonesCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the zones of a project",
		Args:  cobra.NoArgs,
		RunE: o.run(func(*cobra.Command, []string) (dnsAction, error) {
			if err := lf.check(); err != nil {
				return nil, err
			}
			parent, err := pf.name()
			if err != nil {
				return nil, err
			}
			return func(c *dnsCall) error {
				zs, err := listAll(c.ctx, lf.limit, c.zonePages(parent, lf.filter))
				if err != nil {
					return c.rpc("list zones of "+parent, err)
				}
				return showList(c.out, zs, zoneColumns())
			}, nil
		}),
	}
	pf.add(cmd.Flags())
	lf.add(cmd.Flags(), zoneFilterFields, `'kind = forward AND labels.env = prod'`)
	return cmd
}

func updateZoneCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	var zf zoneFlags
	var etag string
	cmd := &cobra.Command{
		Use:   "update ZONE",
		Short: "Change a zone's SOA fields, name servers, default TTL, labels, state or PTR pattern",
		Long: `update changes the fields given as flags and leaves the others as they
are. A flag given empty (or 0) restores its default. --label replaces all
labels. Changing SOA fields, name servers or the default TTL increments the
zone's serial.`,
		Example: `  photon dns zone update example.com --org acme --project web --default-ttl 5m --refresh 2h
  photon dns zone update example.com --org acme --project web --enabled=false
  photon dns zone update 192.0.2.0/24 --org acme --project web --ptr-pattern 'ip-{ip}.example.com.'`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (dnsAction, error) {
			n, err := zoneResource(args[0], &pf)
			if err != nil {
				return nil, err
			}
			mask, err := updateMask(cmd.Flags(), zoneMaskFields)
			if err != nil {
				return nil, err
			}
			z, err := zf.zone(cmd.Flags())
			if err != nil {
				return nil, err
			}
			z.Name, z.Etag = n, etag
			req := &flashdnsv1.UpdateZoneRequest{Zone: z, UpdateMask: mask}
			return func(c *dnsCall) error {
				r, err := c.zones().UpdateZone(c.ctx, req)
				if err != nil {
					return c.rpc("update zone "+n, err)
				}
				return showOne(c.out, r, zoneDetail())
			}, nil
		}),
	}
	pf.add(cmd.Flags())
	zf.add(cmd.Flags(), true)
	addEtag(cmd.Flags(), &etag)
	return cmd
}

// deleteZoneCmd is zone delete and reverse delete.
func deleteZoneCmd(o *dnsOptions, noun, argName string) *cobra.Command {
	pf := o.projectFlags()
	var etag string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete " + argName,
		Short: "Delete a " + noun + " (one with record sets of its own only with --force)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (dnsAction, error) {
			n, err := zoneResource(args[0], &pf)
			if err != nil {
				return nil, err
			}
			req := &flashdnsv1.DeleteZoneRequest{Name: n, Etag: etag, Force: force}
			return func(c *dnsCall) error {
				if _, err := c.zones().DeleteZone(c.ctx, req); err != nil {
					return c.rpc("delete zone "+n, err)
				}
				return c.deleted(n)
			}, nil
		}),
	}
	pf.add(cmd.Flags())
	addEtag(cmd.Flags(), &etag)
	cmd.Flags().BoolVar(&force, "force", false, "also delete a zone that has record sets besides its SOA and apex NS")
	return cmd
}

func importZoneCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	var file, name, etag string
	var replace bool
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Create a zone, or replace one's content, from an RFC 1035 zone file",
		Long: `import reads a zone file (as NSD or BIND read theirs; no $INCLUDE) and
creates the zone from it in --org and --project, keeping the file's SOA
serial so that secondaries keep transferring. The zone's name is --name,
else the file's $ORIGIN, else the owner of its SOA record. With --replace,
an existing zone of the project gets the file's content in one change.`,
		Example: `  photon dns zone import --org acme --project web --file example.com.zone
  photon dns zone import --org acme --project web --file db.example --name example.com --replace`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string) (dnsAction, error) {
			if file == "" {
				return nil, errors.New("--file is required (- for stdin)")
			}
			if etag != "" && !replace {
				return nil, errors.New("--etag applies only with --replace")
			}
			req := &flashdnsv1.ImportZoneRequest{ReplaceExisting: replace, Etag: etag}
			var err error
			if name != "" {
				if req.Parent, req.DnsName, err = zoneCreateTarget(name, &pf); err != nil {
					return nil, err
				}
			} else if req.Parent, err = pf.name(); err != nil {
				return nil, err
			}
			if req.ZoneFile, err = readZoneFile(cmd.InOrStdin(), file); err != nil {
				return nil, err
			}
			what := "zone file " + file
			switch {
			case req.DnsName != "":
				what = "zone " + req.DnsName
			case file == "-":
				what = "zone file from stdin"
			}
			return func(c *dnsCall) error {
				r, err := c.zones().ImportZone(c.ctx, req)
				if err != nil {
					return c.rpc("import "+what, err)
				}
				return showOne(c.out, r, zoneDetail())
			}, nil
		}),
	}
	fs := cmd.Flags()
	pf.add(fs)
	fs.StringVarP(&file, "file", "f", "", "the zone file (- reads stdin)")
	fs.StringVar(&name, "name", "", "the zone's DNS name (default: the file's $ORIGIN or SOA owner)")
	fs.BoolVar(&replace, "replace", false, "replace the content of an existing zone of the project")
	addEtag(fs, &etag)
	return cmd
}

// readZoneFile reads a zone file up to ImportZone's limit; "-" is stdin.
func readZoneFile(stdin io.Reader, file string) (string, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("read zone file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxZoneFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read zone file %s: %w", file, err)
	}
	if len(b) > maxZoneFileBytes {
		return "", fmt.Errorf("zone file %s is larger than %d MiB, the most FlashDNS imports", file, maxZoneFileBytes>>20)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "", fmt.Errorf("zone file %s is empty", file)
	}
	// A protobuf string must be UTF-8; say so instead of failing to encode.
	if !utf8.Valid(b) {
		return "", fmt.Errorf("zone file %s is not UTF-8 text", file)
	}
	return string(b), nil
}

func exportZoneCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	cmd := &cobra.Command{
		Use:   "export ZONE",
		Short: "Write a zone as an RFC 1035 zone file to stdout",
		Long: `export writes one consistent version of the zone as a zone file: $ORIGIN,
$TTL, the SOA, the apex NS records, then every record set. -o json wraps it
with its serial. PTR answers computed from a reverse zone's pattern are not
zone data and are not exported.`,
		Example: `  photon dns zone export example.com --org acme --project web > example.com.zone`,
		Args:    cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (dnsAction, error) {
			n, err := zoneResource(args[0], &pf)
			if err != nil {
				return nil, err
			}
			return func(c *dnsCall) error {
				r, err := c.zones().ExportZone(c.ctx, &flashdnsv1.ExportZoneRequest{Name: n})
				if err != nil {
					return c.rpc("export zone "+n, err)
				}
				if c.out.json {
					return writeJSON(c.out.w, r)
				}
				_, err = io.WriteString(c.out.w, r.GetZoneFile())
				return err
			}, nil
		}),
	}
	pf.add(cmd.Flags())
	return cmd
}

func createReverseCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	var zf zoneFlags
	var cidr, pattern string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the reverse zone of a network",
		Long: `create creates the reverse zone of --cidr (IPv4 /8, /16 or /24; IPv6 on a
nibble boundary such as /32, /48 or /64) in --org and --project. With
--pattern, every address of the network answers PTR queries with the
pattern expanded for it; explicit PTR records (photon dns record set) win.`,
		Example: `  photon dns reverse create --org acme --project web --cidr 192.0.2.0/24 \
      --pattern '{4}-{3}-{2}-{1}.hosts.example.com.' --nameserver ns1.example.net.
  photon dns reverse create --org acme --project web --cidr 2001:db8::/48 --pattern 'ip-{ip}.v6.example.com.'`,
		Args: cobra.NoArgs,
		RunE: o.run(func(cmd *cobra.Command, _ []string) (dnsAction, error) {
			if cidr == "" {
				return nil, errors.New("--cidr is required")
			}
			if _, err := netip.ParsePrefix(cidr); err != nil {
				return nil, fmt.Errorf("--cidr %q: want a network such as 192.0.2.0/24 or 2001:db8::/48", cidr)
			}
			parent, err := pf.name()
			if err != nil {
				return nil, err
			}
			z, err := zf.zone(cmd.Flags())
			if err != nil {
				return nil, err
			}
			z.Reverse = &flashdnsv1.ReverseConfig{Cidr: cidr, PtrPattern: pattern}
			req := &flashdnsv1.CreateZoneRequest{Parent: parent, Zone: z}
			return func(c *dnsCall) error {
				r, err := c.zones().CreateZone(c.ctx, req)
				if err != nil {
					return c.rpc("create reverse zone "+cidr, err)
				}
				return showOne(c.out, r, zoneDetail())
			}, nil
		}),
	}
	fs := cmd.Flags()
	pf.add(fs)
	fs.StringVar(&cidr, "cidr", "", "the network, e.g. 192.0.2.0/24 or 2001:db8::/48")
	fs.StringVar(&pattern, "pattern", "", "PTR pattern, e.g. '{4}-{3}-{2}-{1}.hosts.example.com.' (empty: explicit PTR records only)")
	zf.add(fs, false)
	return cmd
}

func listReverseCmd(o *dnsOptions) *cobra.Command {
	pf := o.projectFlags()
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the reverse zones of a project",
		Args:  cobra.NoArgs,
		RunE: o.run(func(*cobra.Command, []string) (dnsAction, error) {
			if err := lf.check(); err != nil {
				return nil, err
			}
			parent, err := pf.name()
			if err != nil {
				return nil, err
			}
			filter := "kind = reverse"
			if strings.TrimSpace(lf.filter) != "" {
				filter += " AND " + lf.filter
			}
			return func(c *dnsCall) error {
				zs, err := listAll(c.ctx, lf.limit, c.zonePages(parent, filter))
				if err != nil {
					return c.rpc("list reverse zones of "+parent, err)
				}
				return showList(c.out, zs, reverseColumns())
			}, nil
		}),
	}
	pf.add(cmd.Flags())
	lf.add(cmd.Flags(), zoneFilterFields, `'dns_name = "*.10.in-addr.arpa"'`)
	return cmd
}

func zoneEnabled(z *flashdnsv1.Zone) string {
	// Unset means enabled (FlashDNS always returns it set).
	return fmtBool(z.Enabled == nil || *z.Enabled)
}

func fmtUint(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func zoneColumns() []column[*flashdnsv1.Zone] {
	return []column[*flashdnsv1.Zone]{
		{"DNS NAME", (*flashdnsv1.Zone).GetDnsName},
		{"KIND", func(z *flashdnsv1.Zone) string { return fmtEnum(z.GetKind().String(), "KIND_") }},
		{"SERIAL", func(z *flashdnsv1.Zone) string { return fmtUint(z.GetSerial()) }},
		{"RECORD SETS", func(z *flashdnsv1.Zone) string { return strconv.Itoa(int(z.GetRecordSetCount())) }},
		{"ENABLED", zoneEnabled},
		{"LABELS", func(z *flashdnsv1.Zone) string { return fmtLabels(z.GetLabels()) }},
	}
}

func reverseColumns() []column[*flashdnsv1.Zone] {
	return []column[*flashdnsv1.Zone]{
		{"DNS NAME", (*flashdnsv1.Zone).GetDnsName},
		{"CIDR", func(z *flashdnsv1.Zone) string { return z.GetReverse().GetCidr() }},
		{"PTR PATTERN", func(z *flashdnsv1.Zone) string { return z.GetReverse().GetPtrPattern() }},
		{"SERIAL", func(z *flashdnsv1.Zone) string { return fmtUint(z.GetSerial()) }},
		{"RECORD SETS", func(z *flashdnsv1.Zone) string { return strconv.Itoa(int(z.GetRecordSetCount())) }},
		{"ENABLED", zoneEnabled},
	}
}

func zoneDetail() []column[*flashdnsv1.Zone] {
	secs := func(get func(*flashdnsv1.Zone) uint32) func(*flashdnsv1.Zone) string {
		return func(z *flashdnsv1.Zone) string { return fmtUint(get(z)) }
	}
	return []column[*flashdnsv1.Zone]{
		{"NAME", (*flashdnsv1.Zone).GetName},
		{"DNS NAME", (*flashdnsv1.Zone).GetDnsName},
		{"KIND", func(z *flashdnsv1.Zone) string { return fmtEnum(z.GetKind().String(), "KIND_") }},
		{"ENABLED", zoneEnabled},
		{"SERIAL", func(z *flashdnsv1.Zone) string { return fmtUint(z.GetSerial()) }},
		{"RECORD SETS", func(z *flashdnsv1.Zone) string { return strconv.Itoa(int(z.GetRecordSetCount())) }},
		{"NAMESERVERS", func(z *flashdnsv1.Zone) string { return strings.Join(z.GetNameservers(), ",") }},
		{"PRIMARY NS", (*flashdnsv1.Zone).GetPrimaryNs},
		{"ADMIN", (*flashdnsv1.Zone).GetAdmin},
		{"REFRESH", secs((*flashdnsv1.Zone).GetRefresh)},
		{"RETRY", secs((*flashdnsv1.Zone).GetRetry)},
		{"EXPIRE", secs((*flashdnsv1.Zone).GetExpire)},
		{"NEGATIVE TTL", secs((*flashdnsv1.Zone).GetNegativeTtl)},
		{"DEFAULT TTL", secs((*flashdnsv1.Zone).GetDefaultTtl)},
		{"CIDR", func(z *flashdnsv1.Zone) string { return z.GetReverse().GetCidr() }},
		{"PTR PATTERN", func(z *flashdnsv1.Zone) string { return z.GetReverse().GetPtrPattern() }},
		{"LABELS", func(z *flashdnsv1.Zone) string { return fmtLabels(z.GetLabels()) }},
		{"CREATED", func(z *flashdnsv1.Zone) string { return fmtTime(z.GetCreateTime()) }},
		{"UPDATED", func(z *flashdnsv1.Zone) string { return fmtTime(z.GetUpdateTime()) }},
		{"ETAG", (*flashdnsv1.Zone).GetEtag},
	}
}
