package cli

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errNoSession is errNotLoggedIn when no session at all is stored for
// the Aegis in use (rather than one that ended): a command whose server
// may need no token (FlashDNS with --auth none) can go on without one.
var errNoSession = fmt.Errorf("%w", errNotLoggedIn)

// errNotLoggedIn and errSessionEnded tell the user what to do; both are
// answered by `photon login`.
var (
	errNotLoggedIn  = errors.New("not logged in")
	errSessionEnded = errors.New("session expired or was revoked")
)

// storedTokenSource is an oauth2.TokenSource over one profile of the
// credential store. It hands out the stored access token while it is
// valid; otherwise it refreshes with the stored refresh token through the
// oauth2 package and saves the rotated pair back before returning it,
// because the old refresh token stops working the moment Aegis answers.
//
// The refresh runs under the store's file lock and re-reads the profile
// first, so when several photon processes find the token expired at once,
// one refreshes and the others pick its result up instead of presenting
// the spent refresh token (which Aegis would take for theft, revoking the
// session).
type storedTokenSource struct {
	store *credStore
	key   string          // profile key, the Aegis URL
	conf  *oauth2.Config  // photon-cli at that Aegis
	ctx   context.Context // for the refresh request; carries the HTTP client
	now   func() time.Time

	mu  sync.Mutex
	tok *oauth2.Token
	err error // of the last Token call; see callErr
}

// Token implements oauth2.TokenSource.
func (s *storedTokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.token()
	s.err = err
	return t, err
}

// token is Token with s.mu held.
func (s *storedTokenSource) token() (*oauth2.Token, error) {
	if s.tok.Valid() {
		return s.tok, nil
	}
	var fresh *oauth2.Token
	err := s.store.update(func(f *credentialsFile) (bool, error) {
		p := f.profile(s.key)
		if p == nil || p.AccessToken == "" {
			return false, fmt.Errorf("%w to %s", errNotLoggedIn, s.key)
		}
		if t := p.token(); t.Valid() {
			// Still valid, or another process has refreshed it meanwhile.
			fresh = t
			return false, nil
		}
		if p.RefreshToken == "" || (!p.RefreshExpiry.IsZero() && !s.now().Before(p.RefreshExpiry)) {
			return false, fmt.Errorf("%w: the session with %s", errSessionEnded, s.key)
		}
		// An empty access token makes the oauth2 source refresh at once.
		t, err := s.conf.TokenSource(s.ctx, &oauth2.Token{RefreshToken: p.RefreshToken}).Token()
		if err != nil {
			return false, tokenError("refresh the session", false, err)
		}
		p.setToken(t, s.now())
		fresh = p.token()
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.tok = fresh
	return fresh, nil
}

// callErr is the error of a call whose credentials (client/aegis's
// TokenCredentials) took tokens from s. When the call failed because s had
// no token to give, it is s's own error: client/aegis words that failure
// for services ("get an access token: ..."), while the CLI's
// errors say what the user is to do. s may be nil (a call without a
// session).
func (s *storedTokenSource) callErr(err error) error {
	if s == nil || status.Code(err) != codes.Unauthenticated {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The CLI makes one call at a time, so a failure of the last Token
	// call is the failure of the call that asked for it.
	if s.err == nil {
		return err
	}
	return status.Error(codes.Unauthenticated, s.err.Error())
}

// tokenError explains a failed token request without echoing anything the
// server sent verbatim beyond its error code and description (which Aegis
// keeps free of secrets).
// login tells a failed password grant (wrong credentials) from a failed
// refresh (session over), which Aegis both answer with invalid_grant.
func tokenError(what string, login bool, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch re.ErrorCode {
	case "invalid_grant":
		if login {
			return fmt.Errorf("%s: invalid username or password", what)
		}
		return fmt.Errorf("%s: %w", what, errSessionEnded)
	case "temporarily_unavailable":
		msg := "too many attempts or Aegis is busy; retry later"
		if re.Response != nil {
			if ra := re.Response.Header.Get("Retry-After"); ra != "" {
				msg = fmt.Sprintf("too many attempts or Aegis is busy; retry in %ss", ra)
			}
		}
		return fmt.Errorf("%s: %s", what, msg)
	case "unsupported_grant_type":
		return fmt.Errorf("%s: Aegis refused the grant: %s", what, re.ErrorDescription)
	case "":
		code := "no status"
		if re.Response != nil {
			code = re.Response.Status
		}
		return fmt.Errorf("%s: unexpected answer from the token endpoint (%s); is --aegis-url right?", what, code)
	}
	if re.ErrorDescription != "" {
		return fmt.Errorf("%s: %s: %s", what, re.ErrorCode, re.ErrorDescription)
	}
	return fmt.Errorf("%s: %s", what, re.ErrorCode)
}
