package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"
)

// credentialsFileName is the file under the photon config dir holding the
// tokens of every Aegis the user logged in to.
const credentialsFileName = "credentials.json"

// credentialsVersion is the format of the file; a newer one is refused
// rather than rewritten without the fields this photon does not know.
const credentialsVersion = 1

// credentialsFile is the JSON document of the credential store.
type credentialsFile struct {
	Version int `json:"version"`
	// Current is the profile of the last login: the Aegis that commands
	// without --aegis-url talk to.
	Current  string              `json:"current,omitempty"`
	Profiles map[string]*profile `json:"profiles,omitempty"`
}

// profile is the session with one Aegis, keyed by its normalized URL.
type profile struct {
	AegisURL      string    `json:"aegis_url"`
	AegisEndpoint string    `json:"aegis_endpoint"`
	CACert        string    `json:"cacert,omitempty"`
	Principal     string    `json:"principal,omitempty"`
	Project       string    `json:"project,omitempty"`
	TokenType     string    `json:"token_type,omitempty"`
	AccessToken   string    `json:"access_token"`
	Expiry        time.Time `json:"expiry,omitzero"`
	RefreshToken  string    `json:"refresh_token,omitempty"`
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`
}

func (f *credentialsFile) profile(key string) *profile {
	if f == nil {
		return nil
	}
	return f.Profiles[key]
}

func (p *profile) endpoint() string {
	if p == nil {
		return ""
	}
	return p.AegisEndpoint
}

func (p *profile) cacert() string {
	if p == nil {
		return ""
	}
	return p.CACert
}

// token is the profile's tokens in oauth2 form.
func (p *profile) token() *oauth2.Token {
	return &oauth2.Token{AccessToken: p.AccessToken, TokenType: p.TokenType, RefreshToken: p.RefreshToken, Expiry: p.Expiry}
}

// setToken stores a token response. A refresh response without a new
// refresh token keeps the old one (the oauth2 package does the same), and
// refresh_expires_in, which Aegis sends beside the standard fields, tells
// when the CLI must log in again.
func (p *profile) setToken(t *oauth2.Token, now time.Time) {
	p.AccessToken, p.TokenType, p.Expiry = t.AccessToken, t.TokenType, t.Expiry
	if t.RefreshToken != "" && t.RefreshToken != p.RefreshToken {
		p.RefreshToken = t.RefreshToken
		p.RefreshExpiry = time.Time{}
	}
	if secs, ok := extraSeconds(t.Extra("refresh_expires_in")); ok {
		p.RefreshExpiry = now.Add(time.Duration(secs) * time.Second)
	}
}

// extraSeconds reads a numeric token response field, which encoding/json
// decoded as float64 (or a server sent as a string).
func extraSeconds(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), n > 0
	case json.Number:
		i, err := n.Int64()
		return i, err == nil && i > 0
	case string:
		var i int64
		_, err := fmt.Sscan(n, &i)
		return i, err == nil && i > 0
	}
	return 0, false
}

// credStore is the credential file in dir. Every change happens under an
// exclusive lock on a separate lock file and is written to a temporary file
// renamed over the old one, so that concurrent photon processes neither
// lose each other's updates nor see a half-written file; readers need no
// lock.
type credStore struct {
	dir string
}

func (s *credStore) path() string { return filepath.Join(s.dir, credentialsFileName) }

// read returns the stored credentials; none stored is an empty file.
func (s *credStore) read() (*credentialsFile, error) {
	file, err := os.Open(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return &credentialsFile{Version: credentialsVersion, Profiles: map[string]*profile{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	defer file.Close()
	// The mode of the open file, not of the path, which a concurrent save
	// may have replaced since.
	fi, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		// Like ssh with a private key: tokens others can read are as good
		// as leaked, and silently fixing the mode would hide that.
		return nil, fmt.Errorf("credentials file %s is accessible by other users (mode %04o): chmod 600 it, or delete it and log in again", s.path(), perm)
	}
	b, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var f credentialsFile
	if err := json.Unmarshal(b, &f); err != nil {
		// The message of a syntax error quotes no content, so no token
		// leaks into it.
		return nil, fmt.Errorf("credentials file %s is corrupt (delete it and log in again): %w", s.path(), err)
	}
	if f.Version > credentialsVersion {
		return nil, fmt.Errorf("credentials file %s has version %d; this photon understands %d", s.path(), f.Version, credentialsVersion)
	}
	if f.Profiles == nil {
		f.Profiles = map[string]*profile{}
	}
	return &f, nil
}

// update runs fn on the stored credentials under the store's lock and
// saves them if fn reports a change. fn's error aborts without saving.
func (s *credStore) update(fn func(*credentialsFile) (changed bool, err error)) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(s.dir, credentialsFileName+".lock"))
	if err != nil {
		return fmt.Errorf("lock credentials: %w", err)
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	changed, err := fn(f)
	if err != nil || !changed {
		return err
	}
	return s.write(f)
}

// ensureDir creates the store's directory private to the user, and makes
// it so if it exists with wider permissions (it is photon's own).
func (s *credStore) ensureDir() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(s.dir, 0o700); err != nil {
			return fmt.Errorf("restrict config dir: %w", err)
		}
	}
	return nil
}

// write replaces the file atomically: a crash leaves the old or the new
// content, never a truncated file that would lose a rotated refresh token.
func (s *credStore) write(f *credentialsFile) error {
	f.Version = credentialsVersion
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode credentials: %w", err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(s.dir, credentialsFileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file 0600 already; Chmod states the intent and
	// covers platforms where it does not.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path()); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	done = true
	syncDir(s.dir)
	return nil
}

// syncDir makes a rename durable. Failure only risks the rename being lost
// in a crash, and some platforms cannot sync directories, so it is ignored.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
