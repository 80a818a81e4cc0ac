// Package server implements the gRPC services of the flashdns.v1 API
// (ZoneService and RecordSetService) on top of the FlashDNS store, and the
// authorization rules that client/aegis enforces for them.
//
// # Authorization
//
// The API promises (zones.proto) that a caller who may not get a zone
// receives NOT_FOUND for it, and PERMISSION_DENIED only for a zone it can
// see. A zone-scoped call is therefore checked twice:
//
//  1. Rules, the aegis.RuleFunc of the interceptor, asks for
//     flashdns:zones:get on the zone's canonical resource name
//     (orgs/{org}/projects/{project}/zones/{zone}), with the zone's labels
//     as the resource's labels; DenialCode turns a denial of that check
//     into NOT_FOUND;
//  2. the handler asks Config.Authorizer for the method's own permission
//     (flashdns:zones:update, flashdns:records:change, ...); DenialCode
//     turns a denial of that one into PERMISSION_DENIED, because the caller
//     passed the first check and may know the zone exists.
//
// CreateZone, ListZones and ImportZone are checked once, on the project;
// a denial there is NOT_FOUND outside the caller's tenant and
// PERMISSION_DENIED inside it (aegis.TenantDenialCode). Decisions are
// cached by the client for a second, so the second check of a call costs
// nothing on repeated calls. A zone that exists in another project is
// NOT_FOUND from the store, whatever Aegis allowed on the name.
//
// Without an Authorizer (auth switched off for a lab) the handlers make no
// checks; wire Rules and DenialCode into client/aegis whenever there is
// one:
//
//	authz, err := aegis.New(aegis.Config{..., Rules: server.Rules(st), DenialCode: server.DenialCode})
//	api, err := server.New(server.Config{Store: st, Authorizer: authz, Logger: lg, Registry: reg})
//	api.Register(grpcServer)
//
// # Errors
//
// Store errors map through store.GRPCCode with their message; anything
// else is INTERNAL with the details only in the log. FlashDNS never
// answers UNKNOWN.
package server
