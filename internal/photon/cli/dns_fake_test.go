package cli

import (
	"context"
	"net"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

// fakeFlashDNS is a FAKE FlashDNS for the CLI's tests of argument
// handling and output: a gRPC server on loopback that serves the
// flashdns.v1 services by recording every request and answering what the
// test set with answer (by default an empty response of the right type).
// It implements none of FlashDNS's behaviour; the tests against the real
// server are in dns_real_test.go.
type fakeFlashDNS struct {
	url string

	mu      sync.Mutex
	calls   []fakeCall
	answers map[string]func(proto.Message) (proto.Message, error)
}

// fakeCall is one recorded request.
type fakeCall struct {
	method string // short name: CreateZone
	req    proto.Message
	auth   string // the authorization metadata
}

// fakeToken is the access token of the session the fake tests store; the
// fake refuses calls without it.
const fakeToken = "fake-access-token"

// fakeEmpty are the default answers.
var fakeEmpty = map[string]func() proto.Message{
	"CreateZone":       func() proto.Message { return &flashdnsv1.Zone{} },
	"GetZone":          func() proto.Message { return &flashdnsv1.Zone{} },
	"ListZones":        func() proto.Message { return &flashdnsv1.ListZonesResponse{} },
	"UpdateZone":       func() proto.Message { return &flashdnsv1.Zone{} },
	"DeleteZone":       func() proto.Message { return &emptypb.Empty{} },
	"ImportZone":       func() proto.Message { return &flashdnsv1.Zone{} },
	"ExportZone":       func() proto.Message { return &flashdnsv1.ExportZoneResponse{} },
	"ListRecordSets":   func() proto.Message { return &flashdnsv1.ListRecordSetsResponse{} },
	"GetRecordSet":     func() proto.Message { return &flashdnsv1.RecordSet{} },
	"ChangeRecordSets": func() proto.Message { return &flashdnsv1.ChangeRecordSetsResponse{} },
}

// startFakeFlashDNS serves the fake on a loopback port, over TLS with the
// certificates of certs when not nil.
func startFakeFlashDNS(t *testing.T, certs *testcerts.Files) *fakeFlashDNS {
	t.Helper()
	f := &fakeFlashDNS{answers: map[string]func(proto.Message) (proto.Message, error){}}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(f.intercept)}
	scheme := "http"
	if certs != nil {
		creds, err := credentials.NewServerTLSFromFile(certs.ServerCertFile, certs.ServerKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, grpc.Creds(creds))
		scheme = "https"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	flashdnsv1.RegisterZoneServiceServer(srv, flashdnsv1.UnimplementedZoneServiceServer{})
	flashdnsv1.RegisterRecordSetServiceServer(srv, flashdnsv1.UnimplementedRecordSetServiceServer{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("fake flashdns: %v", err)
		}
	})
	f.url = scheme + "://" + l.Addr().String()
	return f
}

// intercept records the request and answers in place of the services.
func (f *fakeFlashDNS) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	md, _ := metadata.FromIncomingContext(ctx)
	auth := strings.Join(md.Get("authorization"), ",")
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: method, req: proto.Clone(req.(proto.Message)), auth: auth})
	answer := f.answers[method]
	f.mu.Unlock()
	if auth != "Bearer "+fakeToken {
		return nil, status.Error(codes.Unauthenticated, "fake: no valid token")
	}
	if answer != nil {
		return answer(req.(proto.Message))
	}
	if empty := fakeEmpty[method]; empty != nil {
		return empty(), nil
	}
	return nil, status.Errorf(codes.Unimplemented, "fake: no answer for %s", method)
}

// answer makes method answer resp (or err).
func (f *fakeFlashDNS) answer(method string, resp proto.Message, err error) {
	f.answerFunc(method, func(proto.Message) (proto.Message, error) { return resp, err })
}

func (f *fakeFlashDNS) answerFunc(method string, fn func(proto.Message) (proto.Message, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[method] = fn
}

// take returns the calls recorded since the last take.
func (f *fakeFlashDNS) take() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// only returns the one call recorded since the last take, which must be
// of method.
func (f *fakeFlashDNS) only(t *testing.T, method string) proto.Message {
	t.Helper()
	calls := f.take()
	if len(calls) != 1 || calls[0].method != method {
		var got []string
		for _, c := range calls {
			got = append(got, c.method)
		}
		t.Fatalf("calls %v, want one %s", got, method)
	}
	if calls[0].auth != "Bearer "+fakeToken {
		t.Fatalf("%s sent authorization %q", method, calls[0].auth)
	}
	return calls[0].req
}

// none checks that nothing reached the fake since the last take.
func (f *fakeFlashDNS) none(t *testing.T) {
	t.Helper()
	if calls := f.take(); len(calls) != 0 {
		t.Fatalf("%d calls reached flashdns (first %s), want none", len(calls), calls[0].method)
	}
}

// fakeSessionEnv points the photon commands of this process at f, with a
// stored session whose access token is valid for an hour, so that no Aegis
// is needed (the token is never refreshed). It returns the config dir.
func fakeSessionEnv(t *testing.T, f *fakeFlashDNS) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(envConfigDir, dir)
	const aegisURL = "http://127.0.0.1:7011"
	t.Setenv(envAegisURL, aegisURL)
	t.Setenv(envAegisEndpoint, "127.0.0.1:7010")
	t.Setenv(envCACert, "")
	t.Setenv(envInsecure, "")
	t.Setenv(envFlashDNSURL, f.url)
	t.Setenv(envFlashDNSCACert, "")
	err := (&credStore{dir: dir}).update(func(c *credentialsFile) (bool, error) {
		c.Profiles[aegisURL] = &profile{AegisURL: aegisURL, AegisEndpoint: "127.0.0.1:7010", Principal: "orgs/acme/users/alice",
			TokenType: "Bearer", AccessToken: fakeToken, Expiry: time.Now().Add(time.Hour), RefreshToken: "fake-refresh-token"}
		c.Current = aegisURL
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// dnsOK runs photon dns with args and fails the test unless it exits 0.
func dnsOK(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errs := photon(t, stdin, append([]string{"dns"}, args...)...)
	if code != 0 {
		t.Fatalf("photon dns %q: exit %d, stdout %q, stderr %q", args, code, out, errs)
	}
	return out
}

// dnsFails runs photon dns with args, wants exit 1 and nothing on stdout,
// and returns stderr.
func dnsFails(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := photon(t, "", append([]string{"dns"}, args...)...)
	if code != 1 || out != "" {
		t.Fatalf("photon dns %q: exit %d, stdout %q, stderr %q; want exit 1", args, code, out, errs)
	}
	return errs
}
