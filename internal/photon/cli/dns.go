package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	aegisclient "github.com/photoncloud/photoncloud/client/aegis"
	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// FlashDNS endpoint: where `photon dev` runs its gRPC API (the platform's
// port 7020).
const (
	defaultFlashDNSURL = "http://127.0.0.1:7020"
	envFlashDNSURL     = "PHOTON_FLASHDNS_URL"
	envFlashDNSCACert  = "PHOTON_FLASHDNS_CACERT"
)

// Message size limits of the FlashDNS connection. gRPC's default 4 MiB
// for responses is too small for the export of a large zone; ImportZone
// takes zone files up to 16 MiB.
const (
	maxZoneFileBytes = 16 << 20
	maxDNSRecvBytes  = 256 << 20
)

// dnsOptions are the flags of `photon dns`, shared by its subcommands.
type dnsOptions struct {
	env    cliEnv
	conn   connOptions // the Aegis of the session whose token FlashDNS gets
	url    string
	cacert string
	output string
	flags  *pflag.FlagSet
}

func newDNSCommand(env cliEnv) *cobra.Command {
	o := &dnsOptions{env: env}
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Manage DNS zones and records in FlashDNS",
		Long: `dns manages the zones, record sets and reverse zones of FlashDNS, as the
user of the stored Aegis session (see photon login): FlashDNS receives the
session's access token and asks Aegis whether each call is allowed.

A zone is named by its DNS name with its project in --org and --project
(example.com --org acme --project web), by its full name
(orgs/acme/projects/web/zones/example.com), or, for a reverse zone, by its
network (192.0.2.0/24 --org acme --project web). After photon login
--project, the session's project stands in for --org and --project when
neither is given.

FlashDNS is reached at --flashdns-url (or $` + envFlashDNSURL + `): http:// is
plaintext gRPC, allowed to loopback addresses only unless --insecure;
https:// is TLS, verified against --flashdns-cacert, else the CA of the
Aegis connection (--cacert), else the system's.`,
	}
	pf := cmd.PersistentFlags()
	addConnFlags(pf, &o.conn)
	pf.Lookup("timeout").Usage = "give up on the command (Aegis and FlashDNS calls) after this long"
	o.flags = pf
	pf.StringVar(&o.url, "flashdns-url", defaultFlashDNSURL,
		"FlashDNS gRPC API, http://host:port or https://host:port; unset: $"+envFlashDNSURL+", else")
	pf.StringVar(&o.cacert, "flashdns-cacert", "",
		"PEM file of CA certificates to verify FlashDNS's TLS certificate (or $"+envFlashDNSCACert+"; default: the Aegis --cacert)")
	addOutputFlag(pf, &o.output)
	cmd.AddCommand(newDNSZoneCommand(o), newDNSRecordCommand(o), newDNSReverseCommand(o))
	return cmd
}

// dnsTarget is a resolved FlashDNS to talk to.
type dnsTarget struct {
	url      string // normalized, for messages
	endpoint string // gRPC host:port
	tls      bool
	cacert   string
	explicit bool // cacert given for FlashDNS rather than taken from Aegis
}

// flashDNSTarget reads --flashdns-url and --flashdns-cacert (or their
// environment variables). What depends on the Aegis connection (its CA,
// --insecure) is settled by finish.
func (o *dnsOptions) flashDNSTarget() (dnsTarget, error) {
	raw := o.url
	if !o.flags.Changed("flashdns-url") {
		if v := o.env.getenv(envFlashDNSURL); v != "" {
			raw = v
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return dnsTarget{}, fmt.Errorf("--flashdns-url %q: want http://host:port or https://host:port", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
		return dnsTarget{}, fmt.Errorf("--flashdns-url %q must not have credentials, a path, a query or a fragment", raw)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	d := dnsTarget{
		url:      u.Scheme + "://" + strings.ToLower(u.Host),
		endpoint: net.JoinHostPort(u.Hostname(), port),
		tls:      u.Scheme == "https",
	}
	d.cacert = o.cacert
	if !o.flags.Changed("flashdns-cacert") {
		d.cacert = o.env.getenv(envFlashDNSCACert)
	}
	d.explicit = d.cacert != ""
	if d.explicit && !d.tls {
		return dnsTarget{}, fmt.Errorf("--flashdns-cacert needs an https:// --flashdns-url, not %s", d.url)
	}
	return d, nil
}

// finish takes the CA and --insecure of the Aegis connection a, and
// refuses to send the session's token in the clear beyond this machine
// unless asked to, as for Aegis.
func (d dnsTarget) finish(a target) (dnsTarget, error) {
	if d.tls && !d.explicit {
		d.cacert = a.cacert
	}
	if !d.tls && !a.insecure {
		host, _, _ := net.SplitHostPort(d.endpoint)
		if !isLoopback(host) {
			return dnsTarget{}, fmt.Errorf("refusing plaintext gRPC to FlashDNS at %s: use an https:// --flashdns-url or --insecure", d.endpoint)
		}
	}
	return d, nil
}

// dial opens the gRPC connection; creds put the bearer token on every
// call.
func (d dnsTarget) dial(creds credentials.PerRPCCredentials) (*grpc.ClientConn, error) {
	tc := insecure.NewCredentials()
	if d.tls {
		flag := "--cacert"
		if d.explicit {
			flag = "--flashdns-cacert"
		}
		cfg, err := clientTLS(d.cacert, flag)
		if err != nil {
			return nil, err
		}
		tc = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithUserAgent("photon-cli"), grpc.WithTransportCredentials(tc),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxDNSRecvBytes))}
	if creds != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	cc, err := grpc.NewClient(d.endpoint, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to flashdns at %s: %w", d.url, err)
	}
	return cc, nil
}

// dnsCall is what the body of a dns subcommand works with.
type dnsCall struct {
	ctx  context.Context
	conn *grpc.ClientConn
	src  *storedTokenSource // the tokens conn sends; nil: none
	url  string
	out  *printer
}

func (c *dnsCall) zones() flashdnsv1.ZoneServiceClient {
	return flashdnsv1.NewZoneServiceClient(c.conn)
}

func (c *dnsCall) records() flashdnsv1.RecordSetServiceClient {
	return flashdnsv1.NewRecordSetServiceClient(c.conn)
}

// rpc explains a failed FlashDNS call of op.
func (c *dnsCall) rpc(op string, err error) error { return explainDNS(op, c.url, c.src.callErr(err)) }

// deleted reports a deletion; JSON output stays empty.
func (c *dnsCall) deleted(name string) error {
	if c.out.json {
		return nil
	}
	_, err := fmt.Fprintf(c.out.w, "Deleted %s.\n", cell(name))
	return err
}

// dnsAction is the part of a subcommand that talks to FlashDNS.
type dnsAction func(c *dnsCall) error

// run builds a RunE as iamOptions.run does: prepare checks arguments and
// flags without I/O (beyond reading a zone file, and the session's project
// from the credentials file), then the action runs with a connection
// carrying the session's token.
func (o *dnsOptions) run(prepare func(cmd *cobra.Command, args []string) (dnsAction, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		out, err := newPrinter(cmd.OutOrStdout(), o.output)
		if err != nil {
			return err
		}
		d, err := o.flashDNSTarget()
		if err != nil {
			return err
		}
		act, err := prepare(cmd, args)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), o.conn.timeout)
		defer cancel()
		a, src, err := sessionToken(ctx, o.env, &o.conn)
		if err != nil && !errors.Is(err, errNoSession) {
			return err
		}
		if d, err = d.finish(a); err != nil {
			return err
		}
		// Without any stored session the call goes without a token: a
		// lab's FlashDNS (--auth none) needs none, and one that does
		// answers UNAUTHENTICATED, which says to run photon login.
		var creds credentials.PerRPCCredentials
		if src != nil {
			creds = aegisclient.TokenCredentials(src, d.tls)
		}
		cc, err := d.dial(creds)
		if err != nil {
			return err
		}
		defer cc.Close()
		return act(&dnsCall{ctx: ctx, conn: cc, src: src, url: d.url, out: out})
	}
}

// explainDNS is explainRPC for FlashDNS: the codes that are about the
// connection name FlashDNS and its flag instead of Aegis.
func explainDNS(op, url string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return explainRPC(op, url, err)
	}
	var text string
	switch st.Code() {
	case codes.Unavailable:
		// Also what FlashDNS answers when its storage is unreachable; the
		// message tells which.
		text = fmt.Sprintf("FlashDNS at %s is unavailable: %s", url, st.Message())
	case codes.DeadlineExceeded:
		text = fmt.Sprintf("FlashDNS at %s did not answer in time (see --timeout)", url)
	case codes.Unimplemented:
		text = fmt.Sprintf("%s does not offer this call (%s); is --flashdns-url a FlashDNS of this version?", url, st.Message())
	default:
		return explainRPC(op, url, err)
	}
	return &rpcError{msg: op + ": " + text, err: err}
}

// projectFlags are --org and --project: the project of the zones a
// command names by DNS name, or of a new zone. They are iam's, with help
// of their own and the project required.
type projectFlags struct{ parentFlags }

// projectFlags returns the --org and --project of a dns command, for
// which the project of a downscoped session stands in.
func (o *dnsOptions) projectFlags() projectFlags {
	return projectFlags{parentFlags{scope: sessionScope(o.env, &o.conn)}}
}

func (p *projectFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&p.org, "org", "", "the org of the zone's project: acme or orgs/acme")
	fs.StringVar(&p.project, "project", "", "the zone's project: web (with --org) or orgs/acme/projects/web (default with neither flag: a downscoped session's)")
}

// name is the project's resource name, orgs/<org>/projects/<project>.
func (p *projectFlags) name() (string, error) {
	org, project, err := withScope(p.org, p.project, p.scope)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(project, "orgs/") {
		projectOrg, _, ok := splitProjectName(project)
		if !ok {
			return "", fmt.Errorf("--project %q: want web (with --org) or orgs/acme/projects/web", project)
		}
		if org != "" {
			if id, ok := orgID(org); !ok || id != projectOrg {
				return "", fmt.Errorf("--org %q differs from the org of --project %s", org, project)
			}
		}
		return project, nil
	}
	if org == "" || project == "" {
		return "", errors.New("--org and --project are required (or give --project orgs/<org>/projects/<project>, or a full zone name)")
	}
	id, ok := orgID(org)
	if !ok {
		return "", fmt.Errorf("--org %q: want acme or orgs/acme", org)
	}
	if strings.Contains(project, "/") {
		return "", fmt.Errorf("--project %q: want web (with --org) or orgs/acme/projects/web", project)
	}
	return "orgs/" + id + "/projects/" + project, nil
}

// zoneResource is the resource name of the zone arg names: a full name
// (orgs/<org>/projects/<project>/zones/<zone>), a DNS name, or the network
// of a reverse zone, the latter two in the project of p.
func zoneResource(arg string, p *projectFlags) (string, error) {
	if strings.HasPrefix(arg, "orgs/") {
		parent, id, ok := splitZoneName(arg)
		if !ok {
			return "", fmt.Errorf("zone %q: want example.com, 192.0.2.0/24 or orgs/<org>/projects/<project>/zones/<zone>", arg)
		}
		return parent + "/zones/" + id, nil
	}
	id, err := zoneID(arg)
	if err != nil {
		return "", err
	}
	parent, err := p.name()
	if err != nil {
		return "", err
	}
	return parent + "/zones/" + id, nil
}

// splitZoneName splits orgs/<org>/projects/<project>/zones/<zone>.
func splitZoneName(name string) (parent, id string, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 6 || parts[0] != "orgs" || parts[2] != "projects" || parts[4] != "zones" ||
		parts[1] == "" || parts[3] == "" || parts[5] == "" {
		return "", "", false
	}
	return strings.Join(parts[:4], "/"), canonicalZoneID(parts[5]), true
}

// zoneID is the zone id of a DNS name (example.com, Example.COM.) or of
// the network of a reverse zone (192.0.2.0/24 is 2.0.192.in-addr.arpa).
// FlashDNS accepts any case and a trailing dot too; canonical ids make the
// names in messages match the ones FlashDNS returns.
func zoneID(arg string) (string, error) {
	if p, err := netip.ParsePrefix(arg); err == nil {
		origin, err := zone.ReverseOrigin(p)
		if err != nil {
			return "", fmt.Errorf("zone %s: %w", arg, err)
		}
		return canonicalZoneID(origin), nil
	}
	id := canonicalZoneID(arg)
	if id == "" || strings.ContainsAny(id, "/ \t") {
		return "", fmt.Errorf("zone %q: want a DNS name (example.com), a network (192.0.2.0/24) or a full zone name", arg)
	}
	return id, nil
}

func canonicalZoneID(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// secondsValue is a flag holding seconds (a TTL, an SOA timer): a number,
// or a duration with the units of zone files (1w2d3h4m5s).
type secondsValue struct{ p *uint32 }

func (v secondsValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*v.p), 10)
}

func (v secondsValue) Set(s string) error {
	n, err := parseSeconds(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (secondsValue) Type() string { return "seconds" }

// maxSeconds is the largest TTL and SOA timer (RFC 2181 §8).
const maxSeconds = 1<<31 - 1

// parseSeconds reads 300, 5m, 1h30m, 1d or 2w (units s m h d w, any case).
func parseSeconds(s string) (uint32, error) {
	bad := fmt.Errorf("%q: want seconds (300) or a duration such as 5m, 1h30m, 1d, 2w", s)
	if s == "" {
		return 0, bad
	}
	var total, num uint64
	digits := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			num = num*10 + uint64(c-'0')
			digits = true
			if num > maxSeconds {
				return 0, fmt.Errorf("%q: more than %d seconds", s, maxSeconds)
			}
			continue
		}
		unit, ok := map[byte]uint64{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[c|0x20]
		if !ok || !digits {
			return 0, bad
		}
		total += num * unit
		num, digits = 0, false
		if total > maxSeconds {
			return 0, fmt.Errorf("%q: more than %d seconds", s, maxSeconds)
		}
	}
	total += num
	if total > maxSeconds {
		return 0, fmt.Errorf("%q: more than %d seconds", s, maxSeconds)
	}
	return uint32(total), nil
}

func addSeconds(fs *pflag.FlagSet, p *uint32, name, usage string) {
	fs.Var(secondsValue{p}, name, usage)
}
