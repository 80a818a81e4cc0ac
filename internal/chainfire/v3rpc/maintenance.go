package v3rpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
)

// snapshotChunk is the size of one Snapshot stream message.
const snapshotChunk = 32 << 10

type maintenanceService struct {
	pb.UnimplementedMaintenanceServer
	s            *kvserver.Server
	h            headerFiller
	lg           *slog.Logger
	statusErrors func() []string
}

func (m *maintenanceService) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	// Listing alarms is for any user; raising or clearing them for admins.
	check := requireAdmin
	if r.Action == pb.AlarmRequest_GET {
		check = requireUser
	}
	if err := check(ctx, m.s); err != nil {
		return nil, err
	}
	resp, err := m.s.Alarm(ctx, r)
	if err != nil {
		return nil, togRPCError(err)
	}
	m.h.fill(&resp.Header)
	return resp, nil
}

func (m *maintenanceService) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	if err := requireUser(ctx, m.s); err != nil {
		return nil, err
	}
	resp, err := m.s.Status(ctx)
	if err != nil {
		return nil, togRPCError(err)
	}
	if m.statusErrors != nil {
		resp.Errors = append(resp.Errors, m.statusErrors()...)
	}
	m.h.fill(&resp.Header)
	return resp, nil
}

func (m *maintenanceService) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := requireAdmin(ctx, m.s); err != nil {
		return nil, err
	}
	if err := m.s.Defragment(ctx); err != nil {
		return nil, togRPCError(err)
	}
	resp := &pb.DefragmentResponse{}
	m.h.fill(&resp.Header)
	return resp, nil
}

func (m *maintenanceService) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	if err := requireAdmin(ctx, m.s); err != nil {
		return nil, err
	}
	resp, err := m.s.Hash(ctx)
	if err != nil {
		return nil, togRPCError(err)
	}
	m.h.fill(&resp.Header)
	return resp, nil
}

func (m *maintenanceService) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	if err := requireAdmin(ctx, m.s); err != nil {
		return nil, err
	}
	resp, err := m.s.HashKV(ctx, r.Revision)
	if err != nil {
		return nil, togRPCError(err)
	}
	m.h.fill(&resp.Header)
	return resp, nil
}

// Snapshot writes the snapshot to a temporary file first, so that the stream
// can report the remaining bytes and the copy is consistent however slowly
// the client reads.
func (m *maintenanceService) Snapshot(r *pb.SnapshotRequest, stream grpc.ServerStreamingServer[pb.SnapshotResponse]) error {
	if err := requireAdmin(stream.Context(), m.s); err != nil {
		return err
	}
	f, err := os.CreateTemp("", "chainfire-snapshot-*")
	if err != nil {
		return status.Errorf(codes.Internal, "create snapshot file: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := m.s.Snapshot(stream.Context(), f)
	if err != nil {
		return togRPCError(fmt.Errorf("write snapshot: %w", err))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return togRPCError(err)
	}
	m.lg.Info("sending snapshot", "bytes", size)
	buf := make([]byte, snapshotChunk)
	remaining := size
	first := true
	for remaining > 0 {
		n, err := io.ReadFull(f, buf[:min(int64(len(buf)), remaining)])
		if err != nil {
			return togRPCError(fmt.Errorf("read snapshot: %w", err))
		}
		remaining -= int64(n)
		resp := &pb.SnapshotResponse{RemainingBytes: uint64(remaining), Blob: buf[:n]}
		if first {
			resp.Version = kvserver.Version
			first = false
		}
		m.h.fill(&resp.Header)
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

func (m *maintenanceService) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := requireAdmin(ctx, m.s); err != nil {
		return nil, err
	}
	if err := m.s.MoveLeader(ctx, r.TargetID); err != nil {
		return nil, togRPCError(err)
	}
	resp := &pb.MoveLeaderResponse{}
	m.h.fill(&resp.Header)
	return resp, nil
}

func (m *maintenanceService) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	if err := requireAdmin(ctx, m.s); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, "chainfire: cluster downgrade is not supported")
}
