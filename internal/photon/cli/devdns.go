package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	aegisclient "github.com/photoncloud/photoncloud/client/aegis"
	"github.com/photoncloud/photoncloud/internal/flashdns"
)

// FlashDNS's identity at Aegis in photon dev: a service account of the
// system org allowed to ask Aegis about its callers.
const (
	devDNSServiceAccount = "orgs/system/serviceAccounts/flashdns"
	devDNSBinding        = "flashdns-authz-checker"
	devDNSKeyFile        = "aegis-key.json" // under <data-dir>/flashdns, mode 0600
	devNameserver        = "ns1.photon.internal."
)

// devDNSKey is the service account key photon dev keeps for FlashDNS.
type devDNSKey struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// startDevFlashDNS runs FlashDNS on the dev Chainfire, authorized by the
// dev Aegis as its own service account, answering DNS on o.dnsAddr and
// allowing zone transfers from loopback.
func startDevFlashDNS(ctx context.Context, o *devOptions, chainfireAddr string, t target, adminToken string,
	lg *slog.Logger, reg *prometheus.Registry, stdout io.Writer) (*flashdns.Server, error) {
	dir := filepath.Join(o.dataDir, "flashdns")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	key, err := ensureDevDNSIdentity(ctx, t, adminToken, filepath.Join(dir, devDNSKeyFile))
	if err != nil {
		return nil, fmt.Errorf("flashdns identity at aegis: %w", err)
	}
	cfg := flashdns.Config{
		ListenGRPCURLs:     []string{"http://" + o.dnsGRPCAddr},
		ListenHTTPURLs:     []string{"http://" + o.dnsHTTPAddr},
		DNSAddrs:           []string{o.dnsAddr},
		TransferACL:        []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		DefaultNameservers: []string{devNameserver},
		ChaosVersion:       "FlashDNS (photon dev)",
		ChainfireEndpoints: []string{chainfireAddr},
		AegisEndpoint:      t.endpoint,
		AegisIssuer:        t.url,
		AegisClientID:      key.ClientID,
		AegisClientSecret:  key.ClientSecret,
		Logger:             lg.With("component", "flashdns"),
		Registry:           reg,
	}
	fd, err := flashdns.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start flashdns: %w", err)
	}
	host, port, _ := net.SplitHostPort(fd.DNSAddr())
	fmt.Fprintf(stdout, "flashdns: DNS at %s (dig @%s -p %s), API at %s, zone transfers allowed from loopback\n", fd.DNSAddr(), host, port, fd.GRPCAddr())
	return fd, nil
}

// ensureDevDNSIdentity creates FlashDNS's service account, its binding
// and a key unless they exist, and returns the key. The key is kept in
// keyFile so that restarts reuse it instead of piling up keys.
func ensureDevDNSIdentity(ctx context.Context, t target, adminToken, keyFile string) (devDNSKey, error) {
	if adminToken == "" {
		// The CLI could not log in as admin; a key kept by an earlier run
		// still works.
		var key devDNSKey
		b, err := os.ReadFile(keyFile)
		if err == nil && json.Unmarshal(b, &key) == nil && key.ClientID != "" {
			return key, nil
		}
		return devDNSKey{}, fmt.Errorf("no key in %s and no admin session to create one", keyFile)
	}
	conn, err := t.dial(aegisclient.TokenCredentials(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: adminToken}), t.useTLS()))
	if err != nil {
		return devDNSKey{}, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ids := aegisv1.NewIdentityServiceClient(conn)
	_, err = ids.CreateServiceAccount(ctx, &aegisv1.CreateServiceAccountRequest{Parent: "orgs/system", ServiceAccountId: "flashdns",
		ServiceAccount: &aegisv1.ServiceAccount{DisplayName: "FlashDNS (photon dev)"}})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return devDNSKey{}, fmt.Errorf("create service account: %w", err)
	}
	_, err = aegisv1.NewPolicyServiceClient(conn).CreateBinding(ctx, &aegisv1.CreateBindingRequest{Parent: "system", BindingId: devDNSBinding,
		Binding: &aegisv1.Binding{Member: devDNSServiceAccount, Role: "roles/aegis.authzChecker"}})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return devDNSKey{}, fmt.Errorf("create binding: %w", err)
	}
	var key devDNSKey
	if b, err := os.ReadFile(keyFile); err == nil && json.Unmarshal(b, &key) == nil && key.ClientID != "" {
		_, err := ids.GetServiceAccountKey(ctx, &aegisv1.GetServiceAccountKeyRequest{Name: devDNSServiceAccount + "/keys/" + key.ClientID})
		if err == nil {
			return key, nil
		}
		if status.Code(err) != codes.NotFound {
			return devDNSKey{}, fmt.Errorf("get key: %w", err)
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return devDNSKey{}, fmt.Errorf("read %s: %w", keyFile, err)
	}
	k, err := ids.CreateServiceAccountKey(ctx, &aegisv1.CreateServiceAccountKeyRequest{Parent: devDNSServiceAccount,
		Key: &aegisv1.ServiceAccountKey{Description: "photon dev"}})
	if err != nil {
		return devDNSKey{}, fmt.Errorf("create key: %w", err)
	}
	key = devDNSKey{ClientID: k.GetClientId(), ClientSecret: k.GetClientSecret()}
	b, err := json.Marshal(key)
	if err != nil {
		return devDNSKey{}, err
	}
	if err := os.WriteFile(keyFile, b, 0o600); err != nil {
		return devDNSKey{}, fmt.Errorf("keep the key: %w", err)
	}
	return key, nil
}
