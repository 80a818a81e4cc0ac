package platform

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type testFlags struct {
	fs       *pflag.FlagSet
	name     string
	urls     []string
	txnOps   int
	certAuth bool
	ratio    float64
	election time.Duration
	logLevel string
}

func newTestFlags(t *testing.T, args ...string) *testFlags {
	t.Helper()
	f := &testFlags{fs: pflag.NewFlagSet("test", pflag.ContinueOnError)}
	f.fs.StringVar(&f.name, "name", "default", "")
	f.fs.StringSliceVar(&f.urls, "listen-client-urls", []string{"http://localhost:2379"}, "")
	f.fs.IntVar(&f.txnOps, "max-txn-ops", 128, "")
	f.fs.BoolVar(&f.certAuth, "client-cert-auth", false, "")
	f.fs.Float64Var(&f.ratio, "ratio", 1, "")
	f.fs.DurationVar(&f.election, "election-timeout", time.Second, "")
	f.fs.StringVar(&f.logLevel, "log-level", "info", "")
	if err := f.fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEnvName(t *testing.T) {
	if got := EnvName("chainfire", "listen-client-urls"); got != "PHOTON_CHAINFIRE_LISTEN_CLIENT_URLS" {
		t.Fatalf("EnvName = %q", got)
	}
}

func TestLoadConfigDefaultsOnly(t *testing.T) {
	f := newTestFlags(t)
	if err := LoadConfig(f.fs, "test", ""); err != nil {
		t.Fatal(err)
	}
	if f.name != "default" || f.txnOps != 128 || len(f.urls) != 1 || f.urls[0] != "http://localhost:2379" {
		t.Fatalf("defaults changed: %+v", f)
	}
}

func TestLoadConfigFile(t *testing.T) {
	f := newTestFlags(t)
	if err := LoadConfig(f.fs, "test", "testdata/good.toml"); err != nil {
		t.Fatal(err)
	}
	if f.name != "from-file" {
		t.Errorf("name = %q", f.name)
	}
	if strings.Join(f.urls, " ") != "http://127.0.0.1:1 http://127.0.0.1:2" {
		t.Errorf("urls = %q", f.urls)
	}
	if f.txnOps != 64 || !f.certAuth || f.ratio != 0.5 || f.election != 2*time.Second || f.logLevel != "warn" {
		t.Errorf("values = %+v", f)
	}
}

// TestLoadConfigPrecedence checks flags > env > file > defaults.
func TestLoadConfigPrecedence(t *testing.T) {
	t.Setenv("PHOTON_TEST_NAME", "from-env")
	t.Setenv("PHOTON_TEST_MAX_TXN_OPS", "7")
	t.Setenv("PHOTON_TEST_LISTEN_CLIENT_URLS", "http://127.0.0.1:9,http://127.0.0.1:10")
	f := newTestFlags(t, "--max-txn-ops=3")
	if err := LoadConfig(f.fs, "test", "testdata/good.toml"); err != nil {
		t.Fatal(err)
	}
	if f.txnOps != 3 {
		t.Errorf("flag lost to env/file: max-txn-ops = %d", f.txnOps)
	}
	if f.name != "from-env" {
		t.Errorf("env lost to file: name = %q", f.name)
	}
	if strings.Join(f.urls, " ") != "http://127.0.0.1:9 http://127.0.0.1:10" {
		t.Errorf("env list: urls = %q", f.urls)
	}
	if f.logLevel != "warn" {
		t.Errorf("file value not applied: log-level = %q", f.logLevel)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"testdata/unknown-key.bad.toml", `config file testdata/unknown-key.bad.toml: unknown key "listen-client-url"`},
		{"testdata/syntax.bad.toml", `config file testdata/syntax.bad.toml: line 2: expected value but found '=' instead`},
		{"testdata/table.bad.toml", `config file testdata/table.bad.toml: key "name": tables are not supported; keys are flag names at the top level`},
		{"testdata/value.bad.toml", `config file testdata/value.bad.toml: key "max-txn-ops": invalid argument "many" for "--max-txn-ops" flag: strconv.ParseInt: parsing "many": invalid syntax`},
		{"testdata/nested.bad.toml", `config file testdata/nested.bad.toml: key "listen-client-urls": nested arrays are not supported`},
		{"testdata/missing.toml", `config file testdata/missing.toml: open testdata/missing.toml: no such file or directory`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			err := LoadConfig(newTestFlags(t).fs, "test", tc.file)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
}

func TestLoadConfigBadEnv(t *testing.T) {
	t.Setenv("PHOTON_TEST_CLIENT_CERT_AUTH", "maybe")
	err := LoadConfig(newTestFlags(t).fs, "test", "")
	want := `environment PHOTON_TEST_CLIENT_CERT_AUTH: invalid argument "maybe" for "--client-cert-auth" flag: strconv.ParseBool: parsing "maybe": invalid syntax`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

// TestLoadConfigArrays checks that a TOML array sets a list flag element
// by element (an element may hold commas) and that an empty array is the
// empty list.
func TestLoadConfigArrays(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	keys := fs.StringArray("tsig-key", nil, "")
	urls := fs.StringSlice("listen-http-urls", []string{"http://127.0.0.1:1"}, "")
	file := t.TempDir() + "/c.toml"
	if err := os.WriteFile(file, []byte("tsig-key = [\"a:c2VjcmV0\", \"b,with,commas:c2VjcmV0\"]\nlisten-http-urls = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := LoadConfig(fs, "test", file); err != nil {
		t.Fatal(err)
	}
	if len(*keys) != 2 || (*keys)[1] != "b,with,commas:c2VjcmV0" {
		t.Errorf("tsig-key = %q", *keys)
	}
	if len(*urls) != 0 {
		t.Errorf("listen-http-urls = %q, want empty", *urls)
	}
}
