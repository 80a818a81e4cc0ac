package kvserver

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
)

// openAuth creates the auth store; loadLeasesAndAlarms fills it.
func (s *Server) openAuth() error {
	o := s.opts.Auth
	o.AppliedIndex = s.applied.Load
	o.Logger = s.lg.With("component", "auth")
	a, err := auth.New(o)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s.auth = a
	return nil
}

// Auth is the member's auth store, for permission checks at serve time.
func (s *Server) Auth() *auth.Store { return s.auth }

// AuthInfo is the identity of the caller of a client request (nil when
// auth is off or the caller is anonymous).
func (s *Server) AuthInfo(ctx context.Context) (*auth.AuthInfo, error) {
	return s.auth.AuthInfo(ctx)
}

// leaseKeys is the lease lookup of permission checks.
func (s *Server) leaseKeys(id int64) ([]string, bool) {
	info, err := s.lessor.Lookup(id, true)
	if err != nil {
		return nil, false
	}
	return info.Keys, true
}

// LeaseKeys lists the keys attached to a lease; ok is false if it does not exist.
func (s *Server) LeaseKeys(id int64) (keys []string, ok bool) { return s.leaseKeys(id) }

func (s *Server) applyAuth(t *txnState, r *pb.InternalRaftRequest, idx uint64) result {
	resp, commit, err := s.auth.Apply(t.w.Batch(), r, idx)
	if commit != nil {
		t.onCommit = append(t.onCommit, commit)
	}
	return result{resp: resp, err: err}
}

// systemKey marks the contexts of the member's own proposals.
type systemKey struct{}

// systemContext marks requests the member makes on its own behalf (revoking
// expired leases): they act as root, as etcd's do.
func systemContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, systemKey{}, true)
}

// stampAuth records in the proposal who makes it, so that every member
// checks the same identity when it applies the entry.
func (s *Server) stampAuth(ctx context.Context, r *pb.InternalRaftRequest) error {
	if r.Authenticate != nil || !s.auth.IsAuthEnabled() {
		return nil
	}
	if ctx.Value(systemKey{}) != nil {
		r.Header.Username, r.Header.AuthRevision = auth.RootUser, s.auth.Revision()
		return nil
	}
	ai, err := s.auth.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if ai != nil {
		r.Header.Username, r.Header.AuthRevision = ai.Username, ai.Revision
	}
	return nil
}

// CheckedRead runs a read served by this member (not through raft) the way
// etcd does: check permission with the caller's identity, read, and fail
// with ErrAuthOldRevision if the auth state changed meanwhile, since the
// check may no longer hold.
func (s *Server) CheckedRead(ctx context.Context, check func(*auth.AuthInfo) error, read func() error) error {
	if !s.auth.IsAuthEnabled() {
		// Nothing to check, and no identity whose revision could go stale.
		return read()
	}
	ai, err := s.auth.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if ai == nil {
		ai = &auth.AuthInfo{}
	}
	if err := check(ai); err != nil {
		return err
	}
	if err := read(); err != nil {
		return err
	}
	if ai.Revision != 0 && ai.Revision != s.auth.Revision() {
		return auth.ErrAuthOldRevision
	}
	return nil
}

// Authenticate checks a user's password and returns a token. The password
// is checked here, off the raft and apply loops, and never enters the log;
// the proposal only names the user (and the random part of a simple
// token, which every member learns when it applies the entry).
func (s *Server) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	for {
		rev, err := s.auth.CheckPassword(ctx, r.Name, r.Password)
		if err != nil {
			if err != auth.ErrAuthNotEnabled {
				s.lg.Warn("authentication failed", "user", r.Name, "err", err)
			}
			return nil, err
		}
		prefix, err := s.auth.TokenPrefix()
		if err != nil {
			return nil, err
		}
		a, err := proposeAs[*auth.Authenticated](ctx, s, &pb.InternalRaftRequest{
			Authenticate: &pb.InternalAuthenticateRequest{Name: r.Name, SimpleToken: prefix},
		})
		if err != nil {
			return nil, err
		}
		// The password may have changed between the check and the entry.
		if rev == s.auth.Revision() {
			return s.auth.Token(a)
		}
		s.lg.Info("auth revision moved while authenticating; checking the password again", "user", r.Name)
	}
}

// adminPrecheck refuses a request that needs the root role before this
// member spends a bcrypt hash on it; the apply-time check stays the
// authority.
func (s *Server) adminPrecheck(ctx context.Context) error {
	ai, err := s.auth.AuthInfo(ctx)
	if err != nil {
		return err
	}
	return s.auth.IsAdminPermitted(ai)
}

func (s *Server) hashPassword(ctx context.Context, pw string) (string, error) {
	h, err := s.auth.HashPassword(ctx, pw)
	if err != nil && ctx.Err() != nil {
		return "", contextErr(ctx.Err())
	}
	return h, err
}

// checkedHash hashes a password for a proposal, once the caller is known to
// be allowed to manage auth, so refused calls cost no bcrypt work.
func (s *Server) checkedHash(ctx context.Context, pw string) (string, error) {
	if err := s.adminPrecheck(ctx); err != nil {
		return "", err
	}
	return s.hashPassword(ctx, pw)
}

// UserAdd adds a user; its password is hashed here, before proposing.
func (s *Server) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	r = proto.Clone(r).(*pb.AuthUserAddRequest)
	if r.Options == nil || !r.Options.NoPassword {
		h, err := s.checkedHash(ctx, r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return proposeAs[*pb.AuthUserAddResponse](ctx, s, &pb.InternalRaftRequest{AuthUserAdd: r})
}

// UserChangePassword sets a user's password, hashed here.
func (s *Server) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	r = proto.Clone(r).(*pb.AuthUserChangePasswordRequest)
	if r.Password != "" {
		h, err := s.checkedHash(ctx, r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return proposeAs[*pb.AuthUserChangePasswordResponse](ctx, s, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

// AuthRequest proposes any other auth request (enable, disable, status,
// user and role management) and returns its response. As in etcd, even the
// reads go through raft, so they are linearizable and checked on apply.
func (s *Server) AuthRequest(ctx context.Context, r *pb.InternalRaftRequest) (any, error) {
	return s.propose(ctx, r)
}
