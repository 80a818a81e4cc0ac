package aegis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/password"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

// The objects the first start creates. Their names are fixed so that every
// replica, racing or not, creates the same ones and exactly one wins.
const (
	SystemOrg          = "system"
	AdminUser          = "admin"
	adminName          = "orgs/" + SystemOrg + "/users/" + AdminUser
	adminBindingID     = "bootstrap-admin"
	adminBindingRole   = "roles/SystemAdmin"
	adminBindingParent = "system"
)

// bootstrap creates org system, user admin and admin's SystemAdmin binding
// at the system scope if they do not exist. An existing admin keeps its
// password: only the start that creates the user sets one.
func bootstrap(ctx context.Context, cfg *Config, st *store.Store, h *password.Hasher) error {
	if _, err := st.CreateOrg(ctx, SystemOrg, &aegisv1.Org{DisplayName: "System"}); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("create org %s: %w", SystemOrg, err)
	}
	if _, err := st.GetUser(adminName); errors.Is(err, store.ErrNotFound) {
		pw, generated, err := bootstrapPassword(cfg)
		if err != nil {
			return err
		}
		hash, err := h.Hash(ctx, pw)
		if err != nil {
			return fmt.Errorf("hash the bootstrap password: %w", err)
		}
		// A generated password is on disk before the user exists, so no
		// failure in between can leave an admin whose password nobody has.
		path := filepath.Join(cfg.DataDir, bootstrapPasswordFileName)
		if generated {
			if err := writeBootstrapPassword(cfg.DataDir, path, pw); err != nil {
				return err
			}
		}
		_, err = st.CreateUser(ctx, "orgs/"+SystemOrg, AdminUser, &aegisv1.User{DisplayName: "Administrator"}, hash)
		switch {
		case errors.Is(err, store.ErrAlreadyExists):
			// Another replica won the race with its own password: ours
			// was never valid, so do not hand it out.
			if generated {
				_ = os.Remove(path)
			}
		case err != nil:
			return fmt.Errorf("create user %s: %w", adminName, err)
		case generated:
			fmt.Fprintf(cfg.Out, "aegis: created user %s (SystemAdmin) with password %s\naegis: the password is also in %s; change it with `photon iam users set-password`\n",
				adminName, pw, path)
		}
	} else if err != nil {
		return fmt.Errorf("look up %s: %w", adminName, err)
	}
	_, err := st.CreateBinding(ctx, adminBindingParent, adminBindingID,
		&aegisv1.Binding{Member: adminName, Role: adminBindingRole}, "aegis-bootstrap")
	if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return fmt.Errorf("bind %s to %s: %w", adminName, adminBindingRole, err)
	}
	return nil
}

// bootstrapPassword is the admin password of a first start: from the file,
// then the environment, else generated.
func bootstrapPassword(cfg *Config) (pw string, generated bool, err error) {
	if cfg.BootstrapAdminPasswordFile != "" {
		b, err := os.ReadFile(cfg.BootstrapAdminPasswordFile)
		if err != nil {
			return "", false, fmt.Errorf("bootstrap admin password: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", false, fmt.Errorf("bootstrap admin password file %s is empty", cfg.BootstrapAdminPasswordFile)
		}
		return pw, false, nil
	}
	if cfg.BootstrapAdminPassword != "" {
		return cfg.BootstrapAdminPassword, false, nil
	}
	// 128 bits in a form that survives copy and paste.
	return strings.ToLower(rand.Text())[:26], true, nil
}

// writeBootstrapPassword keeps a generated password in the data dir (mode
// 0600) for the operator who missed the output, fsynced before the user
// that has it is created.
func writeBootstrapPassword(dataDir, path, pw string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write the bootstrap password: %w", err)
	}
	err = f.Chmod(0o600) // a file left by hand may be wider
	if err == nil {
		_, err = f.WriteString(pw + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the bootstrap password: %w", err)
	}
	return nil
}
