package kvserver

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// walFS makes Pebble's write-ahead logs preallocate the way etcd's WAL does:
// extending the file, not just reserving blocks past its end. Pebble asks for
// FALLOC_FL_KEEP_SIZE, so every write to a fresh log grows the file and every
// fdatasync must also journal the new size; on ext4 that makes the fsync a
// single write waits for markedly slower (measured here: ~55 µs against
// ~85-130 µs per fdatasync of a 300-byte append). Zeroes past the last record
// are what Pebble already expects from preallocated and recycled logs: replay
// reads them as the end of the log.
type walFS struct{ vfs.FS }

func (fs walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return wrapWAL(name, f), err
}

func (fs walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return wrapWAL(newname, f), err
}

func wrapWAL(name string, f vfs.File) vfs.File {
	if f == nil || !strings.HasSuffix(name, ".log") || f.Fd() == vfs.InvalidFd {
		return f
	}
	return walFile{f}
}

type walFile struct{ vfs.File }

// Preallocate extends the file with zeroes up to offset+length.
func (f walFile) Preallocate(offset, length int64) error {
	return unix.Fallocate(int(f.Fd()), 0, offset, length)
}
