// Package e2e runs the real binaries end to end: bin/chainfire is started as
// a separate process with etcd's flags and driven with the real etcdctl
// v3.7.3 (bin/etcdctl), the etcd client library and plain HTTP, the way an
// operator would use it. It also kills the server with SIGKILL under load to
// check that no acknowledged write is lost.
//
// The binaries come from `make build`. They are looked up in
// $PHOTON_BIN_DIR, or in the bin/ directory of the repository root. Setting
// PHOTON_E2E_SERVER=etcd runs the same tests against the real etcd v3.7.3
// (bin/etcd) instead of bin/chainfire, which keeps the tests honest: every
// expectation here is etcd's behaviour.
//
// Run with:
//
//	make build && go test ./test/e2e/
//	make build etcd && PHOTON_E2E_SERVER=etcd go test ./test/e2e/
package e2e
