package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCredStorePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "photon")
	s := &credStore{dir: dir}
	err := s.update(func(f *credentialsFile) (bool, error) {
		f.Profiles["http://127.0.0.1:7011"] = &profile{AegisURL: "http://127.0.0.1:7011", AccessToken: "a", RefreshToken: "r"}
		f.Current = "http://127.0.0.1:7011"
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, s.path(): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", path, got, want)
		}
	}
	f, err := s.read()
	if err != nil {
		t.Fatal(err)
	}
	if p := f.profile(f.Current); p == nil || p.AccessToken != "a" || p.RefreshToken != "r" || f.Version != credentialsVersion {
		t.Fatalf("read back %+v", f)
	}
	// Only the file and its lock remain: no temporary files.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "credentials.json,credentials.json.lock" {
		t.Fatalf("dir holds %v", names)
	}
}

func TestCredStoreTightensDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "photon")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &credStore{dir: dir}
	if err := s.update(func(*credentialsFile) (bool, error) { return true, nil }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %04o", fi.Mode().Perm())
	}
}

func TestCredStoreRefusesReadableByOthers(t *testing.T) {
	s := &credStore{dir: t.TempDir()}
	if err := os.WriteFile(s.path(), []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.path(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.read(); err == nil || !strings.Contains(err.Error(), "accessible by other users (mode 0644)") {
		t.Fatalf("read: %v", err)
	}
}

func TestCredStoreBadFiles(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"corrupt": {`{"version":1,"profiles":{"x":{"access_token":"SECRET-TOKEN"`, "is corrupt"},
		"newer":   {`{"version":99}`, "has version 99"},
	} {
		t.Run(name, func(t *testing.T) {
			s := &credStore{dir: t.TempDir()}
			if err := os.WriteFile(s.path(), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.read()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read: %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error quotes the file: %v", err)
			}
			// An update must not overwrite what it cannot read.
			if err := s.update(func(*credentialsFile) (bool, error) { return true, nil }); err == nil {
				t.Fatal("update over an unreadable file succeeded")
			}
			if b, _ := os.ReadFile(s.path()); string(b) != tc.content {
				t.Fatalf("file changed to %q", b)
			}
		})
	}
}

// TestCredStoreUpdateAtomic checks that a failed or unchanged update
// leaves the file byte for byte as it was.
func TestCredStoreUpdateAtomic(t *testing.T) {
	s := &credStore{dir: t.TempDir()}
	if err := s.update(func(f *credentialsFile) (bool, error) {
		f.Profiles["k"] = &profile{AccessToken: "one"}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(s.path())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.update(func(f *credentialsFile) (bool, error) {
		f.Profiles["k"].AccessToken = "two"
		return true, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	if err := s.update(func(f *credentialsFile) (bool, error) {
		f.Profiles["k"].AccessToken = "three"
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(s.path())
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatalf("file changed:\n%s\n%s", before, after)
	}
}

// TestCredStoreConcurrentUpdates: updates serialized by the lock file lose
// nothing. Each goroutine opens the lock file itself, as separate
// processes would.
func TestCredStoreConcurrentUpdates(t *testing.T) {
	s := &credStore{dir: t.TempDir()}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.update(func(f *credentialsFile) (bool, error) {
				f.Profiles[fmt.Sprint(i)] = &profile{AccessToken: "t"}
				return true, nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f, err := s.read()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Profiles) != n {
		t.Fatalf("%d profiles after %d updates", len(f.Profiles), n)
	}
}

func TestProfileSetToken(t *testing.T) {
	now := mustTime("2026-11-27T10:00:00Z")
	p := &profile{RefreshToken: "old", RefreshExpiry: now.Add(time.Hour)}
	tok := (&oauth2.Token{AccessToken: "a2", TokenType: "Bearer", Expiry: now.Add(15 * time.Minute)}).
		WithExtra(map[string]any{"refresh_expires_in": float64(600)})
	p.setToken(tok, now)
	// No new refresh token: the old one stays, with the new lifetime.
	if p.AccessToken != "a2" || p.RefreshToken != "old" || !p.RefreshExpiry.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("after refresh without rotation: %+v", p)
	}
	p.setToken(&oauth2.Token{AccessToken: "a3", RefreshToken: "new"}, now)
	if p.RefreshToken != "new" || !p.RefreshExpiry.IsZero() {
		t.Fatalf("after rotation without lifetime: %+v", p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "refresh_expiry") {
		t.Fatalf("zero time serialized: %s", b)
	}
}
