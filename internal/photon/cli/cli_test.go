package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !regexp.MustCompile(`^photon \S+ \(.*go1\.\d+.*\)\n$`).MatchString(out.String()) {
		t.Fatalf("version output %q", out.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	if code := Run(context.Background(), []string{"nope"}, io.Discard, &stderr); code != 1 ||
		!strings.HasPrefix(stderr.String(), `photon: unknown command "nope" for "photon"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestDev runs photon dev, talks to its Chainfire with the etcd client,
// and checks that cancelling stops it cleanly with the data on disk.
func TestDev(t *testing.T) {
	t.Setenv("PHOTON_CONFIG_DIR", t.TempDir()) // dev logs the CLI in
	dataDir := filepath.Join(t.TempDir(), "photon-data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		defer pw.Close()
		done <- Run(ctx, []string{"dev", "--data-dir", dataDir,
			"--chainfire-client-addr", "127.0.0.1:0", "--chainfire-http-addr", "127.0.0.1:0",
			"--aegis-grpc-addr", "127.0.0.1:0", "--aegis-http-addr", "127.0.0.1:0", "--log-level", "warn"}, pw, io.Discard)
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`^chainfire: etcd API at (\S+) \(etcdctl --endpoints (\S+)\), metrics at http://(\S+)/metrics$`)
	var endpoint string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			endpoint = m[1]
			if m[2] != endpoint {
				t.Errorf("etcdctl hint %q differs from address %q", m[2], endpoint)
			}
			break
		}
	}
	if endpoint == "" {
		t.Fatalf("no listening line printed (exit %v)", <-done)
	}
	// Aegis comes up with the admin, org dev, project default and a
	// logged-in CLI.
	var ready bool
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "photon dev: the photon CLI is logged in as orgs/system/users/admin; org dev with project default is ready") {
			ready = true
			break
		}
		if strings.HasPrefix(l, "photon dev: data in") {
			break
		}
	}
	if !ready {
		t.Fatal("photon dev did not report the CLI logged in with org dev ready")
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out, errb bytes.Buffer
	if code := RunIO(ctx, []string{"iam", "projects", "get", "default", "--org", "dev", "-o", "json"}, strings.NewReader(""), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), `"orgs/dev/projects/default"`) {
		t.Fatalf("photon iam projects get after photon dev: exit %d, %s %s", code, out.String(), errb.String())
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	if _, err := cli.Put(rctx, "hello", "photon"); err != nil {
		t.Fatalf("put: %v", err)
	}
	resp, err := cli.Get(rctx, "hello")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "photon" {
		t.Fatalf("get: %v, %v", resp, err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "chainfire")); err != nil || !fi.IsDir() {
		t.Fatalf("chainfire data dir: %v", err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after cancel", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("photon dev did not stop")
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if len(rest) == 0 || rest[len(rest)-1] != "photon dev: stopped" {
		t.Fatalf("output after start: %q", rest)
	}
}
