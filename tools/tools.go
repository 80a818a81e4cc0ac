//go:build tools

// Package tools pins the versions of the third-party binaries PhotonCloud's
// tests and benchmarks run: etcdctl (the real client the e2e tests drive),
// the etcd server (the anchor for benchmarks and differential tests) and
// staticcheck. Keeping them in a separate module keeps etcd's server
// dependencies out of the main module's go.mod.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
