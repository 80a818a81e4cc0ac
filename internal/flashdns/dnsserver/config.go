package dnsserver

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// Defaults applied by Start to zero Config fields.
const (
	DefaultUDPSize        = 1232
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultMaxTCPConns    = 512
	DefaultNotifyTimeout  = time.Second
	DefaultNotifyRetries  = 5
	// DefaultXFRMessageSize keeps AXFR/IXFR messages well under the 64 KiB TCP
	// limit: secondaries buffer whole messages and smaller ones stream sooner.
	DefaultXFRMessageSize = 16 << 10
)

// Config configures a DNS server. The zero value of every optional field
// selects a default; Addrs and Zones are required.
type Config struct {
	// Addrs are the host:port addresses served on both UDP and TCP. Port 0
	// binds one free port shared by UDP and TCP and by every socket of the
	// address.
	Addrs []string
	// SocketsPerAddr is the number of SO_REUSEPORT sockets per address and
	// protocol, each with its own goroutine; default GOMAXPROCS.
	SocketsPerAddr int
	// Zones returns the current zone table. It is called once per query and
	// must be cheap and lock-free (an atomic.Pointer load).
	Zones func() *zone.Table
	// UDPSize is the EDNS(0) UDP payload size we advertise and the largest
	// UDP response we send; default 1232 (DNS flag day 2020).
	UDPSize uint16

	// TransferACL lists the client networks allowed to AXFR/IXFR.
	TransferACL []netip.Prefix
	// TSIG are the keys a transfer request may be signed with; a signed
	// request is allowed from any address. ParseTSIGKey reads them from
	// text.
	TSIG []TSIGKey
	// TransferRequireTSIG, when set, allows transfers only with a valid TSIG
	// and, if TransferACL is not empty, only from its networks as well.
	TransferRequireTSIG bool

	// NotifyTargets receive a NOTIFY when a zone's serial changes. Each is
	// "host[:port]" (port 53 by default) optionally followed by " key NAME"
	// naming a TSIG key to sign the NOTIFY with, e.g.
	// "192.0.2.1:53 key xfr-key.".
	NotifyTargets []string
	// NotifyTimeout is the wait for the first NOTIFY response; it doubles on
	// every retry. Default 1s.
	NotifyTimeout time.Duration
	// NotifyRetries is the number of NOTIFY attempts per target; default 5.
	NotifyRetries int

	// ChaosVersion answers CH TXT version.bind and version.server;
	// ChaosID answers CH TXT id.server and hostname.bind. Empty refuses
	// them, as NSD does with hide-version/hide-identity.
	ChaosVersion, ChaosID string

	// TCPIdleTimeout closes TCP connections idle this long; default 10s.
	TCPIdleTimeout time.Duration
	// MaxTCPConns bounds open TCP connections over all addresses; when it
	// is reached accepting pauses until one closes. Default 512.
	MaxTCPConns int
	// XFRMessageSize is the target size of one AXFR/IXFR message; default
	// 16 KiB.
	XFRMessageSize int

	// LogQueries logs every query at debug level.
	LogQueries bool
	Logger     *slog.Logger
	// Registry receives the metrics; nil keeps them private.
	Registry *prometheus.Registry
}

// TSIGKey is a TSIG (RFC 8945) shared secret as configured.
type TSIGKey struct {
	// Name is the key's domain name, e.g. "xfr-key."; any case, the
	// trailing dot optional.
	Name string
	// Algorithm is hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384 or
	// hmac-sha512, in any case with or without the trailing dot; empty
	// means hmac-sha256.
	Algorithm string
	// Secret is the base64 encoded secret.
	Secret string
}

// String names the key and leaves out the secret, so that a key printed
// in an error or a log line with %v does not give the secret away.
func (k TSIGKey) String() string {
	return k.Name + " (" + strings.TrimSuffix(tsigAlgorithm(k.Algorithm), ".") + ")"
}

// ParseTSIGKey reads a key in dig's -y form, [algorithm:]name:secret (the
// algorithm defaults to hmac-sha256), and checks it. The key it returns
// has a canonical name and algorithm ("xfr-key.", "hmac-sha256."). Errors
// never show the secret.
func ParseTSIGKey(s string) (TSIGKey, error) {
	parts := strings.Split(s, ":")
	var k TSIGKey
	switch len(parts) {
	case 2:
		k = TSIGKey{Name: parts[0], Secret: parts[1]}
	case 3:
		k = TSIGKey{Algorithm: parts[0], Name: parts[1], Secret: parts[2]}
	default:
		return TSIGKey{}, errors.New("TSIG key: want [algorithm:]name:secret")
	}
	k.Name, k.Algorithm = dns.CanonicalName(k.Name), tsigAlgorithm(k.Algorithm)
	if _, err := k.parse(); err != nil {
		return TSIGKey{}, err
	}
	return k, nil
}

// ValidateTSIGKeys reports what Start would refuse in keys: every bad key
// and every name given twice.
func ValidateTSIGKeys(keys []TSIGKey) error {
	_, err := parseTSIGKeys(keys)
	return err
}

// tsigAlgorithm canonicalizes an algorithm name, applying the default.
func tsigAlgorithm(alg string) string {
	if alg == "" {
		return dns.HmacSHA256
	}
	return dns.CanonicalName(alg)
}

// tsigAlgorithms are the algorithms of RFC 8945 we accept, by canonical
// name; the one table both the config check and signing use. HMAC-MD5 is
// deliberately absent (RFC 8945 section 6 deprecates it).
var tsigAlgorithms = []struct {
	name string
	hash func() hash.Hash
}{
	{dns.HmacSHA1, sha1.New},
	{dns.HmacSHA224, sha256.New224},
	{dns.HmacSHA256, sha256.New},
	{dns.HmacSHA384, sha512.New384},
	{dns.HmacSHA512, sha512.New},
}

// tsigKey is a parsed TSIG key. Names are canonical (lower case, fully
// qualified) so they compare directly with names read from the wire.
type tsigKey struct {
	name   string
	alg    string // canonical algorithm name, e.g. "hmac-sha256."
	hash   func() hash.Hash
	size   int // full MAC length
	secret []byte
}

func (k *tsigKey) mac() hash.Hash { return hmac.New(k.hash, k.secret) }

// parse is the one check of a key: Start, ParseTSIGKey and
// ValidateTSIGKeys all come here.
func (k TSIGKey) parse() (*tsigKey, error) {
	name, alg := dns.CanonicalName(k.Name), tsigAlgorithm(k.Algorithm)
	if _, ok := dns.IsDomainName(name); !ok || name == "." {
		return nil, fmt.Errorf("TSIG key: %q is not a domain name", k.Name)
	}
	var h func() hash.Hash
	var names []string
	for _, a := range tsigAlgorithms {
		if a.name == alg {
			h = a.hash
		}
		names = append(names, strings.TrimSuffix(a.name, "."))
	}
	if h == nil {
		return nil, fmt.Errorf("TSIG key %s: unsupported algorithm %q (want one of %s)",
			name, strings.TrimSuffix(alg, "."), strings.Join(names, ", "))
	}
	raw, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil || len(raw) == 0 {
		// Not err itself: it quotes the offending byte of the secret.
		return nil, fmt.Errorf("TSIG key %s: the secret is not base64", name)
	}
	return &tsigKey{name: name, alg: alg, hash: h, size: h().Size(), secret: raw}, nil
}

// parseTSIGKeys checks every key and indexes them by canonical name.
func parseTSIGKeys(keys []TSIGKey) (map[string]*tsigKey, error) {
	m := make(map[string]*tsigKey, len(keys))
	var errs []error
	for _, k := range keys {
		pk, err := k.parse()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if m[pk.name] != nil {
			errs = append(errs, fmt.Errorf("TSIG key %s given twice", pk.name))
			continue
		}
		m[pk.name] = pk
	}
	return m, errors.Join(errs...)
}

// notifyTarget is one parsed NotifyTargets entry.
type notifyTarget struct {
	addr string // host:port for net.Dial
	key  *tsigKey
}

func parseNotifyTarget(s string, keys map[string]*tsigKey) (notifyTarget, error) {
	f := strings.Fields(s)
	if len(f) != 1 && (len(f) != 3 || f[1] != "key") {
		return notifyTarget{}, fmt.Errorf("notify target %q: want \"host[:port] [key NAME]\"", s)
	}
	t := notifyTarget{addr: f[0]}
	if _, _, err := net.SplitHostPort(t.addr); err != nil {
		// No port: a bare IPv4/IPv6 address or host name.
		host := strings.TrimSuffix(strings.TrimPrefix(t.addr, "["), "]")
		t.addr = net.JoinHostPort(host, "53")
	}
	if _, port, err := net.SplitHostPort(t.addr); err != nil {
		return notifyTarget{}, fmt.Errorf("notify target %q: %w", s, err)
	} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return notifyTarget{}, fmt.Errorf("notify target %q: bad port", s)
	}
	if len(f) == 3 {
		t.key = keys[dns.CanonicalName(f[2])]
		if t.key == nil {
			return notifyTarget{}, fmt.Errorf("notify target %q: unknown tsig key %q", s, f[2])
		}
	}
	return t, nil
}

// settings is the validated, defaulted form of Config used by the server.
type settings struct {
	Config
	keys    map[string]*tsigKey
	targets []notifyTarget
}

func newSettings(cfg Config) (*settings, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("dnsserver: no listen addresses")
	}
	if cfg.Zones == nil {
		return nil, errors.New("dnsserver: Zones is nil")
	}
	if cfg.SocketsPerAddr <= 0 {
		cfg.SocketsPerAddr = runtime.GOMAXPROCS(0)
	}
	if cfg.UDPSize == 0 {
		cfg.UDPSize = DefaultUDPSize
	}
	if cfg.UDPSize < 512 {
		cfg.UDPSize = 512
	}
	if cfg.TCPIdleTimeout <= 0 {
		cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = DefaultMaxTCPConns
	}
	if cfg.NotifyTimeout <= 0 {
		cfg.NotifyTimeout = DefaultNotifyTimeout
	}
	if cfg.NotifyRetries <= 0 {
		cfg.NotifyRetries = DefaultNotifyRetries
	}
	if cfg.XFRMessageSize <= 0 {
		cfg.XFRMessageSize = DefaultXFRMessageSize
	}
	cfg.XFRMessageSize = min(max(cfg.XFRMessageSize, 512), 65535)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	for _, s := range []string{cfg.ChaosVersion, cfg.ChaosID} {
		if len(s) > 255 {
			return nil, errors.New("dnsserver: chaos string longer than 255 bytes")
		}
	}
	s := &settings{Config: cfg}
	var err error
	if s.keys, err = parseTSIGKeys(cfg.TSIG); err != nil {
		return nil, fmt.Errorf("dnsserver: %w", err)
	}
	for _, t := range cfg.NotifyTargets {
		nt, err := parseNotifyTarget(t, s.keys)
		if err != nil {
			return nil, fmt.Errorf("dnsserver: %w", err)
		}
		s.targets = append(s.targets, nt)
	}
	return s, nil
}
