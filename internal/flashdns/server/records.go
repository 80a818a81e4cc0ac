package server

import (
	"context"

	flashdnsv1 "github.com/photoncloud/photoncloud/api/flashdns/v1"
	"github.com/photoncloud/photoncloud/internal/flashdns/store"
)

func (r *recordService) ListRecordSets(ctx context.Context, req *flashdnsv1.ListRecordSetsRequest) (*flashdnsv1.ListRecordSetsResponse, error) {
	if err := r.s.check(ctx, PermRecordsList, req.GetZone()); err != nil {
		return nil, err
	}
	sets, next, err := r.s.st.ListRecordSets(ctx, req.GetZone(), store.RecordListOptions{
		NamePrefix: req.GetNamePrefix(), Type: req.GetType(), PageSize: req.GetPageSize(), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, r.s.apiErr(err)
	}
	return &flashdnsv1.ListRecordSetsResponse{RecordSets: sets, NextPageToken: next}, nil
}

func (r *recordService) GetRecordSet(ctx context.Context, req *flashdnsv1.GetRecordSetRequest) (*flashdnsv1.RecordSet, error) {
	if err := r.s.check(ctx, PermRecordsGet, req.GetZone()); err != nil {
		return nil, err
	}
	out, err := r.s.st.GetRecordSet(ctx, req.GetZone(), req.GetName(), req.GetType())
	return out, r.s.apiErr(err)
}

func (r *recordService) ChangeRecordSets(ctx context.Context, req *flashdnsv1.ChangeRecordSetsRequest) (*flashdnsv1.ChangeRecordSetsResponse, error) {
	if err := r.s.check(ctx, PermRecordsChange, req.GetZone()); err != nil {
		return nil, err
	}
	z, err := r.s.st.ChangeRecordSets(ctx, req.GetZone(), req.GetChanges(), req.GetEtag())
	if err != nil {
		return nil, r.s.apiErr(err)
	}
	r.s.changes.Add(float64(len(req.GetChanges())))
	return &flashdnsv1.ChangeRecordSetsResponse{Zone: z, Serial: z.GetSerial()}, nil
}
