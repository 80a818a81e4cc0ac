package authn

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
)

// FuzzTokenEndpoint feeds arbitrary bodies, content types and
// Authorization headers to the token and revocation endpoints. Whatever
// comes in, the answer is a well-formed, uncacheable JSON response: a token
// that verifies, or an RFC 6749 error whose HTTP status matches its code.
// Run with: go test -run '^$' -fuzz FuzzTokenEndpoint ./internal/aegis/authn
func FuzzTokenEndpoint(f *testing.F) {
	fx := newFixture(f, fixtureOptions{limiter: password.LimiterOptions{
		PerUser: password.Rate{Burst: 1 << 30, Every: time.Nanosecond},
		PerAddr: password.Rate{Burst: 1 << 30, Every: time.Nanosecond},
	}})
	h := fx.svc.Handler()

	form := "application/x-www-form-urlencoded"
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	pw := url.Values{"grant_type": {"password"}, "username": {"alice@acme"}, "password": {alicePW}}.Encode()
	f.Add(pw, form, "", false)
	f.Add(pw+"&scope=orgs%2Facme%2Fprojects%2Fweb+plasmavmc%3Avms%3Aget", form+"; charset=utf-8", basic(PublicClientID, ""), false)
	f.Add("grant_type=password&username=orgs%2Facme%2Fusers%2Fbob&password=x&org=acme", form, "", false)
	f.Add("grant_type=client_credentials&scope=orgs/acme/projects/web", form, basic("key-ci", ciSecret), false)
	f.Add("grant_type=client_credentials&client_id=key-old&client_secret="+ciSecret, form, "", false)
	f.Add("grant_type=refresh_token&refresh_token=rt1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", form, "", false)
	f.Add("grant_type="+url.QueryEscape(token.GrantTokenExchange)+"&subject_token=a.b.c&subject_token_type="+url.QueryEscape(tokenTypeIDToken)+"&audience=photoncloud&audience=x", form, "", false)
	f.Add("grant_type="+url.QueryEscape(token.GrantTokenExchange)+"&subject_token=eyJhbGciOiJFZERTQSJ9.e30.AA&subject_token_type="+url.QueryEscape(tokenTypeAccess), form, "", false)
	f.Add("token=abc&token_type_hint=refresh_token", form, "", true)
	f.Add("%zz&&==;", "text/plain", "Bearer x", false)
	f.Add("grant_type=password&grant_type=password", form, "Basic Og==", false)

	allowed := map[string]int{
		"invalid_request": 0, "invalid_client": http.StatusUnauthorized, "invalid_grant": http.StatusBadRequest,
		"unauthorized_client": http.StatusBadRequest, "unsupported_grant_type": http.StatusBadRequest,
		"invalid_scope": http.StatusBadRequest, "invalid_target": http.StatusBadRequest,
		"temporarily_unavailable": http.StatusTooManyRequests,
	}
	f.Fuzz(func(t *testing.T, body, ctype, auth string, revoke bool) {
		path := token.TokenPath
		if revoke {
			path = RevocationPath
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q", cc)
		}
		if revoke && rec.Code == http.StatusOK {
			return // RFC 7009: empty 200
		}
		var resp map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d, body %q is not JSON", rec.Code, rec.Body.Bytes())
		}
		if rec.Code == http.StatusOK {
			at, _ := resp["access_token"].(string)
			if _, err := fx.ver.Verify(at); err != nil {
				t.Fatalf("issued token does not verify: %v", err)
			}
			return
		}
		code, _ := resp["error"].(string)
		want, ok := allowed[code]
		if !ok {
			t.Fatalf("status %d, error %q", rec.Code, code)
		}
		if code == "invalid_request" {
			if rec.Code != http.StatusBadRequest && rec.Code != http.StatusMethodNotAllowed {
				t.Fatalf("invalid_request with status %d", rec.Code)
			}
		} else if rec.Code != want {
			t.Fatalf("%s with status %d", code, rec.Code)
		}
		if d, _ := resp["error_description"].(string); sanitizeDescription(d) != d {
			t.Fatalf("error_description %q has characters RFC 6749 forbids", d)
		}
	})
}
