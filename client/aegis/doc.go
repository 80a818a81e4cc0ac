// Package aegis is what every PhotonCloud service imports to authenticate
// and authorize its callers through Aegis.
//
// An [Authorizer] provides gRPC server interceptors. For each call they
//
//  1. authenticate the caller: the access token in the gRPC metadata
//     `authorization: Bearer <JWT>` is verified locally against Aegis's
//     JWKS (EdDSA, kid, iss, aud, exp/nbf/iat with a small leeway), or,
//     without a token and when configured, the verified mTLS client
//     certificate is mapped to a service account ([CertIdentity]);
//  2. map the method (and request) to a permission and a resource with the
//     service's [RuleFunc];
//  3. ask Aegis's AuthzService.Authorize, passing the caller's own token as
//     the subject so that Aegis applies downscoping and revocation, with a
//     bounded decision cache of a few seconds;
//  4. put the [Principal] in the context for the handler ([FromContext]).
//
// Failures map to gRPC codes: a missing or bad credential is
// Unauthenticated; a denial is PermissionDenied, or NotFound for a resource
// the caller cannot see (another tenant's, see [TenantDenialCode]); Aegis
// unreachable is Unavailable (fail closed).
//
// Usage, in a service's server setup:
//
//	authz, err := aegis.New(aegis.Config{
//		Issuer:  "https://aegis.example.com:7011",
//		JWKSURL: "https://aegis.example.com:7011/.well-known/jwks.json",
//		Authz:   aegisv1.NewAuthzServiceClient(aegisConn),
//		PublicMethods: []string{"/grpc.health.v1.Health/"},
//		Rules: func(ctx context.Context, method string, req any) (aegis.Check, error) {
//			switch r := req.(type) {
//			case *dnsv1.GetZoneRequest:
//				return aegis.Check{Permission: "flashdns:zones:get", Resource: r.GetName()}, nil
//			case *dnsv1.CreateZoneRequest:
//				return aegis.Check{Permission: "flashdns:zones:create", Resource: r.GetParent()}, nil
//			}
//			return aegis.Check{}, status.Errorf(codes.Unimplemented, "no access rule for %s", method)
//		},
//		Logger:   lg,
//		Registry: reg,
//	})
//	if err != nil { ... }
//	defer authz.Close()
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(authz.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(authz.StreamServerInterceptor()),
//	)
//
// and in a handler:
//
//	p, _ := aegis.FromContext(ctx) // who is calling
//	if err := authz.Authorize(ctx, aegis.Check{Permission: "flashdns:records:list", Resource: zone}); err != nil {
//		return nil, err // already a gRPC status
//	}
//
// The service's own connection to Aegis (aegisConn) must authenticate as
// the service's service account (mTLS or a token of it); that account needs
// aegis:authz:check on system (role aegis.authzChecker) to ask about its
// callers.
package aegis
