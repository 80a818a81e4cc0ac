package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// maxPageSize is the largest page Aegis serves; asking for more is
// treated as this much anyway.
const maxPageSize = 1000

// iamOptions are the flags of `photon iam`, shared by its subcommands.
type iamOptions struct {
	env    cliEnv
	conn   connOptions
	output string
}

func newIAMCommand(env cliEnv) *cobra.Command {
	o := &iamOptions{env: env}
	cmd := &cobra.Command{
		Use:   "iam",
		Short: "Manage identities and access in Aegis",
		Long: `iam manages Aegis's orgs, projects, users, groups, service accounts,
roles and bindings, reads the audit log, and checks access, as the user
of the stored session (see photon login).

Resources are named by their full names (orgs/acme/projects/web), or by
their id with the parent in --org and --project (web --org acme). After
photon login --project, the session's project stands in for --org and
--project when neither is given.`,
	}
	pf := cmd.PersistentFlags()
	addConnFlags(pf, &o.conn)
	addOutputFlag(pf, &o.output)
	cmd.AddCommand(
		newOrgsCommand(o), newProjectsCommand(o),
		newUsersCommand(o), newGroupsCommand(o), newServiceAccountsCommand(o),
		newRolesCommand(o), newBindingsCommand(o),
		newAuditCommand(o), newCheckCommand(o),
	)
	return cmd
}

// iamCall is what the body of an iam subcommand works with.
type iamCall struct {
	ctx context.Context
	s   *session
	out *printer
	cmd *cobra.Command
}

// sessionAlive reports whether Aegis still accepts the session's token.
func (c *iamCall) sessionAlive() bool {
	_, err := aegisv1.NewAuthnServiceClient(c.s.conn).WhoAmI(c.ctx, &aegisv1.WhoAmIRequest{})
	return status.Code(err) != codes.Unauthenticated
}

// action is the part of a subcommand that talks to Aegis.
type action func(c *iamCall) error

// run builds a RunE in two steps: prepare checks the arguments and flags
// and builds the request without any I/O (beyond reading the session's
// project from the credentials file, see withScope), so that a usage error
// never needs a session; the action it returns then runs with one.
func (o *iamOptions) run(prepare func(cmd *cobra.Command, args []string) (action, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		out, err := newPrinter(cmd.OutOrStdout(), o.output)
		if err != nil {
			return err
		}
		act, err := prepare(cmd, args)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), o.conn.timeout)
		defer cancel()
		s, err := openSession(ctx, o.env, &o.conn)
		if err != nil {
			return err
		}
		defer s.Close()
		return act(&iamCall{ctx: ctx, s: s, out: out, cmd: cmd})
	}
}

// parentFlags are --org and --project, which place bare ids.
type parentFlags struct {
	org     string
	project string
	scope   func() (string, error) // see withScope; nil: none
}

// parentFlags returns the --org and --project of an iam command, for
// which the project of a downscoped session stands in.
func (o *iamOptions) parentFlags() parentFlags {
	return parentFlags{scope: sessionScope(o.env, &o.conn)}
}

func (p *parentFlags) addOrg(fs *pflag.FlagSet) {
	fs.StringVar(&p.org, "org", "", "the org: acme or orgs/acme")
}

func (p *parentFlags) addProject(fs *pflag.FlagSet) {
	fs.StringVar(&p.project, "project", "", "the project: web (with --org) or orgs/acme/projects/web (default with neither flag: a downscoped session's)")
}

// orgName is --org as a name; required.
func (p *parentFlags) orgName() (string, error) {
	org, _, err := withScope(p.org, p.project, p.scope)
	if err != nil {
		return "", err
	}
	return orgFlagName(org)
}

// orgFlagName is the org of --org as a name; required.
func orgFlagName(org string) (string, error) {
	if org == "" {
		return "", errors.New("--org is required (or give a full name)")
	}
	id, ok := orgID(org)
	if !ok {
		return "", fmt.Errorf("--org %q: want acme or orgs/acme", org)
	}
	return "orgs/" + id, nil
}

// container is the project when --project is given, else the org.
func (p *parentFlags) container() (string, error) {
	org, project, err := withScope(p.org, p.project, p.scope)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(project, "orgs/") {
		if org != "" {
			return "", errors.New("give --project as a full name or with --org, not both")
		}
		return project, nil
	}
	orgName, err := orgFlagName(org)
	if err != nil {
		return "", err
	}
	if project == "" {
		return orgName, nil
	}
	if strings.Contains(project, "/") {
		return "", fmt.Errorf("--project %q: want web or orgs/acme/projects/web", project)
	}
	return orgName + "/projects/" + project, nil
}

// withScope fills in the org and project that --org and --project leave
// open from scope, the project a downscoped session is limited to (see
// sessionScope): both when neither flag is given, the org of a bare
// project id. Given flags win: --org alone names that org (or, where a
// project is required, asks for one), never a project of the session's.
func withScope(org, project string, scope func() (string, error)) (string, string, error) {
	if org != "" || strings.HasPrefix(project, "orgs/") || scope == nil {
		return org, project, nil
	}
	s, err := scope()
	if err != nil {
		return "", "", err
	}
	scopeOrg, scopeProject, ok := splitProjectName(s)
	if !ok {
		// No scope, or one this photon cannot read: as without.
		return org, project, nil
	}
	if project == "" {
		project = scopeProject
	}
	return scopeOrg, project, nil
}

// splitProjectName splits orgs/<org>/projects/<project>.
func splitProjectName(name string) (org, project string, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "orgs" || parts[1] == "" || parts[2] != "projects" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// childName is arg when it is a full name (has a "/"), else the id arg in
// collection under parent, which is computed only then.
func childName(arg, collection string, parent func() (string, error)) (string, error) {
	if arg == "" {
		return "", errors.New("empty name")
	}
	if strings.Contains(arg, "/") {
		return arg, nil
	}
	p, err := parent()
	if err != nil {
		return "", err
	}
	return p + "/" + collection + "/" + arg, nil
}

// createTarget splits the argument of a create: a full name
// (<parent>/<collection>/<id>) gives the parent and the id; a bare id takes
// its parent from the flags.
func createTarget(arg, collection string, parent func() (string, error)) (parentName, id string, err error) {
	sep := "/" + collection + "/"
	if i := strings.LastIndex(arg, sep); i > 0 {
		if id := arg[i+len(sep):]; id != "" && !strings.Contains(id, "/") {
			return arg[:i], id, nil
		}
	}
	if arg == "" || strings.Contains(arg, "/") {
		return "", "", fmt.Errorf("%q: want an id, or a full name <parent>%s<id>", arg, sep)
	}
	p, err := parent()
	if err != nil {
		return "", "", err
	}
	return p, arg, nil
}

// orgNameArg is an org argument: acme or orgs/acme.
func orgNameArg(arg string) (string, error) {
	id, ok := orgID(arg)
	if !ok {
		return "", fmt.Errorf("org %q: want acme or orgs/acme", arg)
	}
	return "orgs/" + id, nil
}

// listFlags are the flags of every list command of iam and dns.
type listFlags struct {
	filter string
	limit  int
}

// add adds --filter, whose help names the fields it takes and shows an
// example, and --limit.
func (l *listFlags) add(fs *pflag.FlagSet, fields, example string) {
	fs.StringVar(&l.filter, "filter", "", "AIP-160 filter on "+fields+", e.g. "+example)
	fs.IntVar(&l.limit, "limit", 0, "list at most this many (0: all, following every page)")
}

func (l *listFlags) check() error {
	if l.limit < 0 {
		return fmt.Errorf("--limit %d: must not be negative", l.limit)
	}
	return nil
}

// page fetches one page of at most size items after token.
type page[T any] func(ctx context.Context, size int32, token string) (items []T, next string, err error)

// listAll follows page tokens until the last page, or until limit items
// (0: no limit) are in.
func listAll[T any](ctx context.Context, limit int, fetch page[T]) ([]T, error) {
	var all []T
	token := ""
	seen := map[string]bool{}
	for {
		var size int32
		if limit > 0 {
			size = int32(min(limit-len(all), maxPageSize))
		}
		items, next, err := fetch(ctx, size, token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if limit > 0 && len(all) >= limit {
			return all[:limit], nil
		}
		if next == "" {
			return all, nil
		}
		if seen[next] {
			// A server bug must not turn into an endless loop.
			return nil, errors.New("the server repeated a page token; the listing is incomplete")
		}
		seen[next] = true
		token = next
	}
}

// etagFlag is the optional --etag of updates and deletes.
func addEtag(fs *pflag.FlagSet, etag *string) {
	fs.StringVar(etag, "etag", "", "fail (conflict) unless the resource still has this etag, from a get")
}

// updateMask lists the update mask paths of the flags that were given;
// fields maps flag names to paths. An update without any is a usage error.
func updateMask(fs *pflag.FlagSet, fields [][2]string) (*fieldmaskpb.FieldMask, error) {
	m := &fieldmaskpb.FieldMask{}
	var names []string
	for _, f := range fields {
		names = append(names, "--"+f[0])
		if fs.Changed(f[0]) && !slices.Contains(m.Paths, f[1]) {
			m.Paths = append(m.Paths, f[1])
		}
	}
	if len(m.Paths) == 0 {
		return nil, fmt.Errorf("nothing to update: give at least one of %s", strings.Join(names, ", "))
	}
	return m, nil
}

// parseLabels reads repeated --label key=value flags.
func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want key=value", kv)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--label %s given twice", k)
		}
		m[k] = v
	}
	return m, nil
}

func addLabels(fs *pflag.FlagSet, labels *[]string, update bool) {
	help := "label key=value (repeatable)"
	if update {
		help += "; replaces all labels"
	}
	fs.StringArrayVar(labels, "label", nil, help)
}

// parseTimeFlag reads an instant: RFC 3339, or a duration relative to now
// (negative ago for "since", e.g. 1h meaning one hour ago when ago).
func parseTimeFlag(flag, s string, now time.Time, ago bool) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return timestamppb.New(t), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return nil, fmt.Errorf("--%s %q: want an RFC 3339 time (2027-01-02T15:04:05Z) or a positive duration (90m)", flag, s)
	}
	if ago {
		d = -d
	}
	return timestamppb.New(now.Add(d)), nil
}

// deleted reports a deletion; JSON output stays empty, the exit status
// says it all.
func (c *iamCall) deleted(name string) error {
	if c.out.json {
		return nil
	}
	_, err := fmt.Fprintf(c.out.w, "Deleted %s.\n", name)
	return err
}

// getCmd is "get NAME" for a kind of resource.
func getCmd[T proto.Message](o *iamOptions, noun, argName string, name func(arg string) (string, error),
	get func(c *iamCall, name string) (T, error), cols func() []column[T]) *cobra.Command {
	return &cobra.Command{
		Use:   "get " + argName,
		Short: "Show one " + noun,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			return showAction("get "+noun+" "+n, func(c *iamCall) (T, error) { return get(c, n) }, cols), nil
		}),
	}
}

// deleteCmd is "delete NAME [--etag E] [--force]".
func deleteCmd(o *iamOptions, noun, argName, forceHelp string, name func(arg string) (string, error),
	del func(c *iamCall, name, etag string, force bool) error) *cobra.Command {
	var etag string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete " + argName,
		Short: "Delete a " + noun,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			return func(c *iamCall) error {
				if err := del(c, n, etag, force); err != nil {
					return c.s.rpc("delete "+noun+" "+n, err)
				}
				return c.deleted(n)
			}, nil
		}),
	}
	addEtag(cmd.Flags(), &etag)
	if forceHelp != "" {
		cmd.Flags().BoolVar(&force, "force", false, forceHelp)
	}
	return cmd
}

// listCmd is "list" over every page; parent computes the parent from the
// flags (nil: none).
func listCmd[T proto.Message](o *iamOptions, plural, filterHelp string, parent func() (string, error),
	list func(c *iamCall, parent, filter string) page[T], cols func() []column[T]) *cobra.Command {
	lf := &listFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List " + plural,
		Args:  cobra.NoArgs,
		RunE: o.run(func(*cobra.Command, []string) (action, error) {
			if err := lf.check(); err != nil {
				return nil, err
			}
			var p string
			if parent != nil {
				var err error
				if p, err = parent(); err != nil {
					return nil, err
				}
			}
			return listAction(lf, "list "+plural, p, list, cols), nil
		}),
	}
	lf.add(cmd.Flags(), filterHelp, `'display_name = "Web*"'`)
	return cmd
}

// listUnderCmd is "list ARG" over every page of the plural that the
// resource ARG holds (a group's members, a service account's keys); parent
// names the resource.
func listUnderCmd[T proto.Message](o *iamOptions, argName, plural, short, fields, example string,
	parent func(arg string) (string, error), list func(c *iamCall, parent, filter string) page[T], cols func() []column[T]) *cobra.Command {
	lf := &listFlags{}
	cmd := &cobra.Command{
		Use:   "list " + argName,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			if err := lf.check(); err != nil {
				return nil, err
			}
			p, err := parent(args[0])
			if err != nil {
				return nil, err
			}
			return listAction(lf, "list "+plural+" of "+p, p, list, cols), nil
		}),
	}
	lf.add(cmd.Flags(), fields, example)
	return cmd
}

// listAction shows every item of every page of list under parent that
// lf's filter matches, up to lf's limit; op names the listing in errors.
func listAction[T proto.Message](lf *listFlags, op, parent string, list func(c *iamCall, parent, filter string) page[T], cols func() []column[T]) action {
	return func(c *iamCall) error {
		items, err := listAll(c.ctx, lf.limit, list(c, parent, lf.filter))
		if err != nil {
			return c.s.rpc(op, err)
		}
		return showList(c.out, items, cols())
	}
}

// showAction makes the call and shows the resource it returns; op names
// the call in errors.
func showAction[T proto.Message](op string, call func(c *iamCall) (T, error), cols func() []column[T]) action {
	return func(c *iamCall) error {
		r, err := call(c)
		if err != nil {
			return c.s.rpc(op, err)
		}
		return showOne(c.out, r, cols())
	}
}

// createDescribedCmd is "create ID" for a kind of resource of an org that
// has nothing to set but what describedFlags hold (projects, groups);
// create makes one under parent.
func createDescribedCmd[T proto.Message](o *iamOptions, noun, collection string, pf *parentFlags,
	create func(c *iamCall, parent, id string, d described) (T, error), detail func() []column[T]) *cobra.Command {
	var df describedFlags
	cmd := &cobra.Command{
		Use:   "create " + strings.ToUpper(noun) + "_ID",
		Short: "Create a " + noun + " in an org",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			parent, id, err := createTarget(args[0], collection, pf.orgName)
			if err != nil {
				return nil, err
			}
			d, err := df.values()
			if err != nil {
				return nil, err
			}
			return showAction("create "+noun+" "+id, func(c *iamCall) (T, error) { return create(c, parent, id, d) }, detail), nil
		}),
	}
	df.add(cmd, false, true)
	return cmd
}

// updateDescribedCmd is "update NAME" for the kinds of createDescribedCmd:
// update sends the fields in mask, with etag when given.
func updateDescribedCmd[T proto.Message](o *iamOptions, noun string, name func(string) (string, error),
	update func(c *iamCall, name, etag string, mask *fieldmaskpb.FieldMask, d described) (T, error), detail func() []column[T]) *cobra.Command {
	var df describedFlags
	var etag string
	cmd := &cobra.Command{
		Use:   "update " + strings.ToUpper(noun),
		Short: "Change a " + noun + "'s display name, description or labels",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			n, err := name(args[0])
			if err != nil {
				return nil, err
			}
			mask, err := updateMask(cmd.Flags(), [][2]string{{"display-name", "display_name"}, {"description", "description"}, {"label", "labels"}})
			if err != nil {
				return nil, err
			}
			d, err := df.values()
			if err != nil {
				return nil, err
			}
			return showAction("update "+noun+" "+n, func(c *iamCall) (T, error) { return update(c, n, etag, mask, d) }, detail), nil
		}),
	}
	df.add(cmd, true, true)
	addEtag(cmd.Flags(), &etag)
	return cmd
}
