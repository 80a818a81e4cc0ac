// Package aegisv1 is the generated Go code of the aegis.v1 API: the gRPC
// services of Aegis, PhotonCloud's identity and authorization service
// (AuthnService, AuthzService, OrgService, IdentityService, PolicyService,
// AuditService), their messages, and the grpc-gateway handlers that serve
// the same API as JSON over HTTP under /v1/.
//
// The .proto files in this directory are the API reference: resource
// naming, etags, pagination, filters and error codes are described in
// common.proto, each service in its own file. The HTTP routes are in
// aegis_http.yaml. Everything else here is generated; regenerate it with
// `make generate` after changing a .proto or the YAML file, and commit the
// result, so that builds need no code generators.
package aegisv1
