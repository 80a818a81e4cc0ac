//go:build race

package password

// raceEnabled is true under -race, which makes argon2 several times slower,
// so timing assertions are skipped then.
const raceEnabled = true
