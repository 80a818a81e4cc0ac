package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
	"github.com/photoncloud/photoncloud/internal/aegis/store"
)

type auditService struct {
	aegisv1.UnimplementedAuditServiceServer
	s *Server
}

func optTime(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
	}
	return ts.AsTime(), nil
}

func (a *auditService) ListAuditEvents(ctx context.Context, req *aegisv1.ListAuditEventsRequest) (*aegisv1.ListAuditEventsResponse, error) {
	parent := req.GetParent()
	if err := checkName("parent", parent, containerShapes...); err != nil {
		return nil, err
	}
	start, err := optTime("start_time", req.GetStartTime())
	if err != nil {
		return nil, err
	}
	end, err := optTime("end_time", req.GetEndTime())
	if err != nil {
		return nil, err
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return nil, status.Error(codes.InvalidArgument, "end_time is before start_time")
	}
	if p := req.GetPrincipal(); p != "" {
		if err := checkName("principal", p, principalShapes...); err != nil {
			return nil, err
		}
	}
	if len(req.GetResource()) > maxNameLen {
		return nil, status.Errorf(codes.InvalidArgument, "resource is longer than %d bytes", maxNameLen)
	}
	match, err := compileFilter[*aegisv1.AuditEvent](req.GetFilter(), auditFilter)
	if err != nil {
		return nil, err
	}
	s := a.s
	if _, err := s.authorize(ctx, permAuditList, parent); err != nil {
		return nil, err
	}
	evs, next, err := s.st.ListAuditEvents(ctx, store.AuditQuery{
		Parent: parent, StartTime: start, EndTime: end, Principal: req.GetPrincipal(), Resource: req.GetResource(),
	}, store.ListOptions[*aegisv1.AuditEvent]{
		PageSize: req.GetPageSize(), PageToken: req.GetPageToken(), Filter: req.GetFilter(), Match: match,
	})
	if err != nil {
		return nil, s.apiErr(err)
	}
	return &aegisv1.ListAuditEventsResponse{AuditEvents: evs, NextPageToken: next}, nil
}
