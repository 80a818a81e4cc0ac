// Package flashdnsv1 is the generated Go code of the flashdns.v1 API: the
// gRPC services of FlashDNS, PhotonCloud's authoritative DNS service
// (ZoneService, RecordSetService), their messages, and the grpc-gateway
// handlers that serve the same API as JSON over HTTP under /v1/. It also
// holds JournalEntry, a message FlashDNS stores in Chainfire but never
// serves (storage.proto).
//
// The .proto files in this directory are the API reference: resource
// naming, name syntax, TTLs and serials, etags, pagination, limits and
// error codes are described at the top of zones.proto, each service and
// message in its own comment. The HTTP routes are in flashdns_http.yaml.
// Everything else here is generated; regenerate it with `make generate`
// after changing a .proto or the YAML file, and commit the result, so that
// builds need no code generators.
package flashdnsv1
