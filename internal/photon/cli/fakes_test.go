package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// The fakes below stand in for the Aegis admin services until the server
// package exists: they record the requests the CLI sends and answer with
// canned data, so the tests check what goes over the wire and how answers
// are shown, not what Aegis decides.

// recorder keeps the requests a fake received.
type recorder struct {
	mu   sync.Mutex
	reqs []proto.Message
}

func (r *recorder) record(m proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, proto.Clone(m))
}

func (r *recorder) all() []proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func (r *recorder) last() proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil
	}
	return r.reqs[len(r.reqs)-1]
}

var testTime = timestamppb.New(mustTime("2026-11-27T10:00:00Z"))

type fakeOrgs struct {
	aegisv1.UnimplementedOrgServiceServer
	recorder
}

// fakeOrgCount orgs exist; pages hold 2 unless the request asks for fewer.
const fakeOrgCount = 5

func (f *fakeOrgs) CreateOrg(_ context.Context, r *aegisv1.CreateOrgRequest) (*aegisv1.Org, error) {
	f.record(r)
	o := proto.Clone(r.GetOrg()).(*aegisv1.Org)
	o.Name, o.Uid, o.State, o.CreateTime, o.Etag = "orgs/"+r.GetOrgId(), "uid-1", aegisv1.Org_STATE_ACTIVE, testTime, "e1"
	return o, nil
}

func (f *fakeOrgs) GetOrg(_ context.Context, r *aegisv1.GetOrgRequest) (*aegisv1.Org, error) {
	f.record(r)
	if r.GetName() != "orgs/acme" {
		return nil, status.Errorf(codes.NotFound, "%s not found", r.GetName())
	}
	return &aegisv1.Org{Name: "orgs/acme", DisplayName: "Acme\tCorp\x1b[31m", State: aegisv1.Org_STATE_ACTIVE, Labels: map[string]string{"tier": "gold", "env": "prod"}, CreateTime: testTime}, nil
}

func (f *fakeOrgs) ListOrgs(_ context.Context, r *aegisv1.ListOrgsRequest) (*aegisv1.ListOrgsResponse, error) {
	f.record(r)
	start := 0
	if r.GetPageToken() != "" {
		var err error
		if start, err = strconv.Atoi(r.GetPageToken()); err != nil {
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		}
	}
	size := 2
	if ps := int(r.GetPageSize()); ps > 0 && ps < size {
		size = ps
	}
	resp := &aegisv1.ListOrgsResponse{}
	for i := start; i < fakeOrgCount && i < start+size; i++ {
		resp.Orgs = append(resp.Orgs, &aegisv1.Org{Name: fmt.Sprintf("orgs/org%d", i), State: aegisv1.Org_STATE_ACTIVE})
	}
	if start+size < fakeOrgCount {
		resp.NextPageToken = strconv.Itoa(start + size)
	}
	return resp, nil
}

func (f *fakeOrgs) UpdateOrg(_ context.Context, r *aegisv1.UpdateOrgRequest) (*aegisv1.Org, error) {
	f.record(r)
	return r.GetOrg(), nil
}

func (f *fakeOrgs) DeleteOrg(_ context.Context, r *aegisv1.DeleteOrgRequest) (*emptypb.Empty, error) {
	f.record(r)
	if r.GetEtag() == "stale" {
		return nil, status.Error(codes.Aborted, "etag mismatch")
	}
	return &emptypb.Empty{}, nil
}

func (f *fakeOrgs) CreateProject(_ context.Context, r *aegisv1.CreateProjectRequest) (*aegisv1.Project, error) {
	f.record(r)
	return &aegisv1.Project{Name: r.GetParent() + "/projects/" + r.GetProjectId()}, nil
}

type fakeIdentity struct {
	aegisv1.UnimplementedIdentityServiceServer
	recorder
}

const fakeKeySecret = "fake-client-secret-0123456789"

func (f *fakeIdentity) CreateUser(_ context.Context, r *aegisv1.CreateUserRequest) (*aegisv1.User, error) {
	f.record(r)
	return &aegisv1.User{Name: r.GetParent() + "/users/" + r.GetUserId()}, nil
}

func (f *fakeIdentity) SetUserPassword(_ context.Context, r *aegisv1.SetUserPasswordRequest) (*aegisv1.SetUserPasswordResponse, error) {
	f.record(r)
	return &aegisv1.SetUserPasswordResponse{Etag: "e2"}, nil
}

func (f *fakeIdentity) AddGroupMember(_ context.Context, r *aegisv1.AddGroupMemberRequest) (*aegisv1.GroupMember, error) {
	f.record(r)
	return &aegisv1.GroupMember{Member: r.GetMember(), MemberKind: aegisv1.PrincipalKind_PRINCIPAL_KIND_USER}, nil
}

func (f *fakeIdentity) CreateServiceAccountKey(_ context.Context, r *aegisv1.CreateServiceAccountKeyRequest) (*aegisv1.ServiceAccountKey, error) {
	f.record(r)
	return &aegisv1.ServiceAccountKey{Name: r.GetParent() + "/keys/k1", ClientId: "k1", ClientSecret: fakeKeySecret, CreateTime: testTime}, nil
}

// ListServiceAccountKeys wrongly includes a secret, which the CLI must
// not show.
func (f *fakeIdentity) ListServiceAccountKeys(_ context.Context, r *aegisv1.ListServiceAccountKeysRequest) (*aegisv1.ListServiceAccountKeysResponse, error) {
	f.record(r)
	return &aegisv1.ListServiceAccountKeysResponse{Keys: []*aegisv1.ServiceAccountKey{
		{Name: r.GetParent() + "/keys/k1", ClientId: "k1", ClientSecret: fakeKeySecret},
	}}, nil
}

type fakePolicy struct {
	aegisv1.UnimplementedPolicyServiceServer
	recorder
}

func (f *fakePolicy) CreateBinding(_ context.Context, r *aegisv1.CreateBindingRequest) (*aegisv1.Binding, error) {
	f.record(r)
	b := proto.Clone(r.GetBinding()).(*aegisv1.Binding)
	b.Name = r.GetParent() + "/bindings/b1"
	return b, nil
}

func (f *fakePolicy) UpdateBinding(_ context.Context, r *aegisv1.UpdateBindingRequest) (*aegisv1.Binding, error) {
	f.record(r)
	return r.GetBinding(), nil
}

type fakeAuthz struct {
	aegisv1.UnimplementedAuthzServiceServer
	recorder
}

// Authorize allows aegis:orgs:get, fails on aegis:broken:get and denies
// everything else.
func (f *fakeAuthz) Authorize(_ context.Context, r *aegisv1.AuthorizeRequest) (*aegisv1.AuthorizeResponse, error) {
	f.record(r)
	switch r.GetPermission() {
	case "aegis:orgs:get":
		return &aegisv1.AuthorizeResponse{Decision: &aegisv1.Decision{Allowed: true, Reason: aegisv1.Decision_REASON_ALLOWED,
			Principal: r.GetSubject().GetPrincipal(), Binding: "orgs/acme/bindings/viewers", Role: "roles/OrgViewer",
			Member: "orgs/acme/groups/staff", Scope: "orgs/acme"}}, nil
	case "aegis:broken:get":
		return nil, status.Error(codes.Internal, "internal error")
	}
	return &aegisv1.AuthorizeResponse{Decision: &aegisv1.Decision{Reason: aegisv1.Decision_REASON_NO_ALLOW_BINDING,
		Principal: r.GetSubject().GetPrincipal(), Message: "no binding grants " + r.GetPermission()}}, nil
}

type fakeAudit struct {
	aegisv1.UnimplementedAuditServiceServer
	recorder
}

func (f *fakeAudit) ListAuditEvents(_ context.Context, r *aegisv1.ListAuditEventsRequest) (*aegisv1.ListAuditEventsResponse, error) {
	f.record(r)
	return &aegisv1.ListAuditEventsResponse{AuditEvents: []*aegisv1.AuditEvent{{
		Name: "system/auditEvents/1", EventTime: testTime, Kind: aegisv1.AuditEvent_KIND_ADMIN_CHANGE,
		Principal: aliceName, Method: "/aegis.v1.OrgService/CreateOrg", Resource: "orgs/acme", StatusCode: "OK",
	}}}, nil
}
