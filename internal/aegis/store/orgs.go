package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// SystemOrg is the org of the platform's operators, created at bootstrap;
// it cannot be deleted.
const SystemOrg = "orgs/system"

// cloneOr returns a copy of m, or a new empty message if m is nil, so that
// the store never modifies what the caller passed.
func cloneOr[T proto.Message](m T, empty T) T {
	if !m.ProtoReflect().IsValid() {
		return empty
	}
	return proto.Clone(m).(T)
}

// update rewrites the record name of kind k: mutate gets the current
// record (read-only) and a copy to change, and returns the extra checks
// and operations its change needs. It may run more than once (after a
// concurrent change, when etag is empty).
func update[T proto.Message](ctx context.Context, s *Store, k kind, name, etag string, mutate func(cur, next T) (*writeSpec, error)) (T, error) {
	var zero T
	if _, err := parseKind(name, k); err != nil {
		return zero, err
	}
	var out T
	rev, err := s.retry(ctx, fmt.Sprintf("update %s %q", k, clip(name)), func() (*writeSpec, error) {
		sn, err := s.read(ctx, k, name, etag)
		if err != nil {
			return nil, err
		}
		cur := sn.e.msg.(T)
		next := proto.Clone(cur).(T)
		spec, err := mutate(cur, next)
		if err != nil {
			return nil, err
		}
		if spec == nil {
			spec = &writeSpec{}
		}
		put, err := putRecord(k, name, next)
		if err != nil {
			return nil, err
		}
		spec.guards = append(spec.guards, sn.guards()...)
		spec.ops = append([]clientv3.Op{put}, spec.ops...)
		out = next
		return spec, nil
	})
	if err != nil {
		return zero, err
	}
	setEtag(out, rev)
	return out, nil
}

// CreateOrg creates orgs/{orgID}. Output-only fields of org are ignored;
// an unspecified state becomes STATE_ACTIVE.
func (s *Store) CreateOrg(ctx context.Context, orgID string, org *aegisv1.Org) (*aegisv1.Org, error) {
	if err := checkScopeID("org id", orgID); err != nil {
		return nil, err
	}
	name := "orgs/" + orgID
	o := cloneOr(org, &aegisv1.Org{})
	now := s.nowpb()
	o.Name, o.Uid, o.CreateTime, o.UpdateTime = name, newUID(), now, now
	if o.State == aegisv1.Org_STATE_UNSPECIFIED {
		o.State = aegisv1.Org_STATE_ACTIVE
	}
	if err := validateOrg(o); err != nil {
		return nil, err
	}
	put, err := putRecord(kindOrg, name, o)
	if err != nil {
		return nil, err
	}
	rev, err := s.retry(ctx, "create org", func() (*writeSpec, error) {
		return &writeSpec{
			mustNotExist: []keyCheck{existsCheck(kindOrg, name, fmt.Errorf("%w: org %q", ErrAlreadyExists, name))},
			ops:          []clientv3.Op{put},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	setEtag(o, rev)
	return o, nil
}

// GetOrg returns an org from the index.
func (s *Store) GetOrg(name string) (*aegisv1.Org, error) {
	return get[*aegisv1.Org](s, kindOrg, name)
}

// ListOrgs lists orgs by name.
func (s *Store) ListOrgs(opts ListOptions[*aegisv1.Org]) ([]*aegisv1.Org, string, error) {
	return list(s, kindOrg.prefix()+"orgs/", opts)
}

// UpdateOrg changes an org through fn, which gets a copy of the current
// org to modify (it may run more than once). name, uid, create_time and
// etag are kept; update_time is set.
func (s *Store) UpdateOrg(ctx context.Context, name, etag string, fn func(*aegisv1.Org) error) (*aegisv1.Org, error) {
	return update(ctx, s, kindOrg, name, etag, func(cur, next *aegisv1.Org) (*writeSpec, error) {
		if err := fn(next); err != nil {
			return nil, err
		}
		next.Name, next.Uid, next.CreateTime, next.UpdateTime = cur.Name, cur.Uid, cur.CreateTime, s.nowpb()
		if next.State == aegisv1.Org_STATE_UNSPECIFIED {
			next.State = aegisv1.Org_STATE_ACTIVE
		}
		return nil, validateOrg(next)
	})
}

// DeleteOrg deletes an org. Without force it fails with
// ErrFailedPrecondition while the org has projects, users, groups, service
// accounts, custom roles or bindings; with force it deletes all of them
// first (see the package comment on cascades). orgs/system cannot be
// deleted.
func (s *Store) DeleteOrg(ctx context.Context, name, etag string, force bool) error {
	if _, err := parseKind(name, kindOrg); err != nil {
		return err
	}
	if name == SystemOrg {
		return preconditionf("%s cannot be deleted", SystemOrg)
	}
	return s.delete(ctx, kindOrg, name, etag, force)
}

// CreateProject creates parent/projects/{projectID} in an existing org.
func (s *Store) CreateProject(ctx context.Context, parent, projectID string, project *aegisv1.Project) (*aegisv1.Project, error) {
	if _, err := parseKind(parent, kindOrg); err != nil {
		return nil, err
	}
	if err := checkScopeID("project id", projectID); err != nil {
		return nil, err
	}
	name := parent + "/projects/" + projectID
	p := cloneOr(project, &aegisv1.Project{})
	now := s.nowpb()
	p.Name, p.Uid, p.CreateTime, p.UpdateTime = name, newUID(), now, now
	if err := validateProject(p); err != nil {
		return nil, err
	}
	put, err := putRecord(kindProject, name, p)
	if err != nil {
		return nil, err
	}
	rev, err := s.retry(ctx, "create project", func() (*writeSpec, error) {
		return &writeSpec{
			mustExist:    []keyCheck{existsCheck(kindOrg, parent, fmt.Errorf("%w: org %q", ErrParentNotFound, parent))},
			mustNotExist: []keyCheck{existsCheck(kindProject, name, fmt.Errorf("%w: project %q", ErrAlreadyExists, name))},
			ops:          []clientv3.Op{put},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	setEtag(p, rev)
	return p, nil
}

// GetProject returns a project from the index.
func (s *Store) GetProject(name string) (*aegisv1.Project, error) {
	return get[*aegisv1.Project](s, kindProject, name)
}

// ListProjects lists the projects of an org by name. It does not check
// that the org exists.
func (s *Store) ListProjects(parent string, opts ListOptions[*aegisv1.Project]) ([]*aegisv1.Project, string, error) {
	if _, err := parseKind(parent, kindOrg); err != nil {
		return nil, "", err
	}
	return list(s, kindProject.key(parent+"/projects/"), opts)
}

// UpdateProject changes a project through fn (see UpdateOrg).
func (s *Store) UpdateProject(ctx context.Context, name, etag string, fn func(*aegisv1.Project) error) (*aegisv1.Project, error) {
	return update(ctx, s, kindProject, name, etag, func(cur, next *aegisv1.Project) (*writeSpec, error) {
		if err := fn(next); err != nil {
			return nil, err
		}
		next.Name, next.Uid, next.CreateTime, next.UpdateTime = cur.Name, cur.Uid, cur.CreateTime, s.nowpb()
		return nil, validateProject(next)
	})
}

// DeleteProject deletes a project. Without force it fails with
// ErrFailedPrecondition while the project has service accounts or
// bindings; with force it deletes them (and their keys) first.
func (s *Store) DeleteProject(ctx context.Context, name, etag string, force bool) error {
	if _, err := parseKind(name, kindProject); err != nil {
		return err
	}
	return s.delete(ctx, kindProject, name, etag, force)
}
