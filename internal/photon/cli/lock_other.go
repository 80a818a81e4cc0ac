//go:build !unix

package cli

// lockFile is a no-op where flock is unavailable: concurrent photon
// processes may then race on a refresh, and the loser must log in again.
func lockFile(string) (unlock func(), err error) {
	return func() {}, nil
}
