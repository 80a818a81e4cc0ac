// Package authn is Aegis's authentication front: it checks credentials and
// hands out tokens, over HTTP as an OAuth2 token endpoint and over gRPC as
// aegis.v1.AuthnService. Both paths run the same code (the grant functions
// in grants.go); they differ only in how a request is decoded and how an
// error is rendered (RFC 6749 section 5.2 JSON against gRPC status codes).
//
// # Grants
//
//   - password (Login): a user's org, username and password, checked with
//     argon2id through [password.Hasher] after [password.Limiter] allowed the
//     attempt (per user and per source address). An unknown user costs the
//     same argon2 work as a known one, and every failure gives the same
//     answer, so neither timing nor the response tells which names exist.
//     Only the built-in public client [PublicClientID] may use it, and
//     Config.DisablePasswordGrant switches it off.
//   - client_credentials (IssueServiceAccountToken): a service-account key
//     (client_id and client_secret, HTTP Basic or form), or, without a
//     secret, the verified mTLS client certificate of the connection bound
//     to a service account (RFC 8705 tls_client_auth).
//   - refresh_token (Refresh): rotation on every use and reuse detection,
//     both done by [token.Refresher]; only users get refresh tokens.
//   - token exchange, RFC 8693 (ExchangeToken): an ID token of a configured
//     external OIDC issuer, verified with github.com/coreos/go-oidc/v3 and
//     mapped to the user holding that federated identity; or an Aegis access
//     token, downscoped.
//
// Every grant can be downscoped to one project and/or a subset of
// permissions (the OAuth2 "scope" parameter: "orgs/<org>/projects/<p>" and
// permission patterns, space separated; "openid" and "offline_access" are
// accepted and ignored). Downscoping only ever narrows, and a project must
// be in the principal's org. The password grant's username may name the
// org: "orgs/<org>/users/<user>", "<user>@<org>", or "<user>" with the org
// from the extension parameter "org" or Config.DefaultLoginOrg.
//
// # HTTP
//
// [Service.Handler] serves token.TokenPath, the RFC 7009 revocation
// endpoint [RevocationPath], and the token package's discovery document and
// JWKS. Requests must be form-encoded POSTs with every parameter in the
// body, at most once; errors are RFC 6749 section 5.2 JSON bodies, and no
// response may be cached. Client credentials go in HTTP Basic (form-encoded
// first, RFC 6749 section 2.3.1) or in the body, never both.
//
// Tokens carry the OAuth2 client they were issued to in "client_id"; besides
// service-account key ids that is [PublicClientID], [FederatedClientID] or
// [CertificateClientID], from which WhoAmI reports how the caller
// authenticated.
//
// # Identity data
//
// The package reads identity data and records revocations through the small
// interfaces in store.go ([Users], [ServiceAccounts], [Principals],
// [Revoker], optionally [Authorizer] and [PasswordRehasher]); the Aegis
// server implements them on its Chainfire-backed store and wires them in
// [Config], together with the token package's objects and its revocation
// index. Every authentication attempt, failed or not, and every revocation
// is reported to Config.Audit.
//
// Passwords, client secrets, refresh tokens and access tokens are never
// logged, put in errors or in audit events.
package authn
