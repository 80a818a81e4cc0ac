// Package kvserver is Chainfire's replicated state machine: it turns client
// requests into raft proposals, drives the raft node, applies committed
// entries to the MVCC store, the lease table and the alarm list, and serves
// linearizable reads through ReadIndex.
//
// Request flow (one goroutine owns each stage):
//
//	client goroutine  -> propose: register a waiter, hand bytes to the raft loop
//	raft loop         -> RawNode: persist entries + hard state (one fsync per Ready),
//	                     send messages, pass committed entries to the apply loop
//	apply loop        -> MVCC / leases / alarms in one Pebble batch per entry, with
//	                     the applied index; publish watch events; wake the waiter
//	read loop         -> one ReadIndex for every batch of waiting linearizable reads
package kvserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/photoncloud/photoncloud/internal/chainfire/auth"
	"github.com/photoncloud/photoncloud/internal/chainfire/lease"
	"github.com/photoncloud/photoncloud/internal/chainfire/mvcc"
	"github.com/photoncloud/photoncloud/internal/chainfire/raftstore"
	"github.com/photoncloud/photoncloud/internal/chainfire/watch"
)

// Version is the etcd API version Chainfire implements and reports in Status.
const Version = "3.7.3"

// ClusterVersion and StorageVersion are the etcd cluster and storage schema
// versions Chainfire reports, for tools that check them.
const (
	ClusterVersion = "3.7.0"
	StorageVersion = "3.7.0"
)

// Options configure a Server. Fields without a default must be set.
type Options struct {
	Name    string
	DataDir string
	// PeerURLs and ClientURLs are this member's advertised URLs.
	PeerURLs   []string
	ClientURLs []string
	// InitialCluster maps member names to peer URLs.
	InitialCluster map[string][]string
	ClusterToken   string
	// Existing, for a member joining a running cluster
	// (--initial-cluster-state existing), is the membership fetched from a
	// peer; the member must have been added with MemberAdd.
	Existing *Membership

	QuotaBackendBytes int64
	MaxRequestBytes   int
	SnapshotCount     uint64
	// AutoPromote makes the leader promote learners once they caught up.
	AutoPromote bool
	// LeaseCheckpointInterval is how often the leader replicates remaining
	// lease TTLs. Default 5 minutes, as etcd.
	LeaseCheckpointInterval time.Duration
	// CorruptCheckInterval is how often the leader compares HashKV across
	// members. Default 1 minute; negative disables.
	CorruptCheckInterval time.Duration
	HeartbeatInterval    time.Duration
	ElectionTimeout      time.Duration

	// Periodic auto-compaction keeps RetentionPeriod of history; revision mode
	// keeps RetentionRevisions revisions. Zero disables.
	RetentionPeriod    time.Duration
	RetentionRevisions int64

	// WatchProgressInterval is the period of progress notifications. Default 10m.
	WatchProgressInterval time.Duration

	// Auth configures authentication (--auth-token, --auth-token-ttl,
	// --bcrypt-cost, --client-cert-auth); AppliedIndex and Logger are set here.
	Auth auth.Options

	Logger  *slog.Logger
	Metrics *Metrics
}

// Peers is how a member reaches the others: the peer transport.
type Peers interface {
	Send(msgs []*raftpb.Message)
	SendSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error
	LeaseRenew(ctx context.Context, to uint64, lease int64) (int64, error)
	LearnerReady(ctx context.Context, to uint64, learner uint64) (bool, error)
	HashKV(ctx context.Context, to uint64, rev int64) (*pb.HashKVResponse, error)
	AddPeer(id uint64, peerURLs []string) error
	RemovePeer(id uint64)
}

// Member describes one member of the cluster.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// Server is one Chainfire member's state machine.
type Server struct {
	opts Options
	lg   *slog.Logger
	m    *Metrics

	db        *pebble.DB
	raftLog   *raftstore.Store
	rn        *raft.RawNode
	kv        *mvcc.Store
	lessor    *lease.Lessor
	auth      *auth.Store
	hub       *watch.Hub
	ids       *idGenerator
	memberID  uint64
	clusterID uint64
	// members changes when members publish their client URLs.
	membersMu sync.RWMutex
	members   []Member
	removed   []uint64
	stopCause atomic.Pointer[error]

	wait        *waitTable
	appliedWait indexWait

	propc       chan []byte
	readIndexc  chan []byte
	readStatec  chan raft.ReadState
	applyc      chan applyItem
	readwaitc   chan struct{}
	recvc       chan *raftpb.Message
	unreachc    chan uint64
	transferc   chan uint64
	snapReportc chan snapReport
	progressc   chan chan map[uint64]uint64
	confc       chan *raftpb.ConfChange

	peersMu sync.RWMutex
	peers   Peers

	readMu       sync.Mutex
	readNotifier *notifier

	// Raft facts published by the raft loop for other goroutines.
	leader    atomic.Uint64
	term      atomic.Uint64
	committed atomic.Uint64
	// termCommitted is the last term in which this member saw an entry of
	// that term committed.
	termCommitted atomic.Uint64
	applied       atomic.Uint64
	confState     atomic.Pointer[raftpb.ConfState]
	// view is the raft loop's membership, which membership changes are
	// decided against (confview.go); confs the configurations since the
	// last log compaction.
	view  *confView
	confs confHistory
	// legacyReplayUntil: changes up to this index are replayed undecided,
	// because the log's snapshot record predates views.
	legacyReplayUntil uint64
	snapIndex         uint64 // owned by the apply loop

	alarmsMu sync.RWMutex
	alarms   map[alarmKey]struct{}

	raisingNoSpace atomic.Bool
	// attrsApplied is set once this member's attributes went through raft.
	attrsApplied atomic.Bool

	dbSize      atomic.Int64
	dbSizeInUse atomic.Int64

	stopping chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
}

type alarmKey struct {
	member uint64
	alarm  pb.AlarmType
}

// Start opens (or creates) the member's data and starts its goroutines. It
// returns once the member has a leader and has applied its log.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.CorruptCheckInterval == 0 {
		opts.CorruptCheckInterval = time.Minute
	}
	if opts.LeaseCheckpointInterval == 0 {
		opts.LeaseCheckpointInterval = 5 * time.Minute
	}
	if opts.WatchProgressInterval == 0 {
		opts.WatchProgressInterval = 10 * time.Minute
	}
	s := &Server{
		opts: opts, lg: opts.Logger, m: opts.Metrics,
		wait:         newWaitTable(),
		propc:        make(chan []byte, 4096),
		readIndexc:   make(chan []byte, 1),
		readStatec:   make(chan raft.ReadState, 1),
		applyc:       make(chan applyItem, 64),
		readwaitc:    make(chan struct{}, 1),
		recvc:        make(chan *raftpb.Message, 4096),
		unreachc:     make(chan uint64, 64),
		transferc:    make(chan uint64, 1),
		snapReportc:  make(chan snapReport, 16),
		progressc:    make(chan chan map[uint64]uint64),
		confc:        make(chan *raftpb.ConfChange),
		readNotifier: newNotifier(),
		alarms:       map[alarmKey]struct{}{},
		stopping:     make(chan struct{}),
	}
	if err := s.open(); err != nil {
		s.closeStorage()
		return nil, err
	}
	s.start()
	if len(s.members) > 1 {
		// The others may not be up yet: serve (and fail requests with "no
		// leader") until an election succeeds.
		return s, nil
	}
	select {
	case <-s.ready():
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("wait for leader: %w", ctx.Err())
	}
}

func (s *Server) open() error {
	dir := dbDir(s.opts.DataDir)
	if err := removeSnapshotFiles(s.opts.DataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	db, err := openDB(dir, s.lg)
	if err != nil {
		return err
	}
	s.db = db
	if s.raftLog, err = raftstore.Open(db); err != nil {
		return fmt.Errorf("open raft log: %w", err)
	}
	if err := s.loadMembers(); err != nil {
		return err
	}
	s.ids = newIDGenerator(s.memberID, time.Now())
	if s.kv, err = mvcc.New(db, s.lg); err != nil {
		return fmt.Errorf("open mvcc store: %w", err)
	}
	if err := s.loadAppliedState(); err != nil {
		return err
	}
	s.hub = watch.NewHub(historyAdapter{s.kv}, s.kv.Rev(), s.lg, watch.Options{ProgressInterval: s.opts.WatchProgressInterval})

	electionTicks := int(s.opts.ElectionTimeout / s.opts.HeartbeatInterval)
	cfg := &raft.Config{
		ID:                        s.memberID,
		ElectionTick:              electionTicks,
		HeartbeatTick:             1,
		Storage:                   s.raftLog.Storage(),
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           512,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{s.lg.With("component", "raft")},
	}
	rn, err := raft.NewRawNode(cfg)
	if err != nil {
		return fmt.Errorf("create raft node: %w", err)
	}
	s.rn = rn
	if err := s.initConfView(); err != nil {
		return err
	}
	if s.raftLog.Fresh() && s.opts.Existing == nil {
		var peers []raft.Peer
		for _, m := range s.members {
			ctx, _ := json.Marshal(m)
			peers = append(peers, raft.Peer{ID: m.ID, Context: ctx})
		}
		if err := rn.Bootstrap(peers); err != nil {
			return fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	s.m.setSizes(s.db)
	return nil
}

func openDB(dir string, lg *slog.Logger) (*pebble.DB, error) {
	opts := &pebble.Options{
		Cache:        pebble.NewCache(64 << 20),
		MemTableSize: 64 << 20,
		FS:           walFS{vfs.Default},
		Logger:       pebbleLogger{lg.With("component", "pebble")},
	}
	defer opts.Cache.Unref()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open pebble at %s: %w", dir, err)
	}
	return db, nil
}

// loadMembers reads the membership recorded at the first start, or records it.
func (s *Server) loadMembers() error {
	v, closer, err := s.db.Get(membersKey)
	if err == nil {
		defer closer.Close()
		var rec Membership
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode membership: %w", err)
		}
		s.members, s.clusterID, s.removed = rec.Members, rec.ClusterID, rec.Removed
		for _, m := range s.members {
			if m.Name == s.opts.Name {
				s.memberID = m.ID
			}
		}
		if s.memberID == 0 {
			return fmt.Errorf("member %q is not in the membership stored in %s", s.opts.Name, s.opts.DataDir)
		}
		// Client URLs are not part of the identity: take the current ones.
		for i := range s.members {
			if s.members[i].ID == s.memberID {
				s.members[i].ClientURLs = s.opts.ClientURLs
			}
		}
		return nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("load membership: %w", err)
	}
	if !s.raftLog.Fresh() {
		return errors.New("data dir has a raft log but no membership record")
	}
	if s.opts.Existing != nil {
		return s.joinMembership(s.opts.Existing)
	}
	var ids []uint64
	for name, urls := range s.opts.InitialCluster {
		m := Member{ID: computeMemberID(urls, s.opts.ClusterToken), Name: name, PeerURLs: urls}
		if name == s.opts.Name {
			m.ClientURLs = s.opts.ClientURLs
			s.memberID = m.ID
		}
		s.members = append(s.members, m)
		ids = append(ids, m.ID)
	}
	if s.memberID == 0 {
		return fmt.Errorf("initial cluster has no member named %q", s.opts.Name)
	}
	slices.SortFunc(s.members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	s.clusterID = computeClusterID(ids)
	data, err := json.Marshal(s.membershipRecord())
	if err != nil {
		return err
	}
	return s.db.Set(membersKey, data, pebble.Sync)
}

// Membership is the cluster's identity and members, as recorded by every
// member and handed to a joining one.
type Membership struct {
	ClusterID uint64   `json:"clusterID"`
	Members   []Member `json:"members"`
	// Removed are the ids of members removed for good: raft never takes
	// them back, and their messages are answered with "removed".
	Removed []uint64 `json:"removed,omitempty"`
}

func (s *Server) start() {
	s.wg.Add(7)
	go s.corruptCheckLoop()
	go s.publishLoop()
	go s.raftLoop()
	go s.applyLoop()
	go s.readLoop()
	go s.leaseLoop()
	go s.housekeepingLoop()
}

// ready closes once the member has a leader and has applied everything that
// was committed when it started.
func (s *Server) ready() <-chan struct{} {
	ch := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if s.leader.Load() != 0 && s.applied.Load() >= s.committed.Load() && s.committed.Load() > 0 {
				close(ch)
				return
			}
			select {
			case <-t.C:
			case <-s.stopping:
				return
			}
		}
	}()
	return ch
}

// Close stops every goroutine and closes the store. Requests in flight fail
// with ErrStopped.
// Done is closed when the member stops, on Close or by itself: removed from
// the cluster (StopCause nil) or failing (StopCause says why).
func (s *Server) Done() <-chan struct{} { return s.stopping }

// StopCause is why the member stopped by itself; nil if it was removed from
// the cluster or closed.
func (s *Server) StopCause() error {
	if p := s.stopCause.Load(); p != nil {
		return *p
	}
	return nil
}

// stop stops the member from inside; cause is nil for a removal.
func (s *Server) stop(cause error) {
	if cause != nil {
		s.stopCause.CompareAndSwap(nil, &cause)
	}
	go s.Close()
}

// RemovedByPeer stops a member that a peer says was removed, as it would
// on applying its own removal, which it may never get to see.
func (s *Server) RemovedByPeer() {
	s.lg.Warn("this member was removed from the cluster; stopping")
	s.stop(nil)
}

func (s *Server) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stopping)
	s.closeMu.Unlock()
	s.wg.Wait()
	return s.closeStorage()
}

func (s *Server) closeStorage() error {
	var errs []error
	if s.hub != nil {
		s.hub.Close()
	}
	if s.kv != nil {
		errs = append(errs, s.kv.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Flush(), s.db.Close())
	}
	return errors.Join(errs...)
}

// Hub is the watch hub clients' watch streams register with.
func (s *Server) Hub() *watch.Hub { return s.hub }

// ID is this member's id.
func (s *Server) ID() uint64 { return s.memberID }

// ClusterID is the cluster's id.
func (s *Server) ClusterID() uint64 { return s.clusterID }

// Leader is the current leader's id, 0 if none.
func (s *Server) Leader() uint64 { return s.leader.Load() }

// Term is the current raft term.
func (s *Server) Term() uint64 { return s.term.Load() }

// Members lists the cluster's members.
func (s *Server) Members() []Member {
	s.membersMu.RLock()
	defer s.membersMu.RUnlock()
	out := make([]Member, len(s.members))
	for i, m := range s.members {
		m.PeerURLs = append([]string(nil), m.PeerURLs...)
		m.ClientURLs = append([]string(nil), m.ClientURLs...)
		out[i] = m
	}
	return out
}

// Header returns a response header for the given revision.
func (s *Server) Header(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.clusterID, MemberId: s.memberID, Revision: rev, RaftTerm: s.term.Load()}
}

// Rev is the latest applied revision.
func (s *Server) Rev() int64 { return s.kv.Rev() }

// pebbleLogger routes Pebble's messages to slog; its chatter is debug level.
type pebbleLogger struct{ lg *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.lg.Debug(fmt.Sprintf(format, args...)) }
func (l pebbleLogger) Errorf(format string, args ...any) { l.lg.Error(fmt.Sprintf(format, args...)) }
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.lg.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

// SetPeers connects the member to the others. Call once, right after Start.
func (s *Server) SetPeers(p Peers) {
	s.peersMu.Lock()
	s.peers = p
	s.peersMu.Unlock()
}

func (s *Server) peerTransport() Peers {
	s.peersMu.RLock()
	defer s.peersMu.RUnlock()
	return s.peers
}

// Step hands a message from a peer to raft.
func (s *Server) Step(ctx context.Context, m *raftpb.Message) error {
	if s.isRemoved(m.GetFrom()) {
		return ErrMemberRemoved
	}
	select {
	case s.recvc <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopping:
		return ErrStopped
	}
}

// ReportUnreachable tells raft a message to a peer was lost.
func (s *Server) ReportUnreachable(id uint64) {
	select {
	case s.unreachc <- id:
	default:
	}
}
