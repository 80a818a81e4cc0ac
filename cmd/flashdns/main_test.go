package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/photoncloud/photoncloud/internal/flashdns"
	"github.com/photoncloud/photoncloud/internal/platform"
)

// TestDeployExample keeps deploy/flashdns/flashdns.toml loadable and valid.
func TestDeployExample(t *testing.T) {
	o := &options{}
	fs := pflag.NewFlagSet("flashdns", pflag.ContinueOnError)
	bindFlags(fs, o)
	if err := platform.LoadConfig(fs, "flashdns", "../../deploy/flashdns/flashdns.toml"); err != nil {
		t.Fatal(err)
	}
	// The example names a secret file under /etc; the environment stands
	// in for it here.
	o.secretFile = ""
	t.Setenv(flashdns.AegisClientSecretEnv, "s3cret")
	c, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.TSIGKeys) != 1 || c.TSIGKeys[0].Name != "xfr-key." || len(c.TransferACL) != 1 || len(c.NotifyTargets) != 1 ||
		c.AegisClientSecret != "s3cret" || len(c.DefaultNameservers) != 2 {
		t.Fatalf("example not applied: %+v", c)
	}
}

// TestBadFlags checks that wrong values stop the server with an error that
// names the flag, and never shows a TSIG secret.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--transfer-allow", "10.0.0.0/33"}, "--transfer-allow"},
		{[]string{"--tsig-key", "hmac-md5:k:c2VjcmV0"}, "--tsig-key"},
		{[]string{"--auth", "ldap", "--dns-addrs", "127.0.0.1:0"}, `auth mode "ldap"`},
		{[]string{"--auth", "aegis", "--dns-addrs", "127.0.0.1:0"}, "needs a credential for Aegis"},
	} {
		var stdout, stderr bytes.Buffer
		t.Setenv(flashdns.AegisClientSecretEnv, "")
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %q", tc.args, code, stderr.String(), tc.want)
		}
		if strings.Contains(stderr.String(), "c2VjcmV0") {
			t.Errorf("%q: the error shows the secret: %q", tc.args, stderr.String())
		}
	}
}
