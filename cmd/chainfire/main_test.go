package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestFlagsIntoConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "chainfire.toml")
	if err := os.WriteFile(file, []byte(`
name = "from-file"
listen-peer-urls = ["http://127.0.0.1:12380"]
heartbeat-interval = 50
client-cert-auth = true
max-txn-ops = 9
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PHOTON_CHAINFIRE_MAX_TXN_OPS", "17")
	t.Setenv("PHOTON_CHAINFIRE_ELECTION_TIMEOUT", "600")

	o := &options{}
	fs := pflag.NewFlagSet("chainfire", pflag.ContinueOnError)
	bindFlags(fs, o)
	if err := fs.Parse([]string{"--name=m1", "--listen-client-urls=http://127.0.0.1:1,http://127.0.0.1:2", "--config", file}); err != nil {
		t.Fatal(err)
	}
	if err := o.server.LoadConfig(fs); err != nil {
		t.Fatal(err)
	}
	c := o.config()
	if c.Name != "m1" {
		t.Errorf("Name = %q, want the flag's m1", c.Name)
	}
	if strings.Join(c.ListenClientURLs, " ") != "http://127.0.0.1:1 http://127.0.0.1:2" {
		t.Errorf("ListenClientURLs = %q", c.ListenClientURLs)
	}
	if strings.Join(c.ListenPeerURLs, " ") != "http://127.0.0.1:12380" {
		t.Errorf("ListenPeerURLs = %q", c.ListenPeerURLs)
	}
	if c.MaxTxnOps != 17 {
		t.Errorf("MaxTxnOps = %d, want env's 17", c.MaxTxnOps)
	}
	if c.HeartbeatInterval != 50*time.Millisecond || c.ElectionTimeout != 600*time.Millisecond {
		t.Errorf("HeartbeatInterval %v, ElectionTimeout %v", c.HeartbeatInterval, c.ElectionTimeout)
	}
	if !c.ClientTLS.ClientCertAuth {
		t.Error("ClientCertAuth not set from file")
	}
	if c.QuotaBackendBytes != 2<<30 || c.DataDir != "default.chainfire" {
		t.Errorf("defaults lost: quota %d, data dir %q", c.QuotaBackendBytes, c.DataDir)
	}
}

func TestConfigErrorsExitOne(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("nmae = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--initial-cluster-state=maybe"}, `chainfire: invalid configuration: --initial-cluster-state must be "new" or "existing", got "maybe"` + "\n"},
		{[]string{"--config", bad}, `chainfire: config file ` + bad + `: unknown key "nmae"` + "\n"},
		{[]string{"--log-level=loud"}, `chainfire: invalid log level "loud": want debug, info, warn or error` + "\n"},
		{[]string{"--no-such-flag"}, "chainfire: unknown flag: --no-such-flag\n"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != 1 || stderr.String() != tc.want {
			t.Errorf("%v: exit %d, stderr %q\nwant exit 1, %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestServeAndStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		defer pw.Close()
		done <- run(ctx, []string{
			"--data-dir", t.TempDir(),
			"--listen-client-urls", "http://127.0.0.1:0",
			"--listen-peer-urls", "http://127.0.0.1:0",
			"--listen-http-urls", "http://127.0.0.1:0",
			"--log-level", "warn",
		}, pw, io.Discard)
	}()
	sc := bufio.NewScanner(pr)
	var metricsURL string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "chainfire: metrics at "); ok {
			metricsURL = u
			break
		}
	}
	if metricsURL == "" {
		t.Fatalf("no metrics address printed (exit %v)", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("go_goroutines")) {
		t.Fatalf("GET %s: %d\n%s", metricsURL, resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after cancel", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("chainfire did not stop")
	}
}

// TestDeployExample keeps deploy/chainfire/chainfire.toml loadable and valid.
func TestDeployExample(t *testing.T) {
	o := &options{}
	fs := pflag.NewFlagSet("chainfire", pflag.ContinueOnError)
	bindFlags(fs, o)
	if err := fs.Parse([]string{"--config", "../../deploy/chainfire/chainfire.toml"}); err != nil {
		t.Fatal(err)
	}
	if err := o.server.LoadConfig(fs); err != nil {
		t.Fatal(err)
	}
	c := o.config()
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Name != "cf1" || c.AutoCompactionRetention != "1h" || fs.Lookup("log-format").Value.String() != "json" {
		t.Fatalf("example not applied: name %q, retention %q, log format %q", c.Name, c.AutoCompactionRetention, fs.Lookup("log-format").Value.String())
	}
}
