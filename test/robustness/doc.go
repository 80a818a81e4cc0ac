// Package robustness proves a multi-member cluster under failure: it starts
// N (3 by default) real server processes (bin/chainfire, or bin/etcd with
// PHOTON_ROBUSTNESS_SERVER=etcd) on loopback ports, drives clientv3 traffic
// at them (puts with unique values, deletes, transactions with compares,
// linearizable gets) while a nemesis kills -9, restarts and pauses
// (SIGSTOP/SIGCONT) members one at a time, leader included, and then checks
// what the clients saw:
//
//   - the recorded history is linearizable against a key-value model with
//     revisions (github.com/anishathalye/porcupine, partitioned by key);
//   - every acknowledged write is in the final event log at its acknowledged
//     revision, every event was written by some client, revisions are
//     contiguous and agree with real-time order, and every read returned the
//     state the event log has at the read's revision;
//   - every watch stream (one per member, from revision 1 with prev_kv,
//     reopened at last revision + 1 whenever its member restarts or loses the
//     leader) is ordered, has no duplicates or gaps, matches the final event
//     log and catches up with it;
//   - all members end with the same HashKV.
//
// Operations whose outcome the client could not learn (timeouts, broken
// connections) are recorded as pending: they may take effect at any time
// after their call. Pending puts and transactions are resolved from the
// final event log by their unique values, as etcd's own robustness tests do.
//
// A failed check writes the history (JSON, as recorded and as checked),
// the porcupine visualization (HTML), the event log, the watch streams and
// the member logs to a directory under os.TempDir() whose name is in the
// failure message, so that it survives the test.
//
// `make test` runs the bounded form (about a minute). PHOTON_SOAK=1 runs the
// long form for PHOTON_SOAK_DURATION (default 10m):
//
//	make build etcd && go test -race -count=1 ./test/robustness/
//	PHOTON_ROBUSTNESS_SERVER=etcd go test -race -count=1 ./test/robustness/
//	PHOTON_SOAK=1 PHOTON_SOAK_DURATION=30m go test -count=1 -timeout 0 -run TestRobustness ./test/robustness/
//
// A server that cannot form a multi-member cluster (Chainfire before
// replication: it exits saying "multi-member clusters are not supported")
// makes TestRobustness skip with that message; the checker self-tests run
// regardless.
package robustness
