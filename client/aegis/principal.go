package aegis

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Principal is an authenticated caller.
type Principal struct {
	// Name is the principal's name (the token's "sub"), e.g.
	// `orgs/acme/users/alice`.
	Name string
	// Kind is user or service account.
	Kind aegisv1.PrincipalKind
	// Org is the principal's org as a resource name, `orgs/{org}`
	// (`orgs/system` for operators).
	Org string
	// Project, if set, is the project the credential is restricted to,
	// `orgs/{org}/projects/{project}`.
	Project string
	// Permissions, if non-empty, are the permission patterns a downscoped
	// token is restricted to. Aegis enforces them; they are here for
	// display and logs.
	Permissions []string
	// TokenID is the access token's id ("jti"); empty for a caller
	// authenticated by its certificate alone.
	TokenID string
	// ClientID is the OAuth2 client the token was issued to, if any.
	ClientID string
	// ExpiresAt is when the token expires; zero for a certificate.
	ExpiresAt time.Time
	// Certificate is the verified mTLS client certificate of the
	// connection, when the caller presented one (with or without a token).
	Certificate *CertIdentity
}

// credential is what the interceptor keeps in the context besides the
// principal: how to name the subject to Aegis for further checks in the
// handler. The raw token stays unexported so that handlers that log the
// Principal never log a bearer token.
type credential struct {
	p     *Principal
	token string // raw access token; "" for an mTLS principal
}

type ctxKey struct{}

// FromContext returns the principal the interceptor authenticated, or
// false in a public method or outside an intercepted call. The Principal
// is shared: do not modify it.
func FromContext(ctx context.Context) (*Principal, bool) {
	c, ok := ctx.Value(ctxKey{}).(*credential)
	if !ok {
		return nil, false
	}
	return c.p, true
}

func withCredential(ctx context.Context, c *credential) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

func credentialFrom(ctx context.Context) (*credential, bool) {
	c, ok := ctx.Value(ctxKey{}).(*credential)
	return c, ok
}

// TenantDenialCode is the default Config.DenialCode. A denied resource
// outside what the caller's credential can see — another org, or another
// project for a project-restricted token — is NotFound, so that names in
// other tenants cannot be probed (the platform rule "another tenant's
// resource is NotFound"); inside it the caller may know the resource exists
// and gets PermissionDenied.
//
// Only the names are compared. A service that wants NotFound also for
// resources inside the caller's tenant that the caller may not read can
// supply its own DenialCode, e.g. asking Authorize for the "get"
// permission.
func TenantDenialCode(p *Principal, c Check) codes.Code {
	if p == nil {
		return codes.NotFound
	}
	if !strings.HasPrefix(c.Resource, "orgs/") {
		// system, or a name outside every tenant: nothing to hide.
		return codes.PermissionDenied
	}
	scope := p.Org
	if p.Project != "" {
		scope = p.Project
	}
	if scope == "" || !within(c.Resource, scope) {
		return codes.NotFound
	}
	return codes.PermissionDenied
}

// within reports whether name is scope or below it, segment by segment
// (orgs/acme2 is not within orgs/acme).
func within(name, scope string) bool {
	return name == scope || strings.HasPrefix(name, scope+"/")
}

// orgName and projectName accept both the bare id and the resource name
// form, because the token claims hold the org id ("acme") while the API
// speaks in names ("orgs/acme").
func orgName(org string) string {
	if org == "" || strings.HasPrefix(org, "orgs/") {
		return org
	}
	return "orgs/" + org
}

func projectName(org, project string) string {
	if project == "" || strings.HasPrefix(project, "orgs/") {
		return project
	}
	return orgName(org) + "/projects/" + project
}

func clonePrincipal(p *Principal) *Principal {
	c := *p
	c.Permissions = slices.Clone(p.Permissions)
	return &c
}
