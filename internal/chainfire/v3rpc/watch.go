package v3rpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/chainfire/kvserver"
)

type watchService struct {
	pb.UnimplementedWatchServer
	s        *kvserver.Server
	h        headerFiller
	maxBytes int
	lg       *slog.Logger
	drain    <-chan struct{}
	// leaderLoss: see Options.LeaderLoss.
	leaderLoss time.Duration
}

// Watch serves one client watch stream: a receive goroutine registers and
// cancels watchers, this goroutine sends what the hub queues. A client that
// closes its send side keeps its watchers, as in etcd.
func (w *watchService) Watch(stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse]) error {
	ctx := stream.Context()
	st := w.s.Hub().NewStream()
	defer st.Close()
	recvErr := make(chan error, 1)
	// refused carries the answers to creates refused for lack of permission.
	refused := make(chan *pb.WatchResponse)
	go func() {
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				recvErr <- err
				return
			}
			switch r := req.RequestUnion.(type) {
			case *pb.WatchRequest_CreateRequest:
				if r.CreateRequest == nil {
					continue
				}
				if resp := w.refuse(ctx, r.CreateRequest); resp != nil {
					select {
					case refused <- resp:
					case <-ctx.Done():
						return
					}
					continue
				}
				err = st.Watch(ctx, r.CreateRequest)
			case *pb.WatchRequest_CancelRequest:
				if r.CancelRequest == nil {
					continue
				}
				err = st.Cancel(ctx, r.CancelRequest.WatchId)
			case *pb.WatchRequest_ProgressRequest:
				err = st.RequestProgress(ctx)
			}
			if err != nil {
				recvErr <- err
				return
			}
		}
	}()
	// A stream that requires a leader ends once the member has been without
	// one for leaderLoss, so the client moves to a member that has one.
	var leaderCheck <-chan time.Time
	if requiresLeader(ctx) && w.leaderLoss > 0 {
		t := time.NewTicker(w.leaderLoss / 3)
		defer t.Stop()
		leaderCheck = t.C
	}
	var noLeaderSince time.Time
	for {
		select {
		case <-leaderCheck:
			switch {
			case w.s.Leader() != 0:
				noLeaderSince = time.Time{}
			case noLeaderSince.IsZero():
				noLeaderSince = time.Now()
			case time.Since(noLeaderSince) >= w.leaderLoss:
				return rpctypes.ErrGRPCNoLeader
			}
		case resp := <-st.Out():
			w.h.fill(&resp.Header)
			if err := w.send(stream, resp.WatchResponse, resp.Fragment); err != nil {
				return err
			}
		case resp := <-refused:
			// Whatever earlier creates queued goes first, so that answers
			// to creates keep their order.
			for n := len(st.Out()); n > 0; n-- {
				r := <-st.Out()
				w.h.fill(&r.Header)
				if err := w.send(stream, r.WatchResponse, r.Fragment); err != nil {
					return err
				}
			}
			w.h.fill(&resp.Header)
			if err := stream.Send(resp); err != nil {
				return err
			}
		case err := <-recvErr:
			return togRPCError(err)
		case <-ctx.Done():
			return togRPCError(ctx.Err())
		case <-w.drain:
			return rpctypes.ErrGRPCStopped
		}
	}
}

// refuse checks that the caller may read what a create request watches; if
// not, it returns etcd's answer: created and canceled at once, with the
// error as the cancel reason. A negative start revision is left to the hub,
// which answers it first, as etcd does.
func (w *watchService) refuse(ctx context.Context, r *pb.WatchCreateRequest) *pb.WatchResponse {
	if r.StartRevision < 0 {
		return nil
	}
	a := w.s.Auth()
	ai, err := w.s.AuthInfo(ctx)
	if err == nil {
		err = a.IsRangePermitted(ai, r.Key, r.RangeEnd)
	}
	if err == nil {
		return nil
	}
	reason := rpctypes.ErrGRPCPermissionDenied.Error()
	switch {
	case errors.Is(err, auth.ErrInvalidAuthToken):
		reason = rpctypes.ErrGRPCInvalidAuthToken.Error()
	case errors.Is(err, auth.ErrAuthOldRevision):
		reason = rpctypes.ErrGRPCAuthOldRevision.Error()
	case errors.Is(err, auth.ErrUserEmpty):
		reason = rpctypes.ErrGRPCUserEmpty.Error()
	}
	return &pb.WatchResponse{
		Header: &pb.ResponseHeader{Revision: w.s.Rev()}, WatchId: -1, Created: true, Canceled: true, CancelReason: reason,
	}
}

// send splits a response whose watcher asked for fragments and which is
// larger than a request may be, as etcd does.
func (w *watchService) send(stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse], resp *pb.WatchResponse, fragment bool) error {
	if !fragment || len(resp.Events) < 2 || proto.Size(resp) < w.maxBytes {
		return stream.Send(resp)
	}
	events := resp.Events
	for len(events) > 0 {
		cur := &pb.WatchResponse{Header: resp.Header, WatchId: resp.WatchId, Fragment: true}
		n := 0
		for _, ev := range events {
			cur.Events = append(cur.Events, ev)
			if len(cur.Events) > 1 && proto.Size(cur) >= w.maxBytes {
				cur.Events = cur.Events[:len(cur.Events)-1]
				break
			}
			n++
		}
		events = events[n:]
		if len(events) == 0 {
			cur.Fragment = false
		}
		if err := stream.Send(cur); err != nil {
			return err
		}
	}
	return nil
}
