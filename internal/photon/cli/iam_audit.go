package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

func newAuditCommand(o *iamOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var parent, since, until, principal, resource string
	lf := &listFlags{}
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit events of a container and everything below it, newest first",
		Args:  cobra.NoArgs,
		RunE: o.run(func(*cobra.Command, []string) (action, error) {
			if err := lf.check(); err != nil {
				return nil, err
			}
			now := o.env.now()
			start, err := parseTimeFlag("since", since, now, true)
			if err != nil {
				return nil, err
			}
			end, err := parseTimeFlag("until", until, now, true)
			if err != nil {
				return nil, err
			}
			if start != nil && end != nil && !start.AsTime().Before(end.AsTime()) {
				return nil, errors.New("--since must be before --until")
			}
			return func(c *iamCall) error {
				items, err := listAll(c.ctx, lf.limit, func(ctx context.Context, size int32, token string) ([]*aegisv1.AuditEvent, string, error) {
					r, err := aegisv1.NewAuditServiceClient(c.s.conn).ListAuditEvents(ctx, &aegisv1.ListAuditEventsRequest{
						Parent: parent, StartTime: start, EndTime: end, Principal: principal, Resource: resource,
						Filter: lf.filter, PageSize: size, PageToken: token})
					return r.GetAuditEvents(), r.GetNextPageToken(), err
				})
				if err != nil {
					return c.s.rpc("list audit events", err)
				}
				return showList(c.out, items, auditColumns())
			}, nil
		}),
	}
	fs := list.Flags()
	fs.StringVar(&parent, "parent", "system", "the container: system, orgs/<org> or orgs/<org>/projects/<project>")
	fs.StringVar(&since, "since", "", "only events at or after this time: RFC 3339, or a duration ago (24h)")
	fs.StringVar(&until, "until", "", "only events before this time: RFC 3339, or a duration ago")
	fs.StringVar(&principal, "principal", "", "only events of this user or service account")
	fs.StringVar(&resource, "resource", "", "only events about this resource or below it")
	lf.add(fs, "kind (KIND_ADMIN_CHANGE, KIND_ACCESS_DENIED, KIND_AUTHENTICATION), method, permission, status_code, token_id, source_ip, request_id",
		"'kind = KIND_ACCESS_DENIED'")
	cmd.AddCommand(list)
	return cmd
}

func auditColumns() []column[*aegisv1.AuditEvent] {
	return []column[*aegisv1.AuditEvent]{
		{"TIME", func(r *aegisv1.AuditEvent) string { return fmtTime(r.GetEventTime()) }},
		{"KIND", func(r *aegisv1.AuditEvent) string { return fmtEnum(r.GetKind().String(), "KIND_") }},
		{"PRINCIPAL", func(r *aegisv1.AuditEvent) string {
			if p := r.GetPrincipal(); p != "" {
				return p
			}
			return r.GetAttemptedPrincipal()
		}},
		{"METHOD", (*aegisv1.AuditEvent).GetMethod},
		{"RESOURCE", (*aegisv1.AuditEvent).GetResource},
		{"PERMISSION", (*aegisv1.AuditEvent).GetPermission},
		{"STATUS", (*aegisv1.AuditEvent).GetStatusCode},
	}
}

type checkOptions struct {
	principal  string
	permission string
	resource   string
	labels     []string
	sourceIP   string
}

// request builds the Authorize request from the flags.
func (c *checkOptions) request() (*aegisv1.AuthorizeRequest, error) {
	switch {
	case c.permission == "":
		return nil, errors.New("--permission is required")
	case c.resource == "":
		return nil, errors.New("--resource is required")
	}
	labels, err := parseLabels(c.labels)
	if err != nil {
		return nil, err
	}
	if c.sourceIP != "" {
		if _, err := netip.ParseAddr(c.sourceIP); err != nil {
			return nil, fmt.Errorf("--source-ip %q: %w", c.sourceIP, err)
		}
	}
	req := &aegisv1.AuthorizeRequest{Permission: c.permission, Resource: c.resource, ResourceLabels: labels, SourceIp: c.sourceIP}
	if c.principal != "" {
		req.Subject = &aegisv1.Subject{Identity: &aegisv1.Subject_Principal{Principal: c.principal}}
	}
	return req, nil
}

// newCheckCommand is `iam check`. Its exit status is the answer, as with
// grep: 0 allowed, 1 denied, 2 when no decision could be had (usage,
// connection or server error), so that scripts never read a failure as
// a denial or the other way round.
func newCheckCommand(o *iamOptions) *cobra.Command {
	co := &checkOptions{}
	run := o.run(func(*cobra.Command, []string) (action, error) {
		req, err := co.request()
		if err != nil {
			return nil, err
		}
		return func(c *iamCall) error {
			resp, err := aegisv1.NewAuthzServiceClient(c.s.conn).Authorize(c.ctx, req)
			if err != nil {
				return c.s.rpc("check", err)
			}
			d := resp.GetDecision()
			if d == nil {
				return errors.New("check: Aegis answered without a decision")
			}
			if err := showOne(c.out, d, decisionColumns()); err != nil {
				return err
			}
			if !d.GetAllowed() {
				return &exitCodeError{code: exitFailure}
			}
			return nil
		}, nil
	})
	cmd := &cobra.Command{
		Use:   "check --permission PERM --resource RESOURCE [--principal PRINCIPAL]",
		Short: "Ask Aegis whether a principal may do something; exit 0 allowed, 1 denied, 2 error",
		Long: `check asks Aegis for an authorization decision and prints it with the
binding and role that decided. Without --principal it checks the caller;
checking someone else needs aegis:authz:check on the resource.

Exit status: 0 allowed, 1 denied, 2 no decision (bad usage or an error).`,
		Args: func(cmd *cobra.Command, args []string) error {
			return withExitCode(exitError, cobra.NoArgs(cmd, args))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return withExitCode(exitError, run(cmd, args))
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withExitCode(exitError, err) })
	fs := cmd.Flags()
	fs.StringVar(&co.principal, "principal", "", "user or service account to check (default: yourself)")
	fs.StringVar(&co.permission, "permission", "", "permission service:resource:verb, e.g. plasmavmc:vms:create")
	fs.StringVar(&co.resource, "resource", "", "resource or scope name, e.g. orgs/acme/projects/web/vms/vm-1")
	fs.StringArrayVar(&co.labels, "label", nil, "resource label key=value that conditions see (repeatable)")
	fs.StringVar(&co.sourceIP, "source-ip", "", "client address that conditions see as request.source_ip")
	return cmd
}

func decisionColumns() []column[*aegisv1.Decision] {
	return []column[*aegisv1.Decision]{
		{"DECISION", func(d *aegisv1.Decision) string {
			if d.GetAllowed() {
				return "ALLOWED"
			}
			return "DENIED"
		}},
		{"REASON", func(d *aegisv1.Decision) string { return fmtEnum(d.GetReason().String(), "REASON_") }},
		{"PRINCIPAL", (*aegisv1.Decision).GetPrincipal},
		{"BINDING", (*aegisv1.Decision).GetBinding},
		{"ROLE", (*aegisv1.Decision).GetRole},
		{"MEMBER", (*aegisv1.Decision).GetMember},
		{"SCOPE", (*aegisv1.Decision).GetScope},
		{"CONDITION ERROR", (*aegisv1.Decision).GetConditionError},
		{"MESSAGE", (*aegisv1.Decision).GetMessage},
	}
}
