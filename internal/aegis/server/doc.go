// Package server implements the gRPC services of Aegis other than
// authentication: OrgService, IdentityService, PolicyService (the admin
// API), AuthzService (the policy decision point) and AuditService, plus the
// interceptors that authenticate every call to them.
//
// # Authentication
//
// [Server.UnaryInterceptor] and [Server.StreamInterceptor] verify the
// `authorization: Bearer` access token of every call with the token
// Verifier (or, without a token, accept a verified mTLS client certificate
// bound to a service account), check that the principal still exists and
// is enabled, and put the [Caller] in the context. AuthnService (which
// authenticates on its own) and the gRPC health service are exempt.
//
// # Authorization and tenancy
//
// Every handler checks `aegis:<collection>:<verb>` on the target resource
// (the parent for create and list) with the in-process policy evaluator,
// after applying the caller's token restrictions (a downscoped token is
// limited to its project and permissions). A denial outside the caller's
// tenant is NOT_FOUND, so that names in other orgs cannot be probed; inside
// it PERMISSION_DENIED. "Inside" means: the caller's own org (or, for a
// project-restricted token, its project), or an org in which the caller may
// get the org itself (an operator or partner bound there). Checks happen
// before any store access, so the answer for a name the caller may not see
// is the same whether it exists or not.
//
// Bindings have one more rule, against escalation (escalation.go): a
// binding of a role at a scope also needs aegis:roles:bind there, or that
// the caller already holds every permission of the role there, without
// condition and for at least as long as the binding lasts.
//
// # Audit
//
// Every admin change that passed authorization (successful or not), every
// denied check (of the admin API and of AuthzService.Authorize and
// BatchAuthorize) and every failed authentication reported by the authn
// service becomes an aegis.v1.AuditEvent. Events are queued and written by
// one goroutine so that the request path never waits for the audit log; a
// full queue drops the event and counts it. Every decision is also logged
// at debug level.
//
// # Errors
//
// Store errors map to gRPC codes through store.GRPCCode; malformed input is
// INVALID_ARGUMENT before anything is read or written; internal failures
// are INTERNAL with the details only in the log. No handler returns
// UNKNOWN.
package server
