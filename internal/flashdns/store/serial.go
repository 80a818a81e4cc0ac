package store

import "time"

// serialLess reports s1 < s2 in RFC 1982 serial arithmetic (SERIAL_BITS
// 32). Serials exactly 2^31 apart are incomparable and never less.
func serialLess(s1, s2 uint32) bool {
	return s1 != s2 && s2-s1 < 1<<31
}

// nextSerial is the serial after old, as the flashdns.v1 API defines it:
// the current Unix time in seconds if that is greater than old in RFC 1982
// arithmetic, and old+1 (modulo 2^32) otherwise. Serials thus tell when a
// zone last changed, keep growing when a zone is deleted and created again,
// and always grow for secondaries, even for several changes per second.
func nextSerial(old uint32, now time.Time) uint32 {
	if t := uint32(now.Unix()); serialLess(old, t) {
		return t
	}
	return old + 1
}

// importSerial is the serial of a zone replaced by an import: the file's
// serial when it is greater than the bumped serial, so that an operator
// can keep a serial scheme of their own, and the bumped serial otherwise.
func importSerial(old, file uint32, now time.Time) uint32 {
	next := nextSerial(old, now)
	if serialLess(old, file) && serialLess(next, file) {
		return file
	}
	return next
}
