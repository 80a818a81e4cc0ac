package server

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/authn"
	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/platform/filter"
)

type identityService struct {
	aegisv1.UnimplementedIdentityServiceServer
	s *Server
}

// checkPassword applies the password policy and hashes the password.
func (s *Server) hashPassword(ctx context.Context, field, pw string) (string, error) {
	if len(pw) < s.opts.MinPasswordLength {
		return "", status.Errorf(codes.InvalidArgument, "%s must be at least %d bytes", field, s.opts.MinPasswordLength)
	}
	h, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return "", s.passwordErr(err)
	}
	return h, nil
}

// ---- users ----

// checkIssuers rejects federated identities of issuers the server does not
// trust: they could never sign in, and are most likely a typo.
func (s *Server) checkIssuers(fis []*aegisv1.FederatedIdentity) error {
	if len(s.opts.FederatedIssuers) == 0 {
		return nil
	}
	for _, fi := range fis {
		if !slices.Contains(s.opts.FederatedIssuers, fi.GetIssuer()) {
			return invalidArg("federated identity issuer %q is not a configured issuer", clip(fi.GetIssuer()))
		}
	}
	return nil
}

func (i *identityService) CreateUser(ctx context.Context, req *aegisv1.CreateUserRequest) (*aegisv1.User, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, shapeOrg); err != nil {
		return nil, err
	}
	if err := checkID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	s := i.s
	if err := s.checkIssuers(req.GetUser().GetFederatedIdentities()); err != nil {
		return nil, s.apiErr(err)
	}
	c, err := s.authorize(ctx, permUsersCreate, parent)
	if err != nil {
		return nil, err
	}
	// Hashed after the permission check: argon2 costs tens of
	// milliseconds, which nobody unauthorised may spend.
	hash := ""
	if req.GetPassword() != "" {
		if hash, err = s.hashPassword(ctx, "password", req.GetPassword()); err != nil {
			return nil, err
		}
	}
	u, err := s.st.CreateUser(ctx, parent, req.GetUserId(), req.GetUser(), hash)
	s.auditChange(ctx, c, permUsersCreate, parent+"/users/"+req.GetUserId(), nil, u.GetEtag(), err)
	return u, s.apiErr(err)
}

func (i *identityService) GetUser(ctx context.Context, req *aegisv1.GetUserRequest) (*aegisv1.User, error) {
	return getNamed(ctx, i.s, req.GetName(), permUsersGet, i.s.st.GetUser, shapeUser)
}

func (i *identityService) ListUsers(ctx context.Context, req *aegisv1.ListUsersRequest) (*aegisv1.ListUsersResponse, error) {
	us, next, err := listUnder(ctx, i.s, "parent", req.GetParent(), permUsersList, req, userFilter, i.s.st.ListUsers, shapeOrg)
	if err != nil {
		return nil, err
	}
	return &aegisv1.ListUsersResponse{Users: us, NextPageToken: next}, nil
}

func (i *identityService) UpdateUser(ctx context.Context, req *aegisv1.UpdateUserRequest) (*aegisv1.User, error) {
	name := req.GetUser().GetName()
	if err := checkName("user.name", name, shapeUser); err != nil {
		return nil, err
	}
	plan, err := planMask(req.GetUser(), req.GetUpdateMask(), userMask)
	if err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permUsersUpdate, name)
	if err != nil {
		return nil, err
	}
	var before aegisv1.User_State
	refused := false
	u, err := s.st.UpdateUser(ctx, name, req.GetUser().GetEtag(), func(next *aegisv1.User) error {
		before = next.GetState()
		had := map[string]bool{}
		for _, fi := range next.GetFederatedIdentities() {
			had[fi.GetIssuer()+"\x00"+fi.GetSubject()] = true
		}
		if err := plan.apply(next); err != nil {
			return err
		}
		// Only new identities are checked: one of an issuer dropped from
		// the configuration since must not block every other update.
		var added []*aegisv1.FederatedIdentity
		for _, fi := range next.GetFederatedIdentities() {
			if !had[fi.GetIssuer()+"\x00"+fi.GetSubject()] {
				added = append(added, fi)
			}
		}
		if err := s.checkIssuers(added); err != nil || len(added) == 0 {
			return err
		}
		// Whoever controls a linked identity signs in as the user, so a
		// new link is worth the user's bindings (escalation.go). Checked
		// here, against the links as stored, so that a concurrent update
		// cannot slip a link past it; a refusal is audited as such, not
		// again as a failed change.
		var err error
		refused, err = s.checkActAs(ctx, c, name, "linking a federated identity to "+name)
		return err
	})
	if err == nil && before != aegisv1.User_STATE_DISABLED && u.GetState() == aegisv1.User_STATE_DISABLED {
		s.revoke(ctx, name) // "Disabling a user revokes its tokens."
	}
	if !refused {
		s.auditChange(ctx, c, permUsersUpdate, name, plan.fieldMask(), u.GetEtag(), err)
	}
	return u, s.apiErr(err)
}

func (i *identityService) DeleteUser(ctx context.Context, req *aegisv1.DeleteUserRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, shapeUser); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permUsersDelete, name)
	if err != nil {
		return nil, err
	}
	err = s.st.DeleteUser(ctx, name, req.GetEtag())
	if err == nil {
		s.revoke(ctx, name)
	}
	s.auditChange(ctx, c, permUsersDelete, name, nil, "", err)
	return empty(err, s)
}

// SetUserPassword: users change their own password by giving the current
// one (and need no permission for it, but a downscoped token must still
// cover aegis:users:setPassword on themselves); anyone else needs
// aegis:users:setPassword on the user and, since they can then sign in as
// the user, what the user's bindings are worth (escalation.go).
//
// Afterwards every token of the user issued until now is revoked. The
// proto would spare the caller's own session when users change their own
// password, but a session (refresh family) is not identifiable from an
// access token, so the caller signs in again: the safe side of the choice.
func (i *identityService) SetUserPassword(ctx context.Context, req *aegisv1.SetUserPasswordRequest) (*aegisv1.SetUserPasswordResponse, error) {
	name := req.GetName()
	if err := checkName("name", name, shapeUser); err != nil {
		return nil, err
	}
	if req.GetNewPassword() == "" {
		return nil, status.Error(codes.InvalidArgument, "new_password is required")
	}
	s := i.s
	c, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	if c.Principal == name {
		if err := i.checkOwnPassword(ctx, c, req); err != nil {
			return nil, err
		}
	} else {
		if err := s.check(ctx, c, permUsersSetPassword, name); err != nil {
			return nil, err
		}
		// Before hashing, which nobody refused may spend. The check reads
		// the user's bindings, not its record, so it needs no place in
		// the store's update.
		if _, err := s.checkActAs(ctx, c, name, "setting the password of "+name); err != nil {
			return nil, err
		}
	}
	hash, err := s.hashPassword(ctx, "new_password", req.GetNewPassword())
	if err != nil {
		return nil, err
	}
	u, err := s.st.SetUserPassword(ctx, name, req.GetEtag(), hash)
	if err == nil {
		s.revoke(ctx, name)
	}
	s.auditChange(ctx, c, permUsersSetPassword, name, nil, u.GetEtag(), err)
	if err != nil {
		return nil, s.apiErr(err)
	}
	return &aegisv1.SetUserPasswordResponse{Etag: u.GetEtag()}, nil
}

// checkOwnPassword authorizes a user changing its own password.
func (i *identityService) checkOwnPassword(ctx context.Context, c *Caller, req *aegisv1.SetUserPasswordRequest) error {
	s := i.s
	if why := c.subject().restriction(permUsersSetPassword, req.GetName()); why != "" {
		d := &aegisv1.Decision{Principal: c.Principal, Reason: aegisv1.Decision_REASON_TOKEN_RESTRICTED, Message: why}
		return s.deny(ctx, c, permUsersSetPassword, req.GetName(), d)
	}
	if req.GetCurrentPassword() == "" {
		return status.Error(codes.InvalidArgument, "current_password is required to change your own password")
	}
	cred, err := s.st.UserForLogin("orgs/"+policy.OrgOf(req.GetName()), lastSegment(req.GetName()))
	if err != nil {
		return s.apiErr(err)
	}
	ok := false
	if cred.PasswordHash != "" {
		if ok, _, err = s.hasher.Verify(ctx, req.GetCurrentPassword(), cred.PasswordHash); err != nil {
			return s.passwordErr(err)
		}
	} else {
		// Same work as a real check, so the answer's timing does not say
		// whether the user has a password.
		if err := s.hasher.VerifyUnknownUser(ctx, req.GetCurrentPassword()); err != nil {
			return s.passwordErr(err)
		}
	}
	if !ok {
		d := &aegisv1.Decision{Principal: c.Principal, Reason: aegisv1.Decision_REASON_UNAUTHENTICATED,
			Message: "current password is wrong"}
		msg := "current_password is wrong"
		s.auditDenied(ctx, c, permUsersSetPassword, req.GetName(), d, codes.PermissionDenied, msg)
		return status.Error(codes.PermissionDenied, msg)
	}
	return nil
}

func lastSegment(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// ---- groups ----

func (i *identityService) CreateGroup(ctx context.Context, req *aegisv1.CreateGroupRequest) (*aegisv1.Group, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, shapeOrg); err != nil {
		return nil, err
	}
	if err := checkID("group_id", req.GetGroupId()); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permGroupsCreate, parent)
	if err != nil {
		return nil, err
	}
	g, err := s.st.CreateGroup(ctx, parent, req.GetGroupId(), req.GetGroup())
	s.auditChange(ctx, c, permGroupsCreate, parent+"/groups/"+req.GetGroupId(), nil, g.GetEtag(), err)
	return g, s.apiErr(err)
}

func (i *identityService) GetGroup(ctx context.Context, req *aegisv1.GetGroupRequest) (*aegisv1.Group, error) {
	return getNamed(ctx, i.s, req.GetName(), permGroupsGet, i.s.st.GetGroup, shapeGroup)
}

func (i *identityService) ListGroups(ctx context.Context, req *aegisv1.ListGroupsRequest) (*aegisv1.ListGroupsResponse, error) {
	// The spec only captures s: its members: term reads the store when the
	// filter is compiled, after the authorization.
	gs, next, err := listUnder(ctx, i.s, "parent", req.GetParent(), permGroupsList, req, groupFilterSpec(i.s), i.s.st.ListGroups, shapeOrg)
	if err != nil {
		return nil, err
	}
	return &aegisv1.ListGroupsResponse{Groups: gs, NextPageToken: next}, nil
}

// groupFilterSpec adds `members:"<principal>"`: the groups of a principal.
func groupFilterSpec(s *Server) filterSpec {
	spec := filterSpec{fields: []string{"display_name", "labels", "create_time"}}
	spec.custom = map[string]customField{"members": func(t filter.Term) (pred, error) {
		if t.Op != ":" && t.Op != "=" {
			return nil, filter.Errorf(`members: use members:"<user or service account>"`)
		}
		groups := s.st.GroupsOf(t.Value)
		nameF := (&aegisv1.Group{}).ProtoReflect().Descriptor().Fields().ByName("name")
		return func(m protoreflect.Message) bool {
			_, found := slices.BinarySearch(groups, m.Get(nameF).String())
			return found
		}, nil
	}}
	return spec
}

func (i *identityService) UpdateGroup(ctx context.Context, req *aegisv1.UpdateGroupRequest) (*aegisv1.Group, error) {
	name := req.GetGroup().GetName()
	if err := checkName("group.name", name, shapeGroup); err != nil {
		return nil, err
	}
	plan, err := planMask(req.GetGroup(), req.GetUpdateMask(), groupMask)
	if err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permGroupsUpdate, name)
	if err != nil {
		return nil, err
	}
	g, err := s.st.UpdateGroup(ctx, name, req.GetGroup().GetEtag(), func(next *aegisv1.Group) error { return plan.apply(next) })
	s.auditChange(ctx, c, permGroupsUpdate, name, plan.fieldMask(), g.GetEtag(), err)
	return g, s.apiErr(err)
}

func (i *identityService) DeleteGroup(ctx context.Context, req *aegisv1.DeleteGroupRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, shapeGroup); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permGroupsDelete, name)
	if err != nil {
		return nil, err
	}
	err = s.st.DeleteGroup(ctx, name, req.GetEtag())
	s.auditChange(ctx, c, permGroupsDelete, name, nil, "", err)
	return empty(err, s)
}

// groupEtag is the group's etag after a membership change, for the audit
// event.
func (s *Server) groupEtag(group string) string {
	g, err := s.st.GetGroup(group)
	if err != nil {
		return ""
	}
	return g.GetEtag()
}

func (i *identityService) AddGroupMember(ctx context.Context, req *aegisv1.AddGroupMemberRequest) (*aegisv1.GroupMember, error) {
	group := req.GetGroup()
	if err := checkName("group", group, shapeGroup); err != nil {
		return nil, err
	}
	if err := checkName("member", req.GetMember(), principalShapes...); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permGroupsUpdate, group)
	if err != nil {
		return nil, err
	}
	// The new member gets the group's bindings: see escalation.go.
	if err := s.checkGroupMember(ctx, c, group); err != nil {
		return nil, err
	}
	m, err := s.st.AddGroupMember(ctx, group, req.GetMember(), req.GetEtag())
	etag := ""
	if err == nil {
		etag = s.groupEtag(group)
	}
	s.auditChange(ctx, c, permGroupsUpdate, group, nil, etag, err)
	return m, s.apiErr(err)
}

func (i *identityService) RemoveGroupMember(ctx context.Context, req *aegisv1.RemoveGroupMemberRequest) (*emptypb.Empty, error) {
	group := req.GetGroup()
	if err := checkName("group", group, shapeGroup); err != nil {
		return nil, err
	}
	if err := checkName("member", req.GetMember(), principalShapes...); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permGroupsUpdate, group)
	if err != nil {
		return nil, err
	}
	err = s.st.RemoveGroupMember(ctx, group, req.GetMember(), req.GetEtag())
	etag := ""
	if err == nil {
		etag = s.groupEtag(group)
	}
	s.auditChange(ctx, c, permGroupsUpdate, group, nil, etag, err)
	return empty(err, s)
}

// ListGroupMembers lists under the group, with the group's get permission:
// members are part of what a group is.
func (i *identityService) ListGroupMembers(ctx context.Context, req *aegisv1.ListGroupMembersRequest) (*aegisv1.ListGroupMembersResponse, error) {
	ms, next, err := listUnder(ctx, i.s, "group", req.GetGroup(), permGroupsGet, req, memberFilter, i.s.st.ListGroupMembers, shapeGroup)
	if err != nil {
		return nil, err
	}
	return &aegisv1.ListGroupMembersResponse{Members: ms, NextPageToken: next}, nil
}

// ---- service accounts ----

func (i *identityService) CreateServiceAccount(ctx context.Context, req *aegisv1.CreateServiceAccountRequest) (*aegisv1.ServiceAccount, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, saParentShapes...); err != nil {
		return nil, err
	}
	if err := checkID("service_account_id", req.GetServiceAccountId()); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permSAsCreate, parent)
	if err != nil {
		return nil, err
	}
	sa, err := s.st.CreateServiceAccount(ctx, parent, req.GetServiceAccountId(), req.GetServiceAccount())
	s.auditChange(ctx, c, permSAsCreate, parent+"/serviceAccounts/"+req.GetServiceAccountId(), nil, sa.GetEtag(), err)
	return sa, s.apiErr(err)
}

func (i *identityService) GetServiceAccount(ctx context.Context, req *aegisv1.GetServiceAccountRequest) (*aegisv1.ServiceAccount, error) {
	return getNamed(ctx, i.s, req.GetName(), permSAsGet, i.s.st.GetServiceAccount, saShapes...)
}

func (i *identityService) ListServiceAccounts(ctx context.Context, req *aegisv1.ListServiceAccountsRequest) (*aegisv1.ListServiceAccountsResponse, error) {
	sas, next, err := listUnder(ctx, i.s, "parent", req.GetParent(), permSAsList, req, saFilter, i.s.st.ListServiceAccounts, saParentShapes...)
	if err != nil {
		return nil, err
	}
	return &aegisv1.ListServiceAccountsResponse{ServiceAccounts: sas, NextPageToken: next}, nil
}

func (i *identityService) UpdateServiceAccount(ctx context.Context, req *aegisv1.UpdateServiceAccountRequest) (*aegisv1.ServiceAccount, error) {
	name := req.GetServiceAccount().GetName()
	if err := checkName("service_account.name", name, saShapes...); err != nil {
		return nil, err
	}
	plan, err := planMask(req.GetServiceAccount(), req.GetUpdateMask(), saMask)
	if err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permSAsUpdate, name)
	if err != nil {
		return nil, err
	}
	var before aegisv1.ServiceAccount_State
	refused := false
	sa, err := s.st.UpdateServiceAccount(ctx, name, req.GetServiceAccount().GetEtag(), func(next *aegisv1.ServiceAccount) error {
		before = next.GetState()
		had := map[string]bool{}
		for _, ci := range next.GetCertificateIdentities() {
			had[certIdentity(ci)] = true
		}
		if err := plan.apply(next); err != nil {
			return err
		}
		// A certificate bound to the service account obtains its tokens,
		// so a new one is worth its bindings (escalation.go), checked as
		// stored, as in UpdateUser. Dropping one needs nothing, and one
		// without a match is left to the store, which rejects it.
		if !slices.ContainsFunc(next.GetCertificateIdentities(), func(ci *aegisv1.CertificateIdentity) bool {
			k := certIdentity(ci)
			return k != "" && !had[k]
		}) {
			return nil
		}
		var err error
		refused, err = s.checkActAs(ctx, c, name, "binding a client certificate identity to "+name)
		return err
	})
	if err == nil && before != aegisv1.ServiceAccount_STATE_DISABLED && sa.GetState() == aegisv1.ServiceAccount_STATE_DISABLED {
		s.revoke(ctx, name)
	}
	if !refused {
		s.auditChange(ctx, c, permSAsUpdate, name, plan.fieldMask(), sa.GetEtag(), err)
	}
	return sa, s.apiErr(err)
}

// certIdentity tells certificate identities apart: the kind of match and
// its value.
func certIdentity(ci *aegisv1.CertificateIdentity) string {
	switch m := ci.GetMatch().(type) {
	case *aegisv1.CertificateIdentity_Sha256Fingerprint:
		return "sha256\x00" + m.Sha256Fingerprint
	case *aegisv1.CertificateIdentity_UriSan:
		return "uri\x00" + m.UriSan
	case *aegisv1.CertificateIdentity_DnsSan:
		return "dns\x00" + m.DnsSan
	}
	return ""
}

func (i *identityService) DeleteServiceAccount(ctx context.Context, req *aegisv1.DeleteServiceAccountRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, saShapes...); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permSAsDelete, name)
	if err != nil {
		return nil, err
	}
	err = s.st.DeleteServiceAccount(ctx, name, req.GetEtag())
	if err == nil {
		s.revoke(ctx, name)
	}
	s.auditChange(ctx, c, permSAsDelete, name, nil, "", err)
	return empty(err, s)
}

// ---- service account keys ----

// CreateServiceAccountKey returns the key's secret, once: the store keeps
// only its hash, and the secret is in no log or audit event. The key
// obtains the service account's tokens, so creating one is worth its
// bindings (escalation.go).
func (i *identityService) CreateServiceAccountKey(ctx context.Context, req *aegisv1.CreateServiceAccountKeyRequest) (*aegisv1.ServiceAccountKey, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, saShapes...); err != nil {
		return nil, err
	}
	s := i.s
	if exp := req.GetKey().GetExpireTime(); exp != nil {
		if err := exp.CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "key.expire_time: %v", err)
		}
		if !exp.AsTime().After(s.now()) {
			return nil, status.Error(codes.InvalidArgument, "key.expire_time is in the past")
		}
	}
	c, err := s.authorize(ctx, permKeysCreate, parent)
	if err != nil {
		return nil, err
	}
	if _, err := s.checkActAs(ctx, c, parent, "creating a key of "+parent); err != nil {
		return nil, err
	}
	secret, hash := authn.NewClientSecret()
	k, err := s.st.CreateServiceAccountKey(ctx, parent, req.GetKey(), hash)
	resource := parent
	if err == nil {
		resource = k.GetName()
	}
	s.auditChange(ctx, c, permKeysCreate, resource, nil, k.GetEtag(), err)
	if err != nil {
		return nil, s.apiErr(err)
	}
	k.ClientSecret = secret
	return k, nil
}

func (i *identityService) GetServiceAccountKey(ctx context.Context, req *aegisv1.GetServiceAccountKeyRequest) (*aegisv1.ServiceAccountKey, error) {
	return getNamed(ctx, i.s, req.GetName(), permKeysGet, i.s.st.GetServiceAccountKey, keyShapes...)
}

func (i *identityService) ListServiceAccountKeys(ctx context.Context, req *aegisv1.ListServiceAccountKeysRequest) (*aegisv1.ListServiceAccountKeysResponse, error) {
	ks, next, err := listUnder(ctx, i.s, "parent", req.GetParent(), permKeysList, req, keyFilter, i.s.st.ListServiceAccountKeys, saShapes...)
	if err != nil {
		return nil, err
	}
	return &aegisv1.ListServiceAccountKeysResponse{Keys: ks, NextPageToken: next}, nil
}

// DeleteServiceAccountKey deletes a key; tokens issued with it stop
// working because the interceptor and Authorize reject a service-account
// token whose key (its client_id) no longer exists. The service account's
// other tokens are unaffected, so rotating keys interrupts nobody.
func (i *identityService) DeleteServiceAccountKey(ctx context.Context, req *aegisv1.DeleteServiceAccountKeyRequest) (*emptypb.Empty, error) {
	name := req.GetName()
	if err := checkName("name", name, keyShapes...); err != nil {
		return nil, err
	}
	s := i.s
	c, err := s.authorize(ctx, permKeysDelete, name)
	if err != nil {
		return nil, err
	}
	err = s.st.DeleteServiceAccountKey(ctx, name, req.GetEtag())
	s.auditChange(ctx, c, permKeysDelete, name, nil, "", err)
	return empty(err, s)
}
