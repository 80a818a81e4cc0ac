package platform

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DialSelf connects to a gRPC listener of this same process at addr, as a
// server's JSON gateway does. serverTLS is the listener's configuration
// (nil for plaintext). Over TLS the connection trusts exactly the
// certificate that listener serves, not a CA: the process bound addr
// itself, so the gateway works without a trusted CA file and without a
// certificate that names the listen address (0.0.0.0, an IP). A listener
// that requires client certificates is shown its own certificate, which
// must then be valid for client authentication too.
func DialSelf(addr string, serverTLS *tls.Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if serverTLS != nil {
		c, err := selfClientTLS(serverTLS)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(c)
	}
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to own listener %s: %w", addr, err)
	}
	return conn, nil
}

// selfClientTLS is the client side of DialSelf: it accepts only a peer
// presenting one of serverTLS's own leaf certificates.
func selfClientTLS(serverTLS *tls.Config) (*tls.Config, error) {
	var own [][]byte
	for _, c := range serverTLS.Certificates {
		if len(c.Certificate) > 0 {
			own = append(own, c.Certificate[0])
		}
	}
	if len(own) == 0 {
		return nil, errors.New("tls: the listener has no certificate to trust")
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is not checked against a CA; VerifyConnection pins
		// the exact certificate instead, which is stricter.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				for _, raw := range own {
					if bytes.Equal(cs.PeerCertificates[0].Raw, raw) {
						return nil
					}
				}
			}
			return errors.New("tls: the listener did not present this process's own certificate")
		},
	}
	if serverTLS.ClientAuth == tls.RequireAndVerifyClientCert || serverTLS.ClientAuth == tls.RequireAnyClientCert {
		c.Certificates = serverTLS.Certificates
	}
	return c, nil
}
