package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
	"github.com/photoncloud/photoncloud/internal/platform/watchfeed"
)

// Options configures a Store. Client is required; the zero value of every
// other field is a usable default.
type Options struct {
	// Client is the Chainfire (etcd v3 API) client. The Store does not
	// close it.
	Client *clientv3.Client
	// Logger receives the store's logs. Default: discard.
	Logger *slog.Logger
	// Registry, if set, receives the store's metrics (flashdns_store_*).
	Registry prometheus.Registerer
	// Now is the clock (serials, times). Default time.Now.
	Now func() time.Time

	// DefaultNameservers are the apex NS names of a zone created without
	// any. Default none: such a create is INVALID_ARGUMENT.
	DefaultNameservers []string

	// MaxTxnOps is Chainfire's --max-txn-ops: a change that needs more
	// operations (or comparisons) in one transaction is written as a new
	// generation in several (see the package comment). Default 128.
	MaxTxnOps int
	// MaxTxnBytes bounds the size of one transaction the store sends; keep
	// it below Chainfire's --max-request-bytes (1.5 MiB by default) with
	// room for the request's framing. Default 1 MiB.
	MaxTxnBytes int
	// RequestTimeout bounds each request to Chainfire: a write whose
	// request gets no answer in time fails with ErrUnavailable instead of
	// waiting as long as the caller does (for ever, without a deadline).
	// Default 10s.
	RequestTimeout time.Duration
	// JournalLength is how many IXFR journal entries a zone keeps.
	// Default 100.
	JournalLength int
	// MaxJournalBytes bounds one journal entry; a change whose difference
	// is larger is stored without one, and secondaries then fall back to
	// a full transfer. Default 256 KiB.
	MaxJournalBytes int
	// MaxZonesPerProject is the zone quota of a project. Default 1000.
	MaxZonesPerProject int
	// MaxRecordSetsPerZone bounds a zone's record sets, the SOA and the
	// apex NS set included. Default 100000.
	MaxRecordSetsPerZone int
	// ImportLeaseTTL is the lease of a large write's marker key: when the
	// writer dies, its half-written generation is swept this long after
	// its last keep-alive. Default 60s.
	ImportLeaseTTL time.Duration
	// SweepInterval is how often the store deletes abandoned generations.
	// Default 1 minute; negative disables the sweep.
	SweepInterval time.Duration
	// ReleaseMemoryAfter: once the index has applied this many record-set
	// changes (loaded, written or deleted) since the last time, the store
	// returns the process's free heap memory to the OS
	// (runtime/debug.FreeOSMemory) after the snapshots they changed are
	// built. Loading or importing a zone makes garbage several times the
	// zone's size, and the Go runtime keeps pages for a heap of twice the
	// live data (GOGC=100) even when, as here, answering queries
	// allocates nothing that would use them: without the release a
	// replica holds about twice the memory its zones need. It costs one
	// full garbage collection, so it is for large changes only. Default
	// 20000; negative disables it.
	ReleaseMemoryAfter int

	// testBeforeWatch, if set, runs before every (re)watch; tests use it
	// to hold the watch back while they compact.
	testBeforeWatch func()
	// testBeforeFlip, if set, runs before the last transaction of a
	// staged write; tests use it to race other writers against it.
	testBeforeFlip func()
	// testBeforeChunk, if set, runs before each staging transaction.
	testBeforeChunk func()
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxTxnOps == 0 {
		o.MaxTxnOps = 128
	}
	if o.MaxTxnBytes == 0 {
		o.MaxTxnBytes = 1 << 20
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.JournalLength == 0 {
		o.JournalLength = 100
	}
	if o.MaxJournalBytes == 0 {
		o.MaxJournalBytes = 256 << 10
	}
	if o.MaxZonesPerProject == 0 {
		o.MaxZonesPerProject = 1000
	}
	if o.MaxRecordSetsPerZone == 0 {
		o.MaxRecordSetsPerZone = 100000
	}
	if o.ImportLeaseTTL == 0 {
		o.ImportLeaseTTL = 60 * time.Second
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Minute
	}
	if o.ReleaseMemoryAfter == 0 {
		o.ReleaseMemoryAfter = 20000
	}
}

// Validate reports whether the options are usable (after EnsureDefaults).
func (o *Options) Validate() error {
	switch {
	case o.Client == nil:
		return errors.New("store options: Client is required")
	case o.MaxTxnOps < 16:
		return fmt.Errorf("store options: MaxTxnOps %d too small (at least 16)", o.MaxTxnOps)
	case o.MaxTxnBytes < 64<<10:
		return fmt.Errorf("store options: MaxTxnBytes %d too small (at least 64 KiB)", o.MaxTxnBytes)
	case o.JournalLength < 1:
		return fmt.Errorf("store options: JournalLength must be positive")
	case o.MaxJournalBytes < 1 || o.MaxJournalBytes > o.MaxTxnBytes/2:
		return fmt.Errorf("store options: MaxJournalBytes must be positive and at most half of MaxTxnBytes")
	case o.MaxZonesPerProject < 1 || o.MaxRecordSetsPerZone < 2:
		return fmt.Errorf("store options: quotas must be positive")
	case o.ImportLeaseTTL < 5*time.Second:
		return fmt.Errorf("store options: ImportLeaseTTL %v too short (at least 5s)", o.ImportLeaseTTL)
	}
	if len(o.DefaultNameservers) > maxNameservers {
		return fmt.Errorf("store options: more than %d default name servers", maxNameservers)
	}
	for _, ns := range o.DefaultNameservers {
		if _, err := hostName("default name server", ns); err != nil {
			return fmt.Errorf("store options: %w", err)
		}
	}
	return nil
}

// Store is FlashDNS's state in Chainfire plus the replica's in-memory copy
// of it: every zone with its record sets, and a query-ready snapshot of
// each. See the package comment. All methods are safe for concurrent use.
type Store struct {
	opts Options
	cli  *clientv3.Client
	lg   *slog.Logger
	m    *metrics

	ix    *index
	table atomic.Pointer[zone.Table]

	hookMu sync.Mutex
	onSwap func(old, new *zone.Snapshot)

	// locks serialize this replica's writers per zone, so that they do
	// not make each other retry; replicas race through the transactions'
	// comparisons. An entry lives while someone holds or waits for it.
	lockMu sync.Mutex
	locks  map[string]*zoneLock

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed chan struct{}
	wg     sync.WaitGroup

	watcher clientv3.Watcher
	feed    *watchfeed.Feed
}

// Open loads every zone from Chainfire (one read of /flashdns/ at a
// revision R), builds the snapshots and the table, and starts the watch
// from R+1. It returns once the table is complete as of R.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		opts:   opts,
		cli:    opts.Client,
		lg:     opts.Logger,
		ix:     newIndex(),
		ctx:    sctx,
		cancel: cancel,
		closed: make(chan struct{}),
	}
	s.locks = map[string]*zoneLock{}
	s.table.Store(zone.NewTable())
	// The feed keeps the applied revision, which the first load sets and
	// the metrics read.
	s.watcher = clientv3.NewWatcher(s.cli)
	s.feed = watchfeed.New(watchfeed.Options{Watcher: s.watcher, Prefix: rootPrefix, Index: feedIndex{s},
		Logger: s.lg, BeforeWatch: opts.testBeforeWatch, Closed: s.closed, ErrClosed: ErrClosed})
	m, err := newMetrics(opts.Registry, s)
	if err != nil {
		cancel()
		_ = s.watcher.Close()
		return nil, err
	}
	s.m = m
	if err := s.reload(ctx); err != nil {
		cancel()
		s.m.unregister()
		_ = s.watcher.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.feed.Run(s.ctx)
	}()
	if opts.SweepInterval > 0 {
		s.wg.Add(1)
		go s.sweepLoop()
	}
	return s, nil
}

// Close stops the watch and every goroutine of the Store and waits for
// them. Writes afterwards fail with ErrClosed; reads keep answering from
// the last state, and the table stays usable.
func (s *Store) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
	}
	close(s.closed)
	s.cancel()
	err := s.watcher.Close()
	s.wg.Wait()
	s.m.unregister()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close watcher: %w", err)
	}
	return nil
}

// Table returns the current table of served zones (enabled zones whose
// snapshot built). It is immutable; the store swaps in a new one on every
// change. Pass this method as dnsserver.Config.Zones.
func (s *Store) Table() *zone.Table { return s.table.Load() }

// OnSwap registers fn, replacing any earlier one, to be called after the
// table changed, once per zone whose snapshot changed: old is nil for a
// zone that started being served, new is nil for one that stopped (deleted
// or disabled). fn runs on the store's watch goroutine and must return
// quickly (the DNS server's ZoneChanged queues NOTIFYs). A write returns
// only after fn ran for it on the writer's replica.
func (s *Store) OnSwap(fn func(old, new *zone.Snapshot)) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.onSwap = fn
}

func (s *Store) swapHook() func(old, new *zone.Snapshot) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	return s.onSwap
}

// Revision returns the Chainfire revision the store has applied.
func (s *Store) Revision() int64 { return s.feed.Applied() }

// WaitRevision blocks until the store (index and table) has applied every
// change up to Chainfire revision rev, or ctx ends. Every successful write
// of the Store waits for its own revision before returning, so a caller
// reads its own writes from the same replica; WaitRevision lets a caller
// wait for a revision learnt elsewhere (another replica's write).
func (s *Store) WaitRevision(ctx context.Context, rev int64) error {
	return s.feed.WaitRevision(ctx, rev)
}

// Sync waits until the store has applied everything Chainfire had
// committed when it answered a linearizable read: after Sync, reads of
// this replica see every write acknowledged by any replica before Sync
// was called.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	rctx, cancel := s.request(ctx)
	resp, err := s.cli.Get(rctx, zonesPrefix, clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return s.chainfireErr(rctx, "get", err)
	}
	return s.WaitRevision(ctx, resp.Header.Revision)
}

// errRequestTimeout is the cause of a request context that ran out.
var errRequestTimeout = errors.New("chainfire request timeout")

// request bounds one Chainfire request by the store's RequestTimeout (and
// the caller's context).
func (s *Store) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.opts.RequestTimeout, errRequestTimeout)
}

// chainfireErr wraps the error of a request made with a context from
// request: ErrUnavailable when the store's timeout ended it, the error as
// it is otherwise.
func (s *Store) chainfireErr(rctx context.Context, op string, err error) error {
	if errors.Is(context.Cause(rctx), errRequestTimeout) {
		return fmt.Errorf("%w: chainfire %s got no answer within %v", ErrUnavailable, op, s.opts.RequestTimeout)
	}
	return fmt.Errorf("chainfire %s: %w", op, err)
}

// advance records that everything up to rev has been applied.
func (s *Store) advance(rev int64) { s.feed.Advance(rev) }

func (s *Store) now() time.Time { return s.opts.Now() }

// checkOpen returns ErrClosed after Close.
func (s *Store) checkOpen() error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
		return nil
	}
}

// zoneLock is one zone's writer lock: a channel, so that waiting honours
// the caller's context.
type zoneLock struct {
	ch   chan struct{}
	refs int
}

// lockZone serializes this replica's writers of zone id; the returned
// function unlocks. Waiting ends with the caller's context.
func (s *Store) lockZone(ctx context.Context, id string) (func(), error) {
	s.lockMu.Lock()
	l := s.locks[id]
	if l == nil {
		l = &zoneLock{ch: make(chan struct{}, 1)}
		s.locks[id] = l
	}
	l.refs++
	s.lockMu.Unlock()
	release := func() {
		s.lockMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.locks, id)
		}
		s.lockMu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("wait for a concurrent write of zone %s: %w", id, ctx.Err())
	case <-s.closed:
		release()
		return nil, ErrClosed
	}
}

// txn runs one Chainfire transaction. When it succeeds it waits until the
// store has applied it, so that the caller's next read sees it.
func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	resp, err := s.txnNoWait(ctx, cmps, then, els)
	if err == nil && resp.Succeeded {
		s.waitOwn(ctx, resp.Header.Revision)
	}
	return resp, err
}

// txnNoWait is txn without the wait: the caller waits (waitOwn) once it
// has let go of what it no longer needs.
func (s *Store) txnNoWait(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rctx, cancel := s.request(ctx)
	resp, err := s.cli.Txn(rctx).If(cmps...).Then(then...).Else(els...).Commit()
	cancel()
	if err != nil {
		return nil, s.chainfireErr(rctx, "txn", err)
	}
	return resp, nil
}

// waitOwn waits for the revision of a write that succeeded. The write is
// durable either way, so a failed wait (the caller gave up, the store is
// closing) is only logged: reporting an error would make the caller retry
// a change that in fact happened.
func (s *Store) waitOwn(ctx context.Context, rev int64) {
	if err := s.WaitRevision(ctx, rev); err != nil {
		s.lg.Debug("write committed but not yet applied", "revision", rev, "err", err)
	}
}

// catchUp waits until the store has applied everything Chainfire had
// committed when it answered: writers call it when the index seems to lag
// (a zone it does not know yet, an etag newer than its own).
func (s *Store) catchUp(ctx context.Context) error { return s.Sync(ctx) }

// maxAttempts bounds optimistic retries of one write against other
// replicas' writes (this replica's writers of a zone take turns).
const maxAttempts = 16

// errRetry means: a comparison failed on a change of another writer;
// rebuild the write from the newer state and try again.
var errRetry = errors.New("retry")

// etagOf formats a revision as an etag.
func etagOf(rev int64) string { return strconv.FormatInt(rev, 10) }

// parseEtag parses an etag; ok is false for anything not made by etagOf.
func parseEtag(etag string) (int64, bool) {
	etag = strings.Trim(etag, `"`)
	v, err := strconv.ParseInt(etag, 10, 64)
	return v, err == nil && v > 0
}
