package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

func TestListenSchemes(t *testing.T) {
	certs := testcerts.New(t)
	srvTLS, err := TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	cliTLS, err := TLSFiles{TrustedCAFile: certs.CAFile}.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	for _, tc := range []struct {
		url     string
		tls     *tls.Config
		network string
		useTLS  bool
	}{
		{"127.0.0.1:0", nil, "tcp", false},
		{"127.0.0.1:0", srvTLS, "tcp", true},
		{"http://127.0.0.1:0", srvTLS, "tcp", false}, // http ignores TLS, as etcd does
		{"https://127.0.0.1:0", srvTLS, "tcp", true},
		{"unix://" + sock, nil, "unix", false},
		{"unixs://" + sock, srvTLS, "unix", true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			l, err := Listen(tc.url, tc.tls)
			if err != nil {
				t.Fatal(err)
			}
			g := &Group{}
			g.ServeHTTP(&http.Server{Handler: NewHTTPMux(nil, nil), ReadHeaderTimeout: 5 * time.Second}, l)
			defer func() {
				if err := g.Stop(context.Background()); err != nil {
					t.Error(err)
				}
			}()
			var c net.Conn
			if tc.useTLS {
				c, err = tls.Dial(tc.network, l.Addr().String(), cliTLS)
			} else {
				c, err = net.Dial(tc.network, l.Addr().String())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.0\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := io.ReadAll(c)
			if err != nil || len(resp) < 12 || string(resp[:12]) != "HTTP/1.0 200" {
				t.Fatalf("response %q, %v", resp, err)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"https://127.0.0.1:0", "listen https://127.0.0.1:0: TLS URL without a certificate; set --cert-file and --key-file"},
		{"ftp://127.0.0.1:1", `invalid listen URL "ftp://127.0.0.1:1": scheme must be http, https, unix or unixs`},
		{"http://127.0.0.1", `invalid listen URL "http://127.0.0.1": a port is required`},
		{"localhost", `invalid listen address "localhost": address localhost: missing port in address`},
		{"unix://", `invalid listen URL "unix://": a socket path is required`},
	} {
		if _, err := Listen(tc.url, nil); err == nil || err.Error() != tc.want {
			t.Errorf("Listen(%q) error %v\nwant %s", tc.url, err, tc.want)
		}
	}
}

func TestGroupReportsFailure(t *testing.T) {
	g := &Group{}
	boom := errors.New("boom")
	stopped := make(chan struct{})
	g.Go(func() error { return boom }, func(context.Context) error { return nil })
	g.Go(func() error { <-stopped; return nil }, func(context.Context) error { close(stopped); return nil })
	select {
	case err := <-g.Err():
		if !errors.Is(err, boom) {
			t.Fatalf("Err() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("failure not reported")
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestListenAPI binds a service's listeners, and on a failure leaves none
// bound.
func TestListenAPI(t *testing.T) {
	ls, err := ListenAPI([]string{"http://127.0.0.1:0"}, []string{"http://127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr := ls.GRPC[0].Addr().String()
	defer ls.Close()
	if len(ls.GRPC) != 1 || len(ls.HTTP) != 1 {
		t.Fatalf("listeners %+v", ls)
	}
	// The HTTP port is taken: the gRPC one bound before the failure must
	// be released again.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	if _, err := ListenAPI([]string{"http://" + freeAddr}, []string{"http://" + grpcAddr}, nil); err == nil {
		t.Fatal("a port in use was bound")
	}
	again, err := ListenAPI([]string{"http://" + freeAddr}, nil, nil)
	if err != nil {
		t.Fatalf("the gRPC port of the failed attempt is still bound: %v", err)
	}
	again.Close()
	if _, err := ListenAPI([]string{"https://127.0.0.1:0"}, nil, nil); err == nil || !strings.Contains(err.Error(), "without a certificate") {
		t.Fatalf("https without TLS: %v", err)
	}
}
