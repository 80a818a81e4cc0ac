// Package token issues and verifies Aegis access tokens and refresh tokens
// and manages the keys that sign them.
//
// Access tokens are JWTs (RFC 7519, typ "at+jwt" as in RFC 9068) signed
// with Ed25519 (alg EdDSA, RFC 8037) and carrying the signing key's id in
// the "kid" header. Any OIDC library that supports EdDSA verifies them
// through the discovery document ([NewDiscovery]) and the JWKS
// ([Keyring.JWKS]); Aegis itself verifies them with [Verifier], which adds
// revocation checks. Refresh tokens ([Refresher]) are opaque random
// secrets, stored only as hashes and rotated on every use.
//
// The package is pure: it keeps state in memory and persists through small
// interfaces the Aegis server implements on Chainfire ([KeyStore],
// [RefreshStore]) or feeds from Chainfire watches ([RevocationList]).
// MemKeyStore and MemRefreshStore are in-memory implementations for tests.
//
// JOSE library: github.com/go-jose/go-jose/v4 rather than golang-jwt/v5,
// because (1) its parse API requires the list of allowed algorithms, so
// "alg":"none", HS256-with-the-public-key and every other algorithm
// confusion fail before any key is chosen; (2) it is the library go-oidc
// uses, so Aegis and standard clients agree on how a JWS is parsed; (3) it
// has RFC 7517 JWK types and RFC 7638 thumbprints for the JWKS and key ids;
// (4) it rejects unknown "crit" headers. Claim validation is our own code,
// because Aegis needs its own error classes, one injectable clock and
// revocation checks in the same pass.
package token
