package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

func (c *iamCall) policy() aegisv1.PolicyServiceClient {
	return aegisv1.NewPolicyServiceClient(c.s.conn)
}

// roleName is a role argument: a full name, or a bare id naming a custom
// role of --org, or without --org a built-in role (ProjectAdmin is
// roles/ProjectAdmin).
func roleName(arg string, pf *parentFlags) (string, error) {
	if arg == "" {
		return "", errors.New("empty role")
	}
	if strings.Contains(arg, "/") {
		return arg, nil
	}
	if pf == nil || pf.org == "" {
		return "roles/" + arg, nil
	}
	org, err := pf.orgName()
	if err != nil {
		return "", err
	}
	return org + "/roles/" + arg, nil
}

func newRolesCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "roles", Aliases: []string{"role"}, Short: "List built-in roles and manage the custom roles of an org"}
	pf := o.parentFlags()
	name := func(arg string) (string, error) { return roleName(arg, &pf) }
	// Without --org, list shows the built-in roles.
	listParent := func() (string, error) {
		if pf.org == "" {
			return "", nil
		}
		return pf.orgName()
	}
	subs := []*cobra.Command{
		createRoleCmd(o, &pf),
		getCmd(o, "role", "ROLE", name,
			func(c *iamCall, n string) (*aegisv1.Role, error) {
				return c.policy().GetRole(c.ctx, &aegisv1.GetRoleRequest{Name: n})
			}, roleDetail),
		listCmd(o, "roles (built-in, or with --org the org's custom roles)", `display_name, permissions (permissions:"flashdns:records:update")`, listParent,
			func(c *iamCall, parent, filter string) page[*aegisv1.Role] {
				return func(ctx context.Context, size int32, token string) ([]*aegisv1.Role, string, error) {
					r, err := c.policy().ListRoles(ctx, &aegisv1.ListRolesRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
					return r.GetRoles(), r.GetNextPageToken(), err
				}
			}, roleColumns),
		updateRoleCmd(o, name),
		deleteCmd(o, "role", "ROLE", "also delete the bindings that use the role", name, func(c *iamCall, n, etag string, force bool) error {
			return emptyErr(c.policy().DeleteRole(c.ctx, &aegisv1.DeleteRoleRequest{Name: n, Etag: etag, Force: force}))
		}),
	}
	for _, c := range subs {
		pf.addOrg(c.Flags())
	}
	cmd.AddCommand(subs...)
	return cmd
}

func createRoleCmd(o *iamOptions, pf *parentFlags) *cobra.Command {
	var displayName, description string
	var perms []string
	cmd := &cobra.Command{
		Use:   "create ROLE_ID --org ORG --permission PERM...",
		Short: "Create a custom role in an org",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			parent, id, err := createTarget(args[0], "roles", pf.orgName)
			if err != nil {
				return nil, err
			}
			if len(perms) == 0 {
				return nil, errors.New("give at least one --permission")
			}
			req := &aegisv1.CreateRoleRequest{Parent: parent, RoleId: id,
				Role: &aegisv1.Role{DisplayName: displayName, Description: description, Permissions: perms}}
			return func(c *iamCall) error {
				r, err := c.policy().CreateRole(c.ctx, req)
				if err != nil {
					return c.s.rpc("create role "+id, err)
				}
				return showOne(c.out, r, roleDetail())
			}, nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&displayName, "display-name", "", "human-readable name")
	fs.StringVar(&description, "description", "", "free text")
	fs.StringSliceVar(&perms, "permission", nil, "permission service:resource:verb, * for a whole segment (repeatable or comma-separated)")
	return cmd
}

func updateRoleCmd(o *iamOptions, name func(string) (string, error)) *cobra.Command {
	var displayName, description, etag string
	var perms []string
	cmd := &cobra.Command{
		Use:   "update ROLE",
		Short: "Change a custom role's display name, description or permissions",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			mask, err := updateMask(cmd.Flags(), [][2]string{{"display-name", "display_name"}, {"description", "description"}, {"permission", "permissions"}})
			if err != nil {
				return nil, err
			}
			if cmd.Flags().Changed("permission") && len(perms) == 0 {
				return nil, errors.New("a role needs at least one --permission")
			}
			req := &aegisv1.UpdateRoleRequest{UpdateMask: mask,
				Role: &aegisv1.Role{Name: n, DisplayName: displayName, Description: description, Permissions: perms, Etag: etag}}
			return func(c *iamCall) error {
				r, err := c.policy().UpdateRole(c.ctx, req)
				if err != nil {
					return c.s.rpc("update role "+n, err)
				}
				return showOne(c.out, r, roleDetail())
			}, nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&displayName, "display-name", "", "human-readable name")
	fs.StringVar(&description, "description", "", "free text")
	fs.StringSliceVar(&perms, "permission", nil, "the role's permissions, replacing all (repeatable or comma-separated)")
	addEtag(fs, &etag)
	return cmd
}

func roleColumns() []column[*aegisv1.Role] {
	return []column[*aegisv1.Role]{
		{"NAME", (*aegisv1.Role).GetName},
		{"DISPLAY NAME", (*aegisv1.Role).GetDisplayName},
		{"BUILT-IN", func(r *aegisv1.Role) string { return fmtBool(r.GetBuiltIn()) }},
		{"PERMISSIONS", func(r *aegisv1.Role) string { return strconv.Itoa(len(r.GetPermissions())) }},
	}
}

func roleDetail() []column[*aegisv1.Role] {
	return []column[*aegisv1.Role]{
		{"NAME", (*aegisv1.Role).GetName},
		{"DISPLAY NAME", (*aegisv1.Role).GetDisplayName},
		{"BUILT-IN", func(r *aegisv1.Role) string { return fmtBool(r.GetBuiltIn()) }},
		{"DESCRIPTION", (*aegisv1.Role).GetDescription},
		{"PERMISSIONS", func(r *aegisv1.Role) string { return strings.Join(r.GetPermissions(), " ") }},
		{"CREATED", func(r *aegisv1.Role) string { return fmtTime(r.GetCreateTime()) }},
		{"UPDATED", func(r *aegisv1.Role) string { return fmtTime(r.GetUpdateTime()) }},
		{"ETAG", (*aegisv1.Role).GetEtag},
	}
}

// bindingContainer is where a binding with this scope lives: the scope
// itself if it is system, an org or a project, else the nearest of those
// above it.
func bindingContainer(scope string) (string, error) {
	if scope == "system" {
		return scope, nil
	}
	parts := strings.Split(scope, "/")
	if len(parts) < 2 || parts[0] != "orgs" || parts[1] == "" {
		return "", fmt.Errorf("--scope %q: want system, orgs/<org>, orgs/<org>/projects/<project> or a resource in one", scope)
	}
	if len(parts) >= 4 && parts[2] == "projects" && parts[3] != "" {
		return strings.Join(parts[:4], "/"), nil
	}
	return strings.Join(parts[:2], "/"), nil
}

// bindingRole accepts ProjectAdmin for roles/ProjectAdmin.
func bindingRole(role string) string {
	if strings.Contains(role, "/") {
		return role
	}
	return "roles/" + role
}

// expiration reads --expire: an RFC 3339 time, or a time to live.
func expiration(s string) (*aegisv1.Binding_ExpireTime, *aegisv1.Binding_Ttl, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return &aegisv1.Binding_ExpireTime{ExpireTime: timestamppb.New(t)}, nil, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return nil, nil, fmt.Errorf("--expire %q: want an RFC 3339 time (2027-01-02T15:04:05Z) or a positive duration (24h)", s)
	}
	return nil, &aegisv1.Binding_Ttl{Ttl: durationpb.New(d)}, nil
}

// conditionFlags are a binding's CEL condition.
type conditionFlags struct {
	expression, title, description string
}

func (f *conditionFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.expression, "condition", "", `CEL condition that must be true for the binding to apply, e.g. 'resource.labels["env"] != "prod"'`)
	fs.StringVar(&f.title, "condition-title", "", "short name of the condition, shown in decisions")
	fs.StringVar(&f.description, "condition-description", "", "free text about the condition")
}

func (f *conditionFlags) condition() (*aegisv1.Condition, error) {
	if f.expression == "" {
		if f.title != "" || f.description != "" {
			return nil, errors.New("--condition-title and --condition-description need --condition")
		}
		return nil, nil
	}
	return &aegisv1.Condition{Expression: f.expression, Title: f.title, Description: f.description}, nil
}

func newBindingsCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "bindings", Aliases: []string{"binding"}, Short: "Grant and deny roles: manage bindings"}
	// Separate variables: registering a flag sets its variable to the
	// flag's default, and the two --parent flags have different ones.
	var parent, listParent string
	name := func(arg string) (string, error) {
		return childName(arg, "bindings", func() (string, error) {
			if parent == "" {
				return "", errors.New("give the full binding name, or --parent with the binding id")
			}
			return parent, nil
		})
	}
	list := listCmd(o, "bindings of a container", "member, role, scope, effect (EFFECT_ALLOW, EFFECT_DENY), creator, create_time, expire_time, condition:*",
		func() (string, error) { return listParent, nil },
		func(c *iamCall, parent, filter string) page[*aegisv1.Binding] {
			return func(ctx context.Context, size int32, token string) ([]*aegisv1.Binding, string, error) {
				r, err := c.policy().ListBindings(ctx, &aegisv1.ListBindingsRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
				return r.GetBindings(), r.GetNextPageToken(), err
			}
		}, bindingColumns)
	list.Flags().StringVar(&listParent, "parent", "system", "the container whose bindings to list: system, orgs/<org> or orgs/<org>/projects/<project>")
	subs := []*cobra.Command{
		getCmd(o, "binding", "BINDING", name,
			func(c *iamCall, n string) (*aegisv1.Binding, error) {
				return c.policy().GetBinding(c.ctx, &aegisv1.GetBindingRequest{Name: n})
			}, bindingDetail),
		updateBindingCmd(o, name),
		deleteCmd(o, "binding", "BINDING", "", name, func(c *iamCall, n, etag string, _ bool) error {
			return emptyErr(c.policy().DeleteBinding(c.ctx, &aegisv1.DeleteBindingRequest{Name: n, Etag: etag}))
		}),
	}
	for _, c := range subs {
		c.Flags().StringVar(&parent, "parent", "", "the container of a binding given by id: system, orgs/<org> or orgs/<org>/projects/<project>")
	}
	cmd.AddCommand(append([]*cobra.Command{createBindingCmd(o), list}, subs...)...)
	return cmd
}

func createBindingCmd(o *iamOptions) *cobra.Command {
	var member, role, scope, expire, description, id string
	var deny bool
	var cond conditionFlags
	cmd := &cobra.Command{
		Use:   "create --member MEMBER --role ROLE --scope SCOPE",
		Short: "Grant (or with --deny, deny) a role to a member at a scope",
		Long: `create adds a binding: MEMBER (a user, service account or group name)
gets ROLE (roles/ProjectEditor, ProjectEditor for short, or a custom role
orgs/<org>/roles/<role>) at SCOPE (system, orgs/<org>,
orgs/<org>/projects/<project>, or a resource in one) and everything below
it. The binding is stored in the container of the scope. A deny binding
wins over every allow.`,
		Args: cobra.NoArgs,
		RunE: o.run(func(_ *cobra.Command, _ []string) (action, error) {
			switch {
			case member == "":
				return nil, errors.New("--member is required")
			case role == "":
				return nil, errors.New("--role is required")
			case scope == "":
				return nil, errors.New("--scope is required")
			case !strings.Contains(member, "/"):
				return nil, fmt.Errorf("--member %q: give the full name, e.g. orgs/acme/users/alice or orgs/acme/groups/devs", member)
			}
			container, err := bindingContainer(scope)
			if err != nil {
				return nil, err
			}
			c, err := cond.condition()
			if err != nil {
				return nil, err
			}
			b := &aegisv1.Binding{Member: member, Role: bindingRole(role), Scope: scope, Condition: c, Description: description,
				Effect: aegisv1.Binding_EFFECT_ALLOW}
			if deny {
				b.Effect = aegisv1.Binding_EFFECT_DENY
			}
			if expire != "" {
				at, ttl, err := expiration(expire)
				if err != nil {
					return nil, err
				}
				if at != nil {
					b.Expiration = at
				} else {
					b.Expiration = ttl
				}
			}
			req := &aegisv1.CreateBindingRequest{Parent: container, BindingId: id, Binding: b}
			return func(c *iamCall) error {
				r, err := c.policy().CreateBinding(c.ctx, req)
				if err != nil {
					return c.s.rpc("create binding", err)
				}
				return showOne(c.out, r, bindingDetail())
			}, nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&member, "member", "", "user, service account or group name")
	fs.StringVar(&role, "role", "", "role: ProjectEditor, roles/ProjectEditor or orgs/<org>/roles/<role>")
	fs.StringVar(&scope, "scope", "", "where it applies: system, orgs/<org>, orgs/<org>/projects/<project> or a resource")
	fs.BoolVar(&deny, "deny", false, "deny the role's permissions instead of granting them")
	fs.StringVar(&expire, "expire", "", "when the binding stops applying: an RFC 3339 time, or a time to live (24h)")
	fs.StringVar(&description, "description", "", "free text")
	fs.StringVar(&id, "id", "", "binding id (default: generated by Aegis)")
	cond.add(fs)
	return cmd
}

func updateBindingCmd(o *iamOptions, name func(string) (string, error)) *cobra.Command {
	var expire, description, etag string
	var clearCond, clearExpire bool
	var cond conditionFlags
	cmd := &cobra.Command{
		Use:   "update BINDING",
		Short: "Change a binding's condition, expiry or description (member, role, scope and effect are fixed)",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			fs := cmd.Flags()
			mask, err := updateMask(fs, [][2]string{
				{"condition", "condition"}, {"condition-title", "condition"}, {"condition-description", "condition"}, {"clear-condition", "condition"},
				{"expire", "expire_time"}, {"clear-expire", "expire_time"}, {"description", "description"}})
			if err != nil {
				return nil, err
			}
			if clearCond && (fs.Changed("condition") || fs.Changed("condition-title") || fs.Changed("condition-description")) {
				return nil, errors.New("--clear-condition and --condition exclude each other")
			}
			if clearExpire && expire != "" {
				return nil, errors.New("--clear-expire and --expire exclude each other")
			}
			b := &aegisv1.Binding{Name: n, Description: description, Etag: etag}
			if b.Condition, err = cond.condition(); err != nil {
				return nil, err
			}
			if expire != "" {
				at, ttl, err := expiration(expire)
				if err != nil {
					return nil, err
				}
				if at != nil {
					b.Expiration = at
				} else {
					b.Expiration = ttl
					for i, p := range mask.Paths {
						if p == "expire_time" {
							mask.Paths[i] = "ttl"
						}
					}
				}
			}
			req := &aegisv1.UpdateBindingRequest{Binding: b, UpdateMask: mask}
			return func(c *iamCall) error {
				r, err := c.policy().UpdateBinding(c.ctx, req)
				if err != nil {
					return c.s.rpc("update binding "+n, err)
				}
				return showOne(c.out, r, bindingDetail())
			}, nil
		}),
	}
	fs := cmd.Flags()
	cond.add(fs)
	fs.BoolVar(&clearCond, "clear-condition", false, "remove the condition")
	fs.StringVar(&expire, "expire", "", "new expiry: an RFC 3339 time, or a time to live (24h)")
	fs.BoolVar(&clearExpire, "clear-expire", false, "remove the expiry")
	fs.StringVar(&description, "description", "", "free text")
	addEtag(fs, &etag)
	return cmd
}

func bindingColumns() []column[*aegisv1.Binding] {
	return []column[*aegisv1.Binding]{
		{"NAME", (*aegisv1.Binding).GetName},
		{"EFFECT", func(r *aegisv1.Binding) string { return fmtEnum(r.GetEffect().String(), "EFFECT_") }},
		{"MEMBER", (*aegisv1.Binding).GetMember},
		{"ROLE", (*aegisv1.Binding).GetRole},
		{"SCOPE", (*aegisv1.Binding).GetScope},
		{"CONDITION", func(r *aegisv1.Binding) string {
			if t := r.GetCondition().GetTitle(); t != "" {
				return t
			}
			return r.GetCondition().GetExpression()
		}},
		{"EXPIRES", func(r *aegisv1.Binding) string { return fmtTime(r.GetExpireTime()) }},
	}
}

func bindingDetail() []column[*aegisv1.Binding] {
	return []column[*aegisv1.Binding]{
		{"NAME", (*aegisv1.Binding).GetName},
		{"EFFECT", func(r *aegisv1.Binding) string { return fmtEnum(r.GetEffect().String(), "EFFECT_") }},
		{"MEMBER", (*aegisv1.Binding).GetMember},
		{"ROLE", (*aegisv1.Binding).GetRole},
		{"SCOPE", (*aegisv1.Binding).GetScope},
		{"CONDITION", func(r *aegisv1.Binding) string { return r.GetCondition().GetExpression() }},
		{"CONDITION TITLE", func(r *aegisv1.Binding) string { return r.GetCondition().GetTitle() }},
		{"EXPIRES", func(r *aegisv1.Binding) string { return fmtTime(r.GetExpireTime()) }},
		{"DESCRIPTION", (*aegisv1.Binding).GetDescription},
		{"CREATOR", (*aegisv1.Binding).GetCreator},
		{"CREATED", func(r *aegisv1.Binding) string { return fmtTime(r.GetCreateTime()) }},
		{"UPDATED", func(r *aegisv1.Binding) string { return fmtTime(r.GetUpdateTime()) }},
		{"ETAG", (*aegisv1.Binding).GetEtag},
	}
}
