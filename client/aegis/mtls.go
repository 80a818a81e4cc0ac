package aegis

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// ErrNoPeerCertificate is returned by PeerCertIdentity when the connection
// is not TLS or the client presented no certificate that verified.
var ErrNoPeerCertificate = errors.New("no verified client certificate")

// CertIdentity is what identifies a verified mTLS client certificate, in
// the forms a service account's CertificateIdentity matches (see
// identity.proto).
type CertIdentity struct {
	// SHA256 is the lowercase hex SHA-256 of the leaf certificate's DER.
	SHA256 string
	// URIs are the URI subject alternative names, e.g. SPIFFE ids.
	URIs []string
	// DNSNames are the DNS subject alternative names.
	DNSNames []string
}

// PeerCertIdentity returns the identity of the verified client certificate
// of the gRPC connection in ctx. Only a certificate that chained to the
// server's trusted CAs counts (tls.Config.ClientAuth VerifyClientCertIfGiven
// or RequireAndVerifyClientCert): with RequestClientCert or
// RequireAnyClientCert a client could present any self-signed certificate
// with any names, so such certificates are ignored.
func PeerCertIdentity(ctx context.Context) (*CertIdentity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil, ErrNoPeerCertificate
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, ErrNoPeerCertificate
	}
	chains := info.State.VerifiedChains
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil, ErrNoPeerCertificate
	}
	return certIdentity(chains[0][0]), nil
}

func certIdentity(leaf *x509.Certificate) *CertIdentity {
	sum := sha256.Sum256(leaf.Raw)
	id := &CertIdentity{SHA256: hex.EncodeToString(sum[:])}
	for _, u := range leaf.URIs {
		id.URIs = append(id.URIs, u.String())
	}
	id.DNSNames = slices.Clone(leaf.DNSNames)
	return id
}

// Matches reports whether the certificate satisfies a service account's
// certificate identity: the pinned fingerprint (compared case-
// insensitively), or one of its URI or DNS SANs. DNS names compare
// case-insensitively, as DNS does; URIs compare exactly.
func (c *CertIdentity) Matches(m *aegisv1.CertificateIdentity) bool {
	if c == nil || m == nil {
		return false
	}
	switch x := m.GetMatch().(type) {
	case *aegisv1.CertificateIdentity_Sha256Fingerprint:
		return x.Sha256Fingerprint != "" && strings.EqualFold(c.SHA256, x.Sha256Fingerprint)
	case *aegisv1.CertificateIdentity_UriSan:
		return x.UriSan != "" && slices.Contains(c.URIs, x.UriSan)
	case *aegisv1.CertificateIdentity_DnsSan:
		return x.DnsSan != "" && slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, x.DnsSan) })
	}
	return false
}

// peerIP is the default Config.SourceIP: the address of the gRPC peer.
func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if a, ok := p.Addr.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap().String()
		}
		return ""
	}
	if ap, err := netip.ParseAddrPort(p.Addr.String()); err == nil {
		return ap.Addr().Unmap().String()
	}
	return ""
}
