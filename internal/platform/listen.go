package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc"
)

// ListenNetwork opens the socket named by rawURL without TLS and reports
// whether the URL asks for TLS (https and unixs; a bare host:port does not). It accepts "http://host:port",
// "https://host:port", "unix://path", "unixs://path" and a bare "host:port".
// As in etcd, the path of a unix URL is everything after "unix://". gRPC
// servers use it directly because they do the TLS handshake themselves.
func ListenNetwork(rawURL string) (l net.Listener, secure bool, err error) {
	network, addr, secure, err := parseListenURL(rawURL)
	if err != nil {
		return nil, false, err
	}
	if network == "unix" {
		// A socket file left by a killed process would block the restart.
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			_ = os.Remove(addr)
		}
	}
	l, err = net.Listen(network, addr)
	if err != nil {
		return nil, false, fmt.Errorf("listen %s: %w", rawURL, err)
	}
	return l, secure, nil
}

// Listen opens the socket named by rawURL (see ListenNetwork). https and
// unixs URLs are wrapped in TLS with tlsCfg, which they require; a bare
// host:port uses TLS when tlsCfg is set; http and unix URLs are plaintext.
func Listen(rawURL string, tlsCfg *tls.Config) (net.Listener, error) {
	secure, err := checkTLSURL(rawURL, tlsCfg)
	if err != nil {
		return nil, err
	}
	l, _, err := ListenNetwork(rawURL)
	if err != nil {
		return nil, err
	}
	if secure || (tlsCfg != nil && !strings.Contains(rawURL, "://")) {
		return tls.NewListener(l, tlsCfg), nil
	}
	return l, nil
}

// checkTLSURL parses rawURL and refuses a TLS URL without a TLS
// configuration, before anything is bound.
func checkTLSURL(rawURL string, tlsCfg *tls.Config) (secure bool, err error) {
	_, _, secure, err = parseListenURL(rawURL)
	if err != nil {
		return false, err
	}
	if secure && tlsCfg == nil {
		return false, fmt.Errorf("listen %s: TLS URL without a certificate; set --cert-file and --key-file", rawURL)
	}
	return secure, nil
}

func parseListenURL(rawURL string) (network, addr string, secure bool, err error) {
	if !strings.Contains(rawURL, "://") {
		if _, _, err := net.SplitHostPort(rawURL); err != nil {
			return "", "", false, fmt.Errorf("invalid listen address %q: %w", rawURL, err)
		}
		return "tcp", rawURL, false, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", false, fmt.Errorf("invalid listen URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Port() == "" {
			return "", "", false, fmt.Errorf("invalid listen URL %q: a port is required", rawURL)
		}
		if u.Path != "" && u.Path != "/" {
			return "", "", false, fmt.Errorf("invalid listen URL %q: a path is not allowed", rawURL)
		}
		return "tcp", u.Host, u.Scheme == "https", nil
	case "unix", "unixs":
		path := u.Host + u.Path
		if path == "" {
			return "", "", false, fmt.Errorf("invalid listen URL %q: a socket path is required", rawURL)
		}
		return "unix", path, u.Scheme == "unixs", nil
	default:
		return "", "", false, fmt.Errorf("invalid listen URL %q: scheme must be http, https, unix or unixs", rawURL)
	}
}

// Group runs servers and stops them together. The zero value is ready to use.
type Group struct {
	mu      sync.Mutex
	stops   []func(context.Context) error
	wg      sync.WaitGroup
	errOnce sync.Once
	errc    chan error
}

// Go runs serve in a goroutine owned by the group; stop must make serve
// return. An error from serve other than a clean shutdown is reported on Err.
func (g *Group) Go(serve func() error, stop func(context.Context) error) {
	g.mu.Lock()
	g.stops = append(g.stops, stop)
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := serve()
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			select {
			case g.errs() <- err:
			default: // an earlier failure is already reported
			}
		}
	}()
}

// ServeHTTP serves srv on l until Stop.
func (g *Group) ServeHTTP(srv *http.Server, l net.Listener) {
	g.Go(func() error { return srv.Serve(l) }, srv.Shutdown)
}

// ServeGRPC serves srv on l until Stop, which drains calls gracefully and
// cuts them off when Stop's context ends.
func (g *Group) ServeGRPC(srv *grpc.Server, l net.Listener) {
	g.Go(func() error { return srv.Serve(l) }, func(ctx context.Context) error {
		done := make(chan struct{})
		go func() {
			srv.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			srv.Stop() // makes GracefulStop return too
			<-done
			return ctx.Err()
		}
	})
}

// Err delivers the first server that failed on its own.
func (g *Group) Err() <-chan error { return g.errs() }

func (g *Group) errs() chan error {
	g.errOnce.Do(func() { g.errc = make(chan error, 1) })
	return g.errc
}

// Stop stops every server in reverse order of start and waits for all of
// them. It returns the first stop error.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	stops := g.stops
	g.stops = nil
	g.mu.Unlock()
	var first error
	for i := len(stops) - 1; i >= 0; i-- {
		if err := stops[i](ctx); err != nil && first == nil {
			first = err
		}
	}
	g.wg.Wait()
	return first
}

// APIListeners are a service's bound API listeners: gRPC (TLS, if any, is
// done by the gRPC server) and HTTP (TLS done by the listener).
type APIListeners struct {
	GRPC []net.Listener
	HTTP []net.Listener
}

// ListenAPI binds every gRPC and HTTP URL, before a service creates
// anything else, so that a port in use fails its start at once. An https
// gRPC URL without serverTLS is an error. On error nothing stays bound.
func ListenAPI(grpcURLs, httpURLs []string, serverTLS *tls.Config) (*APIListeners, error) {
	ls := &APIListeners{}
	for _, u := range grpcURLs {
		if _, err := checkTLSURL(u, serverTLS); err != nil {
			ls.Close()
			return nil, err
		}
		l, _, err := ListenNetwork(u)
		if err != nil {
			ls.Close()
			return nil, err
		}
		ls.GRPC = append(ls.GRPC, l)
	}
	for _, u := range httpURLs {
		l, err := Listen(u, serverTLS)
		if err != nil {
			ls.Close()
			return nil, err
		}
		ls.HTTP = append(ls.HTTP, l)
	}
	return ls, nil
}

// Close closes every listener (those not yet handed to a server).
func (ls *APIListeners) Close() {
	for _, l := range append(ls.GRPC, ls.HTTP...) {
		_ = l.Close()
	}
}
