package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Authorize rows: whose access the platform service asks about, and
// which requests.
const (
	subjectPrincipal = "principal"
	// subjectAllowPath asks about principals too, but only the requests
	// built for an allow binding, which (nearly) all end allowed: no
	// denial, so no audit event. Against the full mix it shows what
	// auditing denials costs.
	subjectAllowPath = "principal, allow path only"
	subjectToken     = "access token"
)

// principalRequests renders w's requests for AuthzService.Authorize about
// a named principal, as `photon iam check` and services that know their
// caller by mTLS certificate ask.
func principalRequests(w *world) []*aegisv1.AuthorizeRequest {
	prod, dev := map[string]string{"env": "prod"}, map[string]string{"env": "dev"}
	out := make([]*aegisv1.AuthorizeRequest, len(w.reqs))
	for i, q := range w.reqs {
		labels := dev
		if q.prod {
			labels = prod
		}
		out[i] = &aegisv1.AuthorizeRequest{
			Subject:    &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: apiSubject(q.org, q.subj, q.idx)}},
			Permission: q.perm, Resource: apiResource(q.org, q.project, q.vm), ResourceLabels: labels, SourceIp: "10.1.2.3",
		}
	}
	return out
}

// allowPathOnly returns w with only the requests built for an allow
// binding, repeated to a power-of-two count (the load cycles through
// requests with a mask).
func allowPathOnly(w *world) *world {
	var keep []wRequest
	for _, q := range w.reqs {
		if q.class == classAllow {
			keep = append(keep, q)
		}
	}
	n := 1
	for n < len(keep) {
		n *= 2
	}
	out := &world{orgs: w.orgs, reqs: make([]wRequest, n)}
	for i := range out.reqs {
		out.reqs[i] = keep[i%len(keep)]
	}
	return out
}

// tokenRequests are Authorize requests whose subject is the access token
// of one of org-0's service accounts, as client/aegis sends for a caller
// that presented a bearer token: Aegis verifies the token (signature,
// expiry, revocation; verified tokens are cached) before deciding. Each
// account asks about its own project, where it may or may not hold a
// grant.
func tokenRequests(ctx context.Context, base string, keys []clientKey, n int) ([]*aegisv1.AuthorizeRequest, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	tokens := make([]string, len(keys))
	sas := make([]int, len(keys))
	for i, k := range keys {
		t, err := postToken(ctx, hc, base, clientCredentials(k))
		if err != nil {
			return nil, err
		}
		tokens[i] = t
		if _, err := fmt.Sscanf(k.account, "orgs/org-0/projects/p%d/serviceAccounts/sa%d", new(int), &sas[i]); err != nil {
			return nil, fmt.Errorf("subject account %q: %w", k.account, err)
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	perms := append(append([]string(nil), rolePerms["ProjectEditor"]...), randomPerms...)
	out := make([]*aegisv1.AuthorizeRequest, n)
	for i := range out {
		k := r.IntN(len(keys))
		vm := -1
		if r.IntN(2) == 0 {
			vm = r.IntN(vmsPerProject)
		}
		out[i] = &aegisv1.AuthorizeRequest{
			Subject:    &aegisv1.Subject{Identity: &aegisv1.Subject_AccessToken{AccessToken: tokens[k]}},
			Permission: perms[r.IntN(len(perms))], Resource: apiResource(0, saProject(sas[k]), vm),
			ResourceLabels: map[string]string{"env": "dev"}, SourceIp: "10.1.2.3",
		}
	}
	return out, nil
}

// runAuthorize drives AuthzService.Authorize with sh.clients concurrent
// callers over sh.conns connections, every call authenticated as the
// platform service (pdpAccount's token).
//
// With rate > 0 the calls are offered at that rate (open loop, see drive)
// rather than back to back.
func (b *bench) runAuthorize(ctx context.Context, subject string, reqs []*aegisv1.AuthorizeRequest, sh shape, rate float64) (*window, error) {
	conns := make([]*grpc.ClientConn, sh.conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	clients := make([]aegisv1.AuthzServiceClient, sh.conns)
	for i := range conns {
		c, err := dialAegis(b.st.grpcAddr)
		if err != nil {
			return nil, err
		}
		conns[i], clients[i] = c, aegisv1.NewAuthzServiceClient(c)
	}
	// One outgoing context for every call: the metadata is the same and
	// building it per call would only add load-generator work.
	cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+b.fx.callerToken)
	mask := len(reqs) - 1
	op := func(lctx context.Context, client, i int) (int, error) {
		if lctx.Err() != nil {
			return -1, lctx.Err()
		}
		resp, err := clients[client%len(clients)].Authorize(cctx, reqs[i&mask])
		if err != nil {
			return -1, err
		}
		switch d := resp.GetDecision(); {
		case d.GetAllowed():
			return outAllowed, nil
		case d.GetReason() == aegisv1.Decision_REASON_DENIED_BY_BINDING:
			return outDenied, nil
		}
		return outDefault, nil
	}
	// cctx is not cancelled by drive's end of the window; a call in
	// flight then finishes normally (milliseconds) and is not counted.
	label := fmt.Sprintf("authorize %s %d/%d", subject, sh.clients, sh.conns)
	if rate > 0 {
		label = fmt.Sprintf("authorize %s %d/%d at %.0f/s", subject, sh.clients, sh.conns, rate)
	}
	return b.drive(ctx, subject, label, sh.clients, sh.conns, rate, op)
}
