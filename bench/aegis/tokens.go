package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Token rows: which grant is issued.
const (
	grantClientCredentials = "client_credentials"
	grantPassword          = "password"
)

// runTokens drives /oauth2/token with clients concurrent clients, each on
// its own keep-alive connection, issuing grant back to back.
//
// Password grants are rate limited per source address (30, then one every
// 2 s) and per user; the benchmark is one host on loopback, which Aegis
// trusts as a proxy, so it sends every login with its own
// X-Forwarded-For address, as a load balancer in front of many users
// would, and each client logs in as its own user.
func (b *bench) runTokens(ctx context.Context, grant string, clients int) (*window, error) {
	endpoint := "http://" + b.st.httpAddr + "/oauth2/token"
	forms := make([]string, clients)
	for k := range forms {
		var f url.Values
		switch grant {
		case grantClientCredentials:
			f = clientCredentials(b.fx.tokenKeys[k%len(b.fx.tokenKeys)])
		case grantPassword:
			f = url.Values{"grant_type": {"password"}, "client_id": {"photon-cli"},
				"username": {b.fx.logins[k%len(b.fx.logins)]}, "password": {b.fx.loginPass}}
		default:
			return nil, fmt.Errorf("unknown grant %q", grant)
		}
		forms[k] = f.Encode()
	}
	hcs := make([]*http.Client, clients)
	for k := range hcs {
		hcs[k] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	}
	defer func() {
		for _, hc := range hcs {
			hc.CloseIdleConnections()
		}
	}()
	var addr atomic.Uint32
	marker := []byte(`"access_token"`)
	op := func(lctx context.Context, client, _ int) (int, error) {
		req, err := http.NewRequestWithContext(lctx, http.MethodPost, endpoint, strings.NewReader(forms[client]))
		if err != nil {
			return -1, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if grant == grantPassword {
			a := addr.Add(1)
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", byte(a>>16), byte(a>>8), byte(a)))
		}
		resp, err := hcs[client].Do(req)
		if err != nil {
			return -1, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return -1, err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, marker) {
			return -1, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		return -1, nil
	}
	return b.drive(ctx, grant, fmt.Sprintf("token %s %d", grant, clients), clients, clients, 0, op)
}
