package platform

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/photoncloud/photoncloud/internal/platform/testcerts"
)

func TestGRPCServerHealthAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	var intercepted atomic.Int32
	srv, hs := NewGRPCServer(GRPCOptions{
		Registry: reg,
		Logger:   discardLogger(),
		UnaryInterceptors: []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			intercepted.Add(1)
			return h(ctx, req)
		}},
	})
	addr := serveGRPC(t, srv, nil)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check: %v, %v", resp, err)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health check after NOT_SERVING: %v, %v", resp, err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); err == nil {
		t.Fatal("unknown service reported healthy")
	}
	if n := intercepted.Load(); n != 3 {
		t.Errorf("custom interceptor ran %d times, want 3", n)
	}

	handled := map[string]float64{}
	var histograms int
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetName() {
			case "grpc_server_handled_total":
				key := labels["grpc_type"] + " " + labels["grpc_service"] + "/" + labels["grpc_method"] + " " + labels["grpc_code"]
				handled[key] = m.GetCounter().GetValue()
			case "grpc_server_handling_seconds":
				histograms++
				if n := m.GetHistogram().GetSampleCount(); n != 3 {
					t.Errorf("histogram %v has %d samples, want 3", labels, n)
				}
			}
		}
	}
	want := map[string]float64{
		"unary grpc.health.v1.Health/Check OK":       2,
		"unary grpc.health.v1.Health/Check NotFound": 1,
	}
	if len(handled) != len(want) || handled["unary grpc.health.v1.Health/Check OK"] != 2 || handled["unary grpc.health.v1.Health/Check NotFound"] != 1 {
		t.Errorf("grpc_server_handled_total = %v, want %v", handled, want)
	}
	if histograms != 1 {
		t.Errorf("grpc_server_handling_seconds has %d series, want 1", histograms)
	}

	// A second server on the same registry shares the collectors instead of failing.
	srv2, _ := NewGRPCServer(GRPCOptions{Registry: reg, Logger: discardLogger()})
	srv2.Stop()
}

func TestGRPCServerTLS(t *testing.T) {
	certs := testcerts.New(t)
	srvTLS, err := TLSFiles{CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile, TrustedCAFile: certs.CAFile, ClientCertAuth: true}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := NewGRPCServer(GRPCOptions{TLS: srvTLS, Logger: discardLogger()})
	addr := serveGRPC(t, srv, nil)
	cliTLS, err := TLSFiles{CertFile: certs.ClientCertFile, KeyFile: certs.ClientKeyFile, TrustedCAFile: certs.CAFile}.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cliTLS)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check over mTLS: %v", err)
	}
}

// serveGRPC serves srv on a loopback port until the test ends.
func serveGRPC(t *testing.T, srv *grpc.Server, g *Group) string {
	t.Helper()
	l, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if g == nil {
		g = &Group{}
	}
	g.ServeGRPC(srv, l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return l.Addr().String()
}
