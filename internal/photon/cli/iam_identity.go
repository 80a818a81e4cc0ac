package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

func (c *iamCall) identity() aegisv1.IdentityServiceClient {
	return aegisv1.NewIdentityServiceClient(c.s.conn)
}

func newUsersCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Aliases: []string{"user"}, Short: "Manage the users of an org"}
	pf := o.parentFlags()
	name := func(arg string) (string, error) { return childName(arg, "users", pf.orgName) }
	subs := []*cobra.Command{
		createUserCmd(o, &pf),
		getCmd(o, "user", "USER", name,
			func(c *iamCall, n string) (*aegisv1.User, error) {
				return c.identity().GetUser(c.ctx, &aegisv1.GetUserRequest{Name: n})
			}, userDetail),
		listCmd(o, "users", "display_name, email, state, labels, create_time, last_login_time", pf.orgName,
			func(c *iamCall, parent, filter string) page[*aegisv1.User] {
				return func(ctx context.Context, size int32, token string) ([]*aegisv1.User, string, error) {
					r, err := c.identity().ListUsers(ctx, &aegisv1.ListUsersRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
					return r.GetUsers(), r.GetNextPageToken(), err
				}
			}, userColumns),
		updateUserCmd(o, name),
		deleteCmd(o, "user", "USER", "", name, func(c *iamCall, n, etag string, _ bool) error {
			return emptyErr(c.identity().DeleteUser(c.ctx, &aegisv1.DeleteUserRequest{Name: n, Etag: etag}))
		}),
		setPasswordCmd(o, name),
	}
	for _, c := range subs {
		pf.addOrg(c.Flags())
	}
	cmd.AddCommand(subs...)
	return cmd
}

func createUserCmd(o *iamOptions, pf *parentFlags) *cobra.Command {
	var d describedFlags
	var email string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "create USER_ID",
		Short: "Create a user, optionally with a password read from stdin",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			parent, id, err := createTarget(args[0], "users", pf.orgName)
			if err != nil {
				return nil, err
			}
			labels, err := parseLabels(d.labels)
			if err != nil {
				return nil, err
			}
			req := &aegisv1.CreateUserRequest{Parent: parent, UserId: id,
				User: &aegisv1.User{DisplayName: d.displayName, Email: email, Labels: labels}}
			if passwordStdin {
				if req.Password, err = readSecretLine(bufio.NewReader(cmd.InOrStdin()), "password"); err != nil {
					return nil, err
				}
			}
			return func(c *iamCall) error {
				r, err := c.identity().CreateUser(c.ctx, req)
				if err != nil {
					return c.s.rpc("create user "+id, err)
				}
				return showOne(c.out, r, userDetail())
			}, nil
		}),
	}
	d.add(cmd, false, false)
	cmd.Flags().StringVar(&email, "email", "", "contact email address")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the initial password from the first line of stdin")
	return cmd
}

func updateUserCmd(o *iamOptions, name func(string) (string, error)) *cobra.Command {
	var d describedFlags
	var email, state, etag string
	cmd := &cobra.Command{
		Use:   "update USER",
		Short: "Change a user's display name, email, labels or state",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			mask, err := updateMask(cmd.Flags(), [][2]string{
				{"display-name", "display_name"}, {"email", "email"}, {"label", "labels"}, {"state", "state"}})
			if err != nil {
				return nil, err
			}
			labels, err := parseLabels(d.labels)
			if err != nil {
				return nil, err
			}
			u := &aegisv1.User{Name: n, DisplayName: d.displayName, Email: email, Labels: labels, Etag: etag}
			if cmd.Flags().Changed("state") {
				switch state {
				case "active":
					u.State = aegisv1.User_STATE_ACTIVE
				case "disabled":
					u.State = aegisv1.User_STATE_DISABLED
				default:
					return nil, fmt.Errorf("--state %q: want active or disabled", state)
				}
			}
			req := &aegisv1.UpdateUserRequest{User: u, UpdateMask: mask}
			return func(c *iamCall) error {
				r, err := c.identity().UpdateUser(c.ctx, req)
				if err != nil {
					return c.s.rpc("update user "+n, err)
				}
				return showOne(c.out, r, userDetail())
			}, nil
		}),
	}
	d.add(cmd, true, false)
	cmd.Flags().StringVar(&email, "email", "", "contact email address")
	cmd.Flags().StringVar(&state, "state", "", "active or disabled (disabling revokes the user's tokens)")
	addEtag(cmd.Flags(), &etag)
	return cmd
}

func setPasswordCmd(o *iamOptions, name func(string) (string, error)) *cobra.Command {
	var passwordStdin, withCurrent bool
	var etag string
	cmd := &cobra.Command{
		Use:   "set-password USER --password-stdin",
		Short: "Set a user's password, read from stdin",
		Long: `set-password sets a user's password to the first line of stdin. Users
changing their own password must prove the current one: with
--current-password-stdin, stdin holds the current password on the first
line and the new one on the second.`,
		Args: cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			if !passwordStdin && !withCurrent {
				return nil, errors.New("give --password-stdin (or --current-password-stdin) and the password on stdin")
			}
			req := &aegisv1.SetUserPasswordRequest{Name: n, Etag: etag}
			in := bufio.NewReader(cmd.InOrStdin())
			if withCurrent {
				if req.CurrentPassword, err = readSecretLine(in, "current password"); err != nil {
					return nil, err
				}
			}
			if req.NewPassword, err = readSecretLine(in, "new password"); err != nil {
				return nil, err
			}
			return func(c *iamCall) error {
				if _, err := c.identity().SetUserPassword(c.ctx, req); err != nil {
					return c.s.rpc("set password of "+n, err)
				}
				if !c.out.json {
					fmt.Fprintf(c.out.w, "Password of %s set.\n", n)
				}
				if withCurrent && !c.sessionAlive() {
					// The proto spares the caller's session, but an Aegis
					// may sign the user out everywhere (this one does): say
					// so now rather than fail the next command.
					fmt.Fprintln(c.cmd.ErrOrStderr(), "Aegis ended your sessions with the password change, this one too: run photon login.")
				}
				return nil
			}, nil
		}),
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the new password from the first line of stdin")
	cmd.Flags().BoolVar(&withCurrent, "current-password-stdin", false, "read the current password, then the new one, from stdin (for one's own password)")
	addEtag(cmd.Flags(), &etag)
	return cmd
}

func userColumns() []column[*aegisv1.User] {
	return []column[*aegisv1.User]{
		{"NAME", (*aegisv1.User).GetName},
		{"DISPLAY NAME", (*aegisv1.User).GetDisplayName},
		{"EMAIL", (*aegisv1.User).GetEmail},
		{"STATE", func(r *aegisv1.User) string { return fmtEnum(r.GetState().String(), "STATE_") }},
		{"LAST LOGIN", func(r *aegisv1.User) string { return fmtTime(r.GetLastLoginTime()) }},
	}
}

func userDetail() []column[*aegisv1.User] {
	return append(userColumns(),
		column[*aegisv1.User]{"LABELS", func(r *aegisv1.User) string { return fmtLabels(r.GetLabels()) }},
		column[*aegisv1.User]{"FEDERATED IDENTITIES", func(r *aegisv1.User) string {
			var ids []string
			for _, f := range r.GetFederatedIdentities() {
				ids = append(ids, f.GetIssuer()+" "+f.GetSubject())
			}
			return strings.Join(ids, ", ")
		}},
		column[*aegisv1.User]{"PASSWORD SET", func(r *aegisv1.User) string { return fmtTime(r.GetPasswordUpdateTime()) }},
		column[*aegisv1.User]{"UID", (*aegisv1.User).GetUid},
		column[*aegisv1.User]{"CREATED", func(r *aegisv1.User) string { return fmtTime(r.GetCreateTime()) }},
		column[*aegisv1.User]{"UPDATED", func(r *aegisv1.User) string { return fmtTime(r.GetUpdateTime()) }},
		column[*aegisv1.User]{"ETAG", (*aegisv1.User).GetEtag},
	)
}

func newGroupsCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "groups", Aliases: []string{"group"}, Short: "Manage the groups of an org and their members"}
	pf := o.parentFlags()
	name := func(arg string) (string, error) { return childName(arg, "groups", pf.orgName) }
	subs := []*cobra.Command{
		createDescribedCmd(o, "group", "groups", &pf,
			func(c *iamCall, parent, id string, d described) (*aegisv1.Group, error) {
				return c.identity().CreateGroup(c.ctx, &aegisv1.CreateGroupRequest{Parent: parent, GroupId: id,
					Group: &aegisv1.Group{DisplayName: d.displayName, Description: d.description, Labels: d.labels}})
			}, groupDetail),
		getCmd(o, "group", "GROUP", name,
			func(c *iamCall, n string) (*aegisv1.Group, error) {
				return c.identity().GetGroup(c.ctx, &aegisv1.GetGroupRequest{Name: n})
			}, groupDetail),
		listCmd(o, "groups", `display_name, labels, create_time, members (members:"orgs/acme/users/alice")`, pf.orgName,
			func(c *iamCall, parent, filter string) page[*aegisv1.Group] {
				return func(ctx context.Context, size int32, token string) ([]*aegisv1.Group, string, error) {
					r, err := c.identity().ListGroups(ctx, &aegisv1.ListGroupsRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
					return r.GetGroups(), r.GetNextPageToken(), err
				}
			}, groupColumns),
		updateDescribedCmd(o, "group", name,
			func(c *iamCall, n, etag string, mask *fieldmaskpb.FieldMask, d described) (*aegisv1.Group, error) {
				return c.identity().UpdateGroup(c.ctx, &aegisv1.UpdateGroupRequest{UpdateMask: mask,
					Group: &aegisv1.Group{Name: n, DisplayName: d.displayName, Description: d.description, Labels: d.labels, Etag: etag}})
			}, groupDetail),
		deleteCmd(o, "group", "GROUP", "", name, func(c *iamCall, n, etag string, _ bool) error {
			return emptyErr(c.identity().DeleteGroup(c.ctx, &aegisv1.DeleteGroupRequest{Name: n, Etag: etag}))
		}),
	}
	members := &cobra.Command{Use: "members", Aliases: []string{"member"}, Short: "Manage the members of a group"}
	listMembers := listUnderCmd(o, "GROUP", "members", "List the members of a group",
		"member, member_kind", "'member_kind = PRINCIPAL_KIND_SERVICE_ACCOUNT'", name,
		func(c *iamCall, g, filter string) page[*aegisv1.GroupMember] {
			return func(ctx context.Context, size int32, token string) ([]*aegisv1.GroupMember, string, error) {
				r, err := c.identity().ListGroupMembers(ctx, &aegisv1.ListGroupMembersRequest{Group: g, PageSize: size, PageToken: token, Filter: filter})
				return r.GetMembers(), r.GetNextPageToken(), err
			}
		}, memberColumns)
	memberSubs := []*cobra.Command{memberAddCmd(o, name), memberRemoveCmd(o, name), listMembers}
	members.AddCommand(memberSubs...)
	for _, c := range append(subs, memberSubs...) {
		pf.addOrg(c.Flags())
	}
	cmd.AddCommand(append(subs, members)...)
	return cmd
}

// memberName is a member argument: a full user or service account name, or
// a bare user id of the group's org.
func memberName(group, arg string) (string, error) {
	if strings.Contains(arg, "/") {
		return arg, nil
	}
	parts := strings.Split(group, "/")
	if len(parts) < 2 || parts[0] != "orgs" || arg == "" {
		return "", fmt.Errorf("member %q: give a full user or service account name", arg)
	}
	return "orgs/" + parts[1] + "/users/" + arg, nil
}

func memberAddCmd(o *iamOptions, name func(string) (string, error)) *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:   "add GROUP MEMBER",
		Short: "Add a user or service account to a group",
		Long: `add adds MEMBER, a full user or service account name (or a bare user id
of the group's org), to GROUP.`,
		Args: cobra.ExactArgs(2),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			g, err := name(args[0])
			if err != nil {
				return nil, err
			}
			m, err := memberName(g, args[1])
			if err != nil {
				return nil, err
			}
			return func(c *iamCall) error {
				r, err := c.identity().AddGroupMember(c.ctx, &aegisv1.AddGroupMemberRequest{Group: g, Member: m, Etag: etag})
				if err != nil {
					return c.s.rpc("add "+m+" to "+g, err)
				}
				if c.out.json {
					return writeJSON(c.out.w, r)
				}
				_, err = fmt.Fprintf(c.out.w, "Added %s to %s.\n", m, g)
				return err
			}, nil
		}),
	}
	addEtag(cmd.Flags(), &etag)
	return cmd
}

func memberRemoveCmd(o *iamOptions, name func(string) (string, error)) *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:   "remove GROUP MEMBER",
		Short: "Remove a member from a group",
		Args:  cobra.ExactArgs(2),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			g, err := name(args[0])
			if err != nil {
				return nil, err
			}
			m, err := memberName(g, args[1])
			if err != nil {
				return nil, err
			}
			return func(c *iamCall) error {
				if _, err := c.identity().RemoveGroupMember(c.ctx, &aegisv1.RemoveGroupMemberRequest{Group: g, Member: m, Etag: etag}); err != nil {
					return c.s.rpc("remove "+m+" from "+g, err)
				}
				if c.out.json {
					return nil
				}
				_, err := fmt.Fprintf(c.out.w, "Removed %s from %s.\n", m, g)
				return err
			}, nil
		}),
	}
	addEtag(cmd.Flags(), &etag)
	return cmd
}

func memberColumns() []column[*aegisv1.GroupMember] {
	return []column[*aegisv1.GroupMember]{
		{"MEMBER", (*aegisv1.GroupMember).GetMember},
		{"KIND", func(r *aegisv1.GroupMember) string { return fmtEnum(r.GetMemberKind().String(), "PRINCIPAL_KIND_") }},
		{"ADDED", func(r *aegisv1.GroupMember) string { return fmtTime(r.GetAddTime()) }},
	}
}

func groupColumns() []column[*aegisv1.Group] {
	return []column[*aegisv1.Group]{
		{"NAME", (*aegisv1.Group).GetName},
		{"DISPLAY NAME", (*aegisv1.Group).GetDisplayName},
		{"MEMBERS", func(r *aegisv1.Group) string { return strconv.Itoa(int(r.GetMemberCount())) }},
		{"CREATED", func(r *aegisv1.Group) string { return fmtTime(r.GetCreateTime()) }},
	}
}

func groupDetail() []column[*aegisv1.Group] {
	return append(groupColumns(),
		column[*aegisv1.Group]{"DESCRIPTION", (*aegisv1.Group).GetDescription},
		column[*aegisv1.Group]{"LABELS", func(r *aegisv1.Group) string { return fmtLabels(r.GetLabels()) }},
		column[*aegisv1.Group]{"UID", (*aegisv1.Group).GetUid},
		column[*aegisv1.Group]{"UPDATED", func(r *aegisv1.Group) string { return fmtTime(r.GetUpdateTime()) }},
		column[*aegisv1.Group]{"ETAG", (*aegisv1.Group).GetEtag},
	)
}

func newServiceAccountsCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service-accounts",
		Aliases: []string{"service-account", "sa"},
		Short:   "Manage service accounts and their keys",
	}
	pf := o.parentFlags()
	name := func(arg string) (string, error) { return childName(arg, "serviceAccounts", pf.container) }
	subs := []*cobra.Command{
		createServiceAccountCmd(o, &pf),
		getCmd(o, "service account", "SERVICE_ACCOUNT", name,
			func(c *iamCall, n string) (*aegisv1.ServiceAccount, error) {
				return c.identity().GetServiceAccount(c.ctx, &aegisv1.GetServiceAccountRequest{Name: n})
			}, serviceAccountDetail),
		listCmd(o, "service accounts", "display_name, state, labels, create_time", pf.container,
			func(c *iamCall, parent, filter string) page[*aegisv1.ServiceAccount] {
				return func(ctx context.Context, size int32, token string) ([]*aegisv1.ServiceAccount, string, error) {
					r, err := c.identity().ListServiceAccounts(ctx, &aegisv1.ListServiceAccountsRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
					return r.GetServiceAccounts(), r.GetNextPageToken(), err
				}
			}, serviceAccountColumns),
		updateServiceAccountCmd(o, name),
		deleteCmd(o, "service account", "SERVICE_ACCOUNT", "", name, func(c *iamCall, n, etag string, _ bool) error {
			return emptyErr(c.identity().DeleteServiceAccount(c.ctx, &aegisv1.DeleteServiceAccountRequest{Name: n, Etag: etag}))
		}),
	}
	keys := &cobra.Command{Use: "keys", Aliases: []string{"key"}, Short: "Manage the keys (OAuth2 client credentials) of a service account"}
	keySubs := keyCommands(o, name)
	keys.AddCommand(keySubs...)
	for _, c := range append(subs, keySubs...) {
		pf.addOrg(c.Flags())
		pf.addProject(c.Flags())
	}
	cmd.AddCommand(append(subs, keys)...)
	return cmd
}

// certFlags are the certificate identities of a service account.
type certFlags struct {
	sha256, uriSAN, dnsSAN []string
}

func (f *certFlags) add(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.sha256, "cert-sha256", nil, "pin an mTLS client certificate by the hex SHA-256 of its DER (repeatable)")
	fs.StringArrayVar(&f.uriSAN, "cert-uri-san", nil, "accept mTLS client certificates with this URI SAN, e.g. a SPIFFE id (repeatable)")
	fs.StringArrayVar(&f.dnsSAN, "cert-dns-san", nil, "accept mTLS client certificates with this DNS SAN (repeatable)")
}

func (f *certFlags) identities() []*aegisv1.CertificateIdentity {
	var ids []*aegisv1.CertificateIdentity
	for _, s := range f.sha256 {
		ids = append(ids, &aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_Sha256Fingerprint{Sha256Fingerprint: strings.ToLower(s)}})
	}
	for _, s := range f.uriSAN {
		ids = append(ids, &aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_UriSan{UriSan: s}})
	}
	for _, s := range f.dnsSAN {
		ids = append(ids, &aegisv1.CertificateIdentity{Match: &aegisv1.CertificateIdentity_DnsSan{DnsSan: s}})
	}
	return ids
}

func createServiceAccountCmd(o *iamOptions, pf *parentFlags) *cobra.Command {
	var d describedFlags
	var cf certFlags
	cmd := &cobra.Command{
		Use:   "create SERVICE_ACCOUNT_ID",
		Short: "Create a service account in an org (--org) or a project (--org and --project)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			parent, id, err := createTarget(args[0], "serviceAccounts", pf.container)
			if err != nil {
				return nil, err
			}
			labels, err := parseLabels(d.labels)
			if err != nil {
				return nil, err
			}
			req := &aegisv1.CreateServiceAccountRequest{Parent: parent, ServiceAccountId: id,
				ServiceAccount: &aegisv1.ServiceAccount{DisplayName: d.displayName, Description: d.description, Labels: labels,
					CertificateIdentities: cf.identities()}}
			return func(c *iamCall) error {
				r, err := c.identity().CreateServiceAccount(c.ctx, req)
				if err != nil {
					return c.s.rpc("create service account "+id, err)
				}
				return showOne(c.out, r, serviceAccountDetail())
			}, nil
		}),
	}
	d.add(cmd, false, true)
	cf.add(cmd.Flags())
	return cmd
}

func updateServiceAccountCmd(o *iamOptions, name func(string) (string, error)) *cobra.Command {
	var d describedFlags
	var cf certFlags
	var state, etag string
	cmd := &cobra.Command{
		Use:   "update SERVICE_ACCOUNT",
		Short: "Change a service account's display name, description, labels, state or certificate identities",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			mask, err := updateMask(cmd.Flags(), [][2]string{
				{"display-name", "display_name"}, {"description", "description"}, {"label", "labels"}, {"state", "state"},
				{"cert-sha256", "certificate_identities"}, {"cert-uri-san", "certificate_identities"}, {"cert-dns-san", "certificate_identities"}})
			if err != nil {
				return nil, err
			}
			labels, err := parseLabels(d.labels)
			if err != nil {
				return nil, err
			}
			sa := &aegisv1.ServiceAccount{Name: n, DisplayName: d.displayName, Description: d.description, Labels: labels,
				CertificateIdentities: cf.identities(), Etag: etag}
			if cmd.Flags().Changed("state") {
				switch state {
				case "active":
					sa.State = aegisv1.ServiceAccount_STATE_ACTIVE
				case "disabled":
					sa.State = aegisv1.ServiceAccount_STATE_DISABLED
				default:
					return nil, fmt.Errorf("--state %q: want active or disabled", state)
				}
			}
			req := &aegisv1.UpdateServiceAccountRequest{ServiceAccount: sa, UpdateMask: mask}
			return func(c *iamCall) error {
				r, err := c.identity().UpdateServiceAccount(c.ctx, req)
				if err != nil {
					return c.s.rpc("update service account "+n, err)
				}
				return showOne(c.out, r, serviceAccountDetail())
			}, nil
		}),
	}
	d.add(cmd, true, true)
	cf.add(cmd.Flags())
	cmd.Flags().Lookup("cert-sha256").Usage += "; any --cert-* flag replaces all identities"
	cmd.Flags().StringVar(&state, "state", "", "active or disabled (disabling revokes its tokens)")
	addEtag(cmd.Flags(), &etag)
	return cmd
}

func serviceAccountColumns() []column[*aegisv1.ServiceAccount] {
	return []column[*aegisv1.ServiceAccount]{
		{"NAME", (*aegisv1.ServiceAccount).GetName},
		{"DISPLAY NAME", (*aegisv1.ServiceAccount).GetDisplayName},
		{"STATE", func(r *aegisv1.ServiceAccount) string { return fmtEnum(r.GetState().String(), "STATE_") }},
		{"CREATED", func(r *aegisv1.ServiceAccount) string { return fmtTime(r.GetCreateTime()) }},
	}
}

func serviceAccountDetail() []column[*aegisv1.ServiceAccount] {
	return append(serviceAccountColumns(),
		column[*aegisv1.ServiceAccount]{"DESCRIPTION", (*aegisv1.ServiceAccount).GetDescription},
		column[*aegisv1.ServiceAccount]{"LABELS", func(r *aegisv1.ServiceAccount) string { return fmtLabels(r.GetLabels()) }},
		column[*aegisv1.ServiceAccount]{"CERTIFICATES", func(r *aegisv1.ServiceAccount) string {
			var ids []string
			for _, c := range r.GetCertificateIdentities() {
				switch {
				case c.GetSha256Fingerprint() != "":
					ids = append(ids, "sha256:"+c.GetSha256Fingerprint())
				case c.GetUriSan() != "":
					ids = append(ids, "uri:"+c.GetUriSan())
				case c.GetDnsSan() != "":
					ids = append(ids, "dns:"+c.GetDnsSan())
				}
			}
			return strings.Join(ids, ", ")
		}},
		column[*aegisv1.ServiceAccount]{"UID", (*aegisv1.ServiceAccount).GetUid},
		column[*aegisv1.ServiceAccount]{"UPDATED", func(r *aegisv1.ServiceAccount) string { return fmtTime(r.GetUpdateTime()) }},
		column[*aegisv1.ServiceAccount]{"ETAG", (*aegisv1.ServiceAccount).GetEtag},
	)
}

// keyName is a key given as one full name, or as a service account and a
// key id.
func keyName(sa func(string) (string, error), args []string) (string, error) {
	if len(args) == 1 {
		if !strings.Contains(args[0], "/keys/") {
			return "", fmt.Errorf("key %q: give the full key name, or the service account and the key id", args[0])
		}
		return args[0], nil
	}
	s, err := sa(args[0])
	if err != nil {
		return "", err
	}
	return s + "/keys/" + args[1], nil
}

func keyCommands(o *iamOptions, sa func(string) (string, error)) []*cobra.Command {
	var description, expire string
	create := &cobra.Command{
		Use:   "create SERVICE_ACCOUNT",
		Short: "Create a key and print its client secret, which Aegis never shows again",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			parent, err := sa(args[0])
			if err != nil {
				return nil, err
			}
			exp, err := parseTimeFlag("expire", expire, o.env.now(), false)
			if err != nil {
				return nil, err
			}
			req := &aegisv1.CreateServiceAccountKeyRequest{Parent: parent,
				Key: &aegisv1.ServiceAccountKey{Description: description, ExpireTime: exp}}
			return func(c *iamCall) error {
				r, err := c.identity().CreateServiceAccountKey(c.ctx, req)
				if err != nil {
					return c.s.rpc("create key of "+parent, err)
				}
				// The one place the CLI prints a secret: it exists nowhere
				// else, so this is the caller's only chance to keep it.
				if err := showOne(c.out, r, append(keyColumns(), column[*aegisv1.ServiceAccountKey]{"CLIENT SECRET", (*aegisv1.ServiceAccountKey).GetClientSecret})); err != nil {
					return err
				}
				if !c.out.json {
					fmt.Fprintln(c.cmd.ErrOrStderr(), "Store the client secret now: Aegis keeps only its hash and cannot show it again.")
				}
				return nil
			}, nil
		}),
	}
	create.Flags().StringVar(&description, "description", "", "free text")
	create.Flags().StringVar(&expire, "expire", "", "when the key stops working: an RFC 3339 time, or a duration from now (720h)")

	get := &cobra.Command{
		Use:   "get KEY | SERVICE_ACCOUNT KEY_ID",
		Short: "Show one key (without its secret)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			n, err := keyName(sa, args)
			if err != nil {
				return nil, err
			}
			return func(c *iamCall) error {
				r, err := c.identity().GetServiceAccountKey(c.ctx, &aegisv1.GetServiceAccountKeyRequest{Name: n})
				if err != nil {
					return c.s.rpc("get key "+n, err)
				}
				r.ClientSecret = "" // never returned but by create; never shown but there
				return showOne(c.out, r, keyColumns())
			}, nil
		}),
	}

	list := listUnderCmd(o, "SERVICE_ACCOUNT", "keys", "List the keys of a service account (without secrets)",
		"create_time, expire_time, last_use_time", `'expire_time < "2027-01-01T00:00:00Z"'`, sa,
		func(c *iamCall, parent, filter string) page[*aegisv1.ServiceAccountKey] {
			return func(ctx context.Context, size int32, token string) ([]*aegisv1.ServiceAccountKey, string, error) {
				r, err := c.identity().ListServiceAccountKeys(ctx, &aegisv1.ListServiceAccountKeysRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
				for _, k := range r.GetKeys() {
					k.ClientSecret = "" // never returned but by create; never shown but there
				}
				return r.GetKeys(), r.GetNextPageToken(), err
			}
		}, keyColumns)

	var etag string
	del := &cobra.Command{
		Use:   "delete KEY | SERVICE_ACCOUNT KEY_ID",
		Short: "Delete a key; tokens issued with it stop working",
		Args:  cobra.RangeArgs(1, 2),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			n, err := keyName(sa, args)
			if err != nil {
				return nil, err
			}
			return func(c *iamCall) error {
				if err := emptyErr(c.identity().DeleteServiceAccountKey(c.ctx, &aegisv1.DeleteServiceAccountKeyRequest{Name: n, Etag: etag})); err != nil {
					return c.s.rpc("delete key "+n, err)
				}
				return c.deleted(n)
			}, nil
		}),
	}
	addEtag(del.Flags(), &etag)
	return []*cobra.Command{create, get, list, del}
}

func keyColumns() []column[*aegisv1.ServiceAccountKey] {
	return []column[*aegisv1.ServiceAccountKey]{
		{"NAME", (*aegisv1.ServiceAccountKey).GetName},
		{"CLIENT ID", (*aegisv1.ServiceAccountKey).GetClientId},
		{"DESCRIPTION", (*aegisv1.ServiceAccountKey).GetDescription},
		{"EXPIRES", func(r *aegisv1.ServiceAccountKey) string { return fmtTime(r.GetExpireTime()) }},
		{"LAST USED", func(r *aegisv1.ServiceAccountKey) string { return fmtTime(r.GetLastUseTime()) }},
		{"CREATED", func(r *aegisv1.ServiceAccountKey) string { return fmtTime(r.GetCreateTime()) }},
	}
}
