package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/test/testenv"
)

// TestFlagsAndConfig checks that bad flag values stop the server at once
// with a message naming the problem, and that configuration layers as
// documented: TOML file < environment < command line.
func TestFlagsAndConfig(t *testing.T) {
	t.Parallel()
	bins := FindBinaries(t)

	t.Run("bad-flags", func(t *testing.T) {
		t.Parallel()
		cases := []badCase{
			{"initial-cluster-state", []string{"--initial-cluster-state", "bogus"}, nil, []string{"initial-cluster-state", "bogus"}},
			{"heartbeat-interval", []string{"--heartbeat-interval", "abc"}, nil, []string{"heartbeat-interval", "abc"}},
			{"unknown-flag", []string{"--no-such-flag"}, nil, []string{"no-such-flag"}},
			{"election-timeout", []string{"--election-timeout", "100"}, nil, []string{"election-timeout", "heartbeat-interval"}},
			{"url-scheme", []string{"--listen-client-urls", "ftp://127.0.0.1:1"}, nil, []string{"ftp://127.0.0.1:1"}},
			{"auto-compaction-mode", []string{"--auto-compaction-mode", "bogus"}, nil, []string{"bogus"}},
			{"env-initial-cluster-state", nil, []string{envVar(bins.Kind, "initial-cluster-state") + "=bogus"}, []string{"bogus"}},
		}
		if bins.Kind == KindChainfire {
			dir := t.TempDir()
			unknown := filepath.Join(dir, "unknown.toml")
			writeFile(t, unknown, "name = \"x\"\nbogus-key = 1\n")
			syntax := filepath.Join(dir, "syntax.toml")
			writeFile(t, syntax, "name = \n")
			cases = append(cases,
				badCase{"config-unknown-key", []string{"--config", unknown}, nil, []string{"bogus-key"}},
				badCase{"config-syntax", []string{"--config", syntax}, nil, []string{syntax}},
				badCase{"config-missing", []string{"--config", filepath.Join(dir, "nope.toml")}, nil, []string{"nope.toml"}},
			)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				ports, err := testenv.FreePorts(3)
				if err != nil {
					t.Fatal(err)
				}
				peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
				args := []string{
					"--name", "bad", "--data-dir", filepath.Join(t.TempDir(), "data"),
					"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "bad=" + peer,
					"--listen-http-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
				}
				if c.name != "url-scheme" {
					u := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
					args = append(args, "--listen-client-urls", u, "--advertise-client-urls", u)
				}
				args = TranslateArgs(bins.Kind, append(args, c.args...))
				out, err := runToExit(t, bins.Server, args, c.env)
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
					t.Fatalf("%s %s: exit %v, want a non-zero exit status; output:\n%s", bins.Kind, strings.Join(c.args, " "), err, out)
				}
				for _, w := range c.want {
					if !strings.Contains(strings.ToLower(out), strings.ToLower(w)) {
						t.Errorf("%s %s: output does not mention %q:\n%s", bins.Kind, strings.Join(c.args, " "), w, out)
					}
				}
				if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic:") {
					t.Errorf("%s %s: a bad flag should give a message, not a panic:\n%s", bins.Kind, strings.Join(c.args, " "), out)
				}
			})
		}
	})

	// Which layer sets the member name is visible in `etcdctl member list`.
	layers := []struct {
		name     string
		file     bool // name and listeners come from a --config TOML file
		env      bool // name from the environment
		flag     bool // name from --name
		wantName string
	}{
		{"file", true, false, false, "from-file"},
		{"env-over-file", true, true, false, "from-env"},
		{"flag-over-env", true, true, true, "from-flag"},
		{"env", false, true, false, "from-env"},
		{"flag-over-env-no-file", false, true, true, "from-flag"},
	}
	for _, l := range layers {
		t.Run("layers-"+l.name, func(t *testing.T) {
			if l.file && bins.Kind != KindChainfire {
				t.Skipf("%s has no TOML --config; this layer is Chainfire's", bins.Kind)
			}
			if l.env && l.flag && bins.Kind != KindChainfire {
				t.Skipf("%s refuses a flag that shadows an environment variable; Chainfire lets the flag win", bins.Kind)
			}
			t.Parallel()
			var env []string
			if l.env {
				env = append(env, envVar(bins.Kind, "name")+"=from-env")
			}
			s := NewServer(t, Options{Env: env, Args: func(s *Server) []string {
				// --initial-cluster must name the member that wins, so it is
				// always a flag: flags beat every other layer.
				args := []string{"--initial-cluster", l.wantName + "=" + s.PeerURL()}
				if l.flag {
					args = append(args, "--name", "from-flag")
				}
				listeners := map[string]string{
					"data-dir":                    s.DataDir,
					"listen-client-urls":          s.ClientURL(),
					"advertise-client-urls":       s.ClientURL(),
					"listen-peer-urls":            s.PeerURL(),
					"initial-advertise-peer-urls": s.PeerURL(),
					"listen-http-urls":            s.HTTPURL(),
				}
				if !l.file {
					for _, k := range sortedKeys(listeners) {
						args = append(args, "--"+k, listeners[k])
					}
					return args
				}
				var toml strings.Builder
				toml.WriteString("# written by TestFlagsAndConfig\nname = \"from-file\"\n")
				for _, k := range sortedKeys(listeners) {
					fmt.Fprintf(&toml, "%s = %s\n", k, strconv.Quote(listeners[k]))
				}
				toml.WriteString("heartbeat-interval = 100\nelection-timeout = 1000\n")
				path := filepath.Join(t.TempDir(), "chainfire.toml")
				writeFile(t, path, toml.String())
				return append(args, "--config", path)
			}})
			s.Start()
			s.WaitReady() // on the client port only the file (or the flags) named
			wantMatch(t, "member list", s.Ctl(t, "member", "list"),
				`[0-9a-f]+, started, `+l.wantName+`, http://127\.0\.0\.1:\d+, `+s.ClientURL()+`, false\n`)
			if _, err := os.Stat(s.DataDir); err != nil {
				t.Errorf("data dir %s from the configuration was not used: %v", s.DataDir, err)
			}
		})
	}
}

// envVar is the environment variable that sets a flag of the server kind.
func envVar(kind, flag string) string {
	prefix := "PHOTON_CHAINFIRE_"
	if kind == KindEtcd {
		prefix = "ETCD_"
	}
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// badCase is a server invocation that must be refused.
type badCase struct {
	name string
	args []string
	env  []string
	want []string // all must appear in the output, case-insensitively
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// runToExit runs a server that is expected to exit by itself, returning its
// combined output and exit error; one that keeps running is killed and
// fails the test.
func runToExit(t *testing.T, bin string, args, env []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = ServerEnv(env)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s still running after 15s, want it to refuse the configuration; output:\n%s", bin, strings.Join(args, " "), out.String())
	}
	return out.String(), err
}
