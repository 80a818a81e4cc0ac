package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

func (c *iamCall) orgs() aegisv1.OrgServiceClient { return aegisv1.NewOrgServiceClient(c.s.conn) }

// describedFlags are the display name, description and labels most
// resources have.
type describedFlags struct {
	displayName string
	description string
	labels      []string
}

func (d *describedFlags) add(cmd *cobra.Command, update, description bool) {
	fs := cmd.Flags()
	fs.StringVar(&d.displayName, "display-name", "", "human-readable name")
	if description {
		fs.StringVar(&d.description, "description", "", "free text")
	}
	addLabels(fs, &d.labels, update)
}

// described is what describedFlags hold, the labels parsed.
type described struct {
	displayName string
	description string
	labels      map[string]string
}

func (d *describedFlags) values() (described, error) {
	labels, err := parseLabels(d.labels)
	return described{displayName: d.displayName, description: d.description, labels: labels}, err
}

func newOrgsCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "orgs", Aliases: []string{"org"}, Short: "Manage orgs (tenants)"}
	cmd.AddCommand(
		createOrgCmd(o),
		getCmd(o, "org", "ORG", orgNameArg,
			func(c *iamCall, n string) (*aegisv1.Org, error) {
				return c.orgs().GetOrg(c.ctx, &aegisv1.GetOrgRequest{Name: n})
			}, orgDetail),
		listCmd(o, "orgs", "display_name, state, labels, create_time", nil,
			func(c *iamCall, _, filter string) page[*aegisv1.Org] {
				return func(ctx context.Context, size int32, token string) ([]*aegisv1.Org, string, error) {
					r, err := c.orgs().ListOrgs(ctx, &aegisv1.ListOrgsRequest{PageSize: size, PageToken: token, Filter: filter})
					return r.GetOrgs(), r.GetNextPageToken(), err
				}
			}, orgColumns),
		updateOrgCmd(o),
		deleteCmd(o, "org", "ORG", "also delete everything the org owns", orgNameArg,
			func(c *iamCall, n, etag string, force bool) error {
				return emptyErr(c.orgs().DeleteOrg(c.ctx, &aegisv1.DeleteOrgRequest{Name: n, Etag: etag, Force: force}))
			}),
	)
	return cmd
}

func createOrgCmd(o *iamOptions) *cobra.Command {
	var d describedFlags
	cmd := &cobra.Command{
		Use:   "create ORG_ID",
		Short: "Create an org",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(_ *cobra.Command, args []string) (action, error) {
			labels, err := parseLabels(d.labels)
			if err != nil {
				return nil, err
			}
			id, ok := orgID(args[0])
			if !ok {
				return nil, fmt.Errorf("org id %q: want acme", args[0])
			}
			req := &aegisv1.CreateOrgRequest{OrgId: id, Org: &aegisv1.Org{DisplayName: d.displayName, Description: d.description, Labels: labels}}
			return func(c *iamCall) error {
				r, err := c.orgs().CreateOrg(c.ctx, req)
				if err != nil {
					return c.s.rpc("create org "+id, err)
				}
				return showOne(c.out, r, orgDetail())
			}, nil
		}),
	}
	d.add(cmd, false, true)
	return cmd
}

func updateOrgCmd(o *iamOptions) *cobra.Command {
	var d describedFlags
	var state, etag string
	cmd := &cobra.Command{
		Use:   "update ORG",
		Short: "Change an org's display name, description, labels or state",
		Args:  cobra.ExactArgs(1),
		RunE: o.run(func(cmd *cobra.Command, args []string) (action, error) {
			n, err := orgNameArg(args[0])
			if err != nil {
				return nil, err
			}
			mask, err := updateMask(cmd.Flags(), [][2]string{
				{"display-name", "display_name"}, {"description", "description"}, {"label", "labels"}, {"state", "state"}})
			if err != nil {
				return nil, err
			}
			labels, err := parseLabels(d.labels)
			if err != nil {
				return nil, err
			}
			org := &aegisv1.Org{Name: n, DisplayName: d.displayName, Description: d.description, Labels: labels, Etag: etag}
			if cmd.Flags().Changed("state") {
				switch state {
				case "active":
					org.State = aegisv1.Org_STATE_ACTIVE
				case "suspended":
					org.State = aegisv1.Org_STATE_SUSPENDED
				default:
					return nil, fmt.Errorf("--state %q: want active or suspended", state)
				}
			}
			req := &aegisv1.UpdateOrgRequest{Org: org, UpdateMask: mask}
			return func(c *iamCall) error {
				r, err := c.orgs().UpdateOrg(c.ctx, req)
				if err != nil {
					return c.s.rpc("update org "+n, err)
				}
				return showOne(c.out, r, orgDetail())
			}, nil
		}),
	}
	d.add(cmd, true, true)
	cmd.Flags().StringVar(&state, "state", "", "active or suspended (a suspended org's principals cannot authenticate)")
	addEtag(cmd.Flags(), &etag)
	return cmd
}

func orgColumns() []column[*aegisv1.Org] {
	return []column[*aegisv1.Org]{
		{"NAME", (*aegisv1.Org).GetName},
		{"DISPLAY NAME", (*aegisv1.Org).GetDisplayName},
		{"STATE", func(r *aegisv1.Org) string { return fmtEnum(r.GetState().String(), "STATE_") }},
		{"LABELS", func(r *aegisv1.Org) string { return fmtLabels(r.GetLabels()) }},
		{"CREATED", func(r *aegisv1.Org) string { return fmtTime(r.GetCreateTime()) }},
	}
}

func orgDetail() []column[*aegisv1.Org] {
	return append(orgColumns(),
		column[*aegisv1.Org]{"DESCRIPTION", (*aegisv1.Org).GetDescription},
		column[*aegisv1.Org]{"UID", (*aegisv1.Org).GetUid},
		column[*aegisv1.Org]{"UPDATED", func(r *aegisv1.Org) string { return fmtTime(r.GetUpdateTime()) }},
		column[*aegisv1.Org]{"ETAG", (*aegisv1.Org).GetEtag},
	)
}

func newProjectsCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "projects", Aliases: []string{"project"}, Short: "Manage the projects of an org"}
	pf := o.parentFlags()
	name := func(arg string) (string, error) { return childName(arg, "projects", pf.orgName) }
	get := getCmd(o, "project", "PROJECT", name,
		func(c *iamCall, n string) (*aegisv1.Project, error) {
			return c.orgs().GetProject(c.ctx, &aegisv1.GetProjectRequest{Name: n})
		}, projectDetail)
	list := listCmd(o, "projects", "display_name, labels, create_time", pf.orgName,
		func(c *iamCall, parent, filter string) page[*aegisv1.Project] {
			return func(ctx context.Context, size int32, token string) ([]*aegisv1.Project, string, error) {
				r, err := c.orgs().ListProjects(ctx, &aegisv1.ListProjectsRequest{Parent: parent, PageSize: size, PageToken: token, Filter: filter})
				return r.GetProjects(), r.GetNextPageToken(), err
			}
		}, projectColumns)
	del := deleteCmd(o, "project", "PROJECT", "also delete the project's service accounts and bindings", name,
		func(c *iamCall, n, etag string, force bool) error {
			return emptyErr(c.orgs().DeleteProject(c.ctx, &aegisv1.DeleteProjectRequest{Name: n, Etag: etag, Force: force}))
		})
	create := createDescribedCmd(o, "project", "projects", &pf,
		func(c *iamCall, parent, id string, d described) (*aegisv1.Project, error) {
			return c.orgs().CreateProject(c.ctx, &aegisv1.CreateProjectRequest{Parent: parent, ProjectId: id,
				Project: &aegisv1.Project{DisplayName: d.displayName, Description: d.description, Labels: d.labels}})
		}, projectDetail)
	update := updateDescribedCmd(o, "project", name,
		func(c *iamCall, n, etag string, mask *fieldmaskpb.FieldMask, d described) (*aegisv1.Project, error) {
			return c.orgs().UpdateProject(c.ctx, &aegisv1.UpdateProjectRequest{UpdateMask: mask,
				Project: &aegisv1.Project{Name: n, DisplayName: d.displayName, Description: d.description, Labels: d.labels, Etag: etag}})
		}, projectDetail)
	for _, c := range []*cobra.Command{get, list, del, create, update} {
		pf.addOrg(c.Flags())
	}
	cmd.AddCommand(create, get, list, update, del)
	return cmd
}

func projectColumns() []column[*aegisv1.Project] {
	return []column[*aegisv1.Project]{
		{"NAME", (*aegisv1.Project).GetName},
		{"DISPLAY NAME", (*aegisv1.Project).GetDisplayName},
		{"LABELS", func(r *aegisv1.Project) string { return fmtLabels(r.GetLabels()) }},
		{"CREATED", func(r *aegisv1.Project) string { return fmtTime(r.GetCreateTime()) }},
	}
}

func projectDetail() []column[*aegisv1.Project] {
	return append(projectColumns(),
		column[*aegisv1.Project]{"DESCRIPTION", (*aegisv1.Project).GetDescription},
		column[*aegisv1.Project]{"UID", (*aegisv1.Project).GetUid},
		column[*aegisv1.Project]{"UPDATED", func(r *aegisv1.Project) string { return fmtTime(r.GetUpdateTime()) }},
		column[*aegisv1.Project]{"ETAG", (*aegisv1.Project).GetEtag},
	)
}

// emptyErr drops the Empty of a delete.
func emptyErr(_ *emptypb.Empty, err error) error { return err }
