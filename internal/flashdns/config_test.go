package flashdns

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestParseTSIGKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TSIGKey
		err  string
	}{
		{in: "xfr-key:c2VjcmV0", want: TSIGKey{Name: "xfr-key.", Algorithm: dns.HmacSHA256, Secret: "c2VjcmV0"}},
		{in: "HMAC-SHA512:Xfr.Example.:c2VjcmV0", want: TSIGKey{Name: "xfr.example.", Algorithm: dns.HmacSHA512, Secret: "c2VjcmV0"}},
		{in: "hmac-md5:k:c2VjcmV0", err: "unsupported algorithm"},
		{in: "k:not base64!", err: "not base64"},
		{in: "k:", err: "not base64"},
		{in: "c2VjcmV0", err: "want [algorithm:]name:secret"},
		{in: "a:b:c:d", err: "want [algorithm:]name:secret"},
	} {
		got, err := ParseTSIGKey(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTSIGKey(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("ParseTSIGKey(%q): the error shows the secret: %v", tc.in, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("ParseTSIGKey(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		c := Config{AegisClientID: "k", AegisClientSecret: "s"}
		c.EnsureDefaults()
		return c
	}
	if c := valid(); c.Validate() != nil {
		t.Fatalf("defaults with a service account key: %v", c.Validate())
	}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		err    string
	}{
		{"no aegis credential", func(c *Config) { c.AegisClientID, c.AegisClientSecret = "", "" }, "needs a credential for Aegis"},
		{"id without secret", func(c *Config) { c.AegisClientSecret = "" }, "needs its secret"},
		{"auth none needs no credential", func(c *Config) { c.Auth, c.AegisClientID, c.AegisClientSecret = AuthNone, "", "" }, ""},
		{"unknown auth", func(c *Config) { c.Auth = "ldap" }, `auth mode "ldap"`},
		{"bad dns address", func(c *Config) { c.DNSAddrs = []string{"localhost"} }, "DNS address"},
		{"sockets", func(c *Config) { c.DNSSockets = 100 }, "sockets per address"},
		{"empty chainfire endpoint", func(c *Config) { c.ChainfireEndpoints = []string{" "} }, "empty Chainfire endpoint"},
		{"duplicate tsig key", func(c *Config) {
			k := TSIGKey{Name: "k.", Algorithm: dns.HmacSHA256, Secret: "c2VjcmV0"}
			c.TSIGKeys = []TSIGKey{k, k}
		}, "given twice"},
		{"client cert auth without CA", func(c *Config) { c.TLS.ClientCertAuth = true }, "--trusted-ca-file"},
	} {
		c := valid()
		tc.modify(&c)
		err := c.Validate()
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}
