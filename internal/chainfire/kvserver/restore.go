package kvserver

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"
	"github.com/photoncloud/photoncloud/internal/chainfire/snapshot"
)

// restoreBatchBytes bounds one Pebble batch while restoring.
const restoreBatchBytes = 16 << 20

// dbDir is where a member's Pebble store lives inside its data dir.
func dbDir(dataDir string) string { return filepath.Join(dataDir, "member", "db") }

// keepOnRestore tells which snapshot records a restored member takes: its
// data and leases, not the old membership, applied index or alarms, which
// belong to the cluster the snapshot came from.
func keepOnRestore(key []byte) bool {
	switch {
	case len(key) == 0, key[0] == 'r':
		return false
	case bytes.Equal(key, membersKey), bytes.Equal(key, appliedKey), bytes.HasPrefix(key, alarmPrefix):
		return false
	}
	return true
}

// Restore creates a member's data dir from a snapshot file, like
// `etcdutl snapshot restore`: the member started on it bootstraps a new
// cluster (new cluster and member ids from its flags) holding the snapshot's
// keys, revisions, history and leases. dataDir must not hold a member yet.
func Restore(snapPath, dataDir string) (RestoreInfo, error) {
	f, err := os.Open(snapPath)
	if err != nil {
		return RestoreInfo{}, err
	}
	defer f.Close()
	dir := dbDir(dataDir)
	if _, err := os.Stat(filepath.Join(dataDir, "member")); err == nil {
		return RestoreInfo{}, fmt.Errorf("data dir %s already has a member; restore into a new directory", dataDir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return RestoreInfo{}, err
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		return RestoreInfo{}, err
	}
	info, err := load(f, db)
	if err == nil {
		err = db.Flush()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.RemoveAll(filepath.Join(dataDir, "member"))
		return RestoreInfo{}, err
	}
	return info, nil
}

// RestoreInfo describes a snapshot's content.
type RestoreInfo struct {
	Revision        int64
	CompactRevision int64
	Keys            int
	Leases          int
	HashKV          uint32
	Records         int
}

// SnapshotStatus verifies a snapshot file and describes it, like
// `etcdutl snapshot status`.
func SnapshotStatus(snapPath string) (RestoreInfo, error) {
	f, err := os.Open(snapPath)
	if err != nil {
		return RestoreInfo{}, err
	}
	defer f.Close()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		return RestoreInfo{}, err
	}
	defer db.Close()
	return load(f, db)
}

// load copies a snapshot's records into db and opens the MVCC store on the
// result to check it and describe it.
func load(f *os.File, db *pebble.DB) (RestoreInfo, error) {
	var info RestoreInfo
	b := db.NewBatch()
	err := snapshot.Read(f, func(k, v []byte) error {
		if !keepOnRestore(k) {
			return nil
		}
		info.Records++
		if k[0] == leasePrefix[0] {
			info.Leases++
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() >= restoreBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b = db.NewBatch()
		}
		return nil
	})
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	b.Close()
	if err != nil {
		return info, fmt.Errorf("read snapshot: %w", err)
	}
	kv, err := mvcc.New(db, nil)
	if err != nil {
		return info, fmt.Errorf("snapshot holds no valid store: %w", err)
	}
	defer kv.Close()
	info.Revision, info.CompactRevision = kv.Rev(), kv.CompactRev()
	rr, err := kv.Range([]byte{0}, []byte{0}, mvcc.RangeOptions{CountOnly: true})
	if err != nil {
		return info, err
	}
	info.Keys = rr.Count
	if info.HashKV, _, _, err = kv.HashKV(0); err != nil {
		return info, err
	}
	if info.Records == 0 {
		return info, errors.New("snapshot has no records")
	}
	return info, nil
}
