// Package snapshot is Chainfire's snapshot file format: a consistent copy of
// a member's applied state (MVCC revisions, leases, alarms, membership) that
// `etcdctl snapshot save` downloads and `chainfire snapshot restore` turns
// into a new member's data directory.
//
// Layout: the magic line, then records of uvarint key length, key, uvarint
// value length, value; a zero key length ends the records; zero padding to a
// multiple of 512 bytes; finally the SHA-256 of everything before it. The
// padding and trailing checksum are what etcd's snapshot client checks for
// (size % 512 == 32), so etcdctl accepts the stream unchanged.
package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Magic starts every snapshot file.
const Magic = "CHAINFIRE-SNAPSHOT-1\n"

// align is the block size etcd's snapshot client expects the data before the
// checksum to be a multiple of.
const align = 512

// maxRecord bounds one key or value, far above any request size, so a
// corrupt length cannot make the reader allocate without limit.
const maxRecord = 1 << 30

// ErrCorrupt reports a file that is not a whole, intact snapshot.
var ErrCorrupt = errors.New("snapshot: corrupt or truncated file")

// Writer encodes a snapshot. Add the records, then Close.
type Writer struct {
	out io.Writer
	w   io.Writer // out and the hash
	h   hash.Hash
	n   int64
	err error
	buf [binary.MaxVarintLen64]byte
}

// NewWriter starts a snapshot on w.
func NewWriter(w io.Writer) *Writer {
	sw := &Writer{out: w, h: sha256.New()}
	sw.w = io.MultiWriter(w, sw.h)
	sw.write([]byte(Magic))
	return sw
}

func (sw *Writer) write(b []byte) {
	if sw.err != nil {
		return
	}
	n, err := sw.w.Write(b)
	sw.n += int64(n)
	sw.err = err
}

// Add appends one record. Keys must not be empty.
func (sw *Writer) Add(key, value []byte) error {
	if len(key) == 0 {
		return errors.New("snapshot: empty key")
	}
	for _, b := range [][]byte{key, value} {
		sw.write(sw.buf[:binary.PutUvarint(sw.buf[:], uint64(len(b)))])
		sw.write(b)
	}
	return sw.err
}

// Close ends the records, pads and appends the checksum. It returns the
// total size written.
func (sw *Writer) Close() (int64, error) {
	sw.write([]byte{0})
	if pad := (align - sw.n%align) % align; pad > 0 {
		sw.write(make([]byte, pad))
	}
	if sw.err != nil {
		return sw.n, sw.err
	}
	// The checksum goes to the output only: it covers what came before it.
	_, err := sw.out.Write(sw.h.Sum(nil))
	return sw.n + sha256.Size, err
}

// Read verifies a snapshot and calls fn for every record in order. Nothing
// is passed to fn unless the whole file is intact: the checksum is checked
// first, in one pass over the file.
func Read(r io.ReadSeeker, fn func(key, value []byte) error) error {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if size < int64(len(Magic))+1+sha256.Size || (size-sha256.Size)%align != 0 {
		return fmt.Errorf("%w: size %d", ErrCorrupt, size)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.CopyN(h, r, size-sha256.Size); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r, want); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReader(io.LimitReader(r, size-sha256.Size))
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return fmt.Errorf("%w: not a Chainfire snapshot (etcd's bbolt snapshots cannot be restored here)", ErrCorrupt)
	}
	readField := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > maxRecord {
			return nil, fmt.Errorf("record of %d bytes", n)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return b, err
	}
	for {
		k, err := readField()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if len(k) == 0 {
			return nil
		}
		v, err := readField()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
}
