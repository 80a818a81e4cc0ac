//go:build etcdcompat_selftest

package etcdcompat

import "testing"

// candidateName labels the candidate in diffs.
const candidateName = "etcd-selftest"

// startCandidate, in self-test mode (-tags etcdcompat_selftest), runs a second
// etcd as the candidate: every scenario must then match exactly, which checks
// the harness itself (normalisation, timing tolerances, scenario determinism).
func startCandidate(tb testing.TB) (*backend, error) {
	return startEtcd(tb, candidateName)
}
