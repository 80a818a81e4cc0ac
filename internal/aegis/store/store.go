package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/photoncloud/photoncloud/internal/aegis/policy"
	"github.com/photoncloud/photoncloud/internal/aegis/token"
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
	// Evaluator is fed from the watch. Default: policy.New with default
	// options. It must not be updated by anyone else: the Store resets it
	// on every (re)load.
	Evaluator *policy.Evaluator
	// Revocations is fed with token and principal revocations from the
	// watch. Default: a new token.RevocationList using Now.
	Revocations *token.RevocationList
	// AuditRetention is how long audit events are kept. Default 30 days.
	AuditRetention time.Duration
	// MaxTxnOps is Chainfire's --max-txn-ops; cascading deletes split
	// their work into transactions of at most this many operations.
	// Default 128 (etcd's and Chainfire's default).
	MaxTxnOps int
	// ExpiredBindingGrace is how long an expired binding is kept (it no
	// longer applies) before the store deletes it. Default 24 hours.
	ExpiredBindingGrace time.Duration
	// SweepInterval is how often the store looks for expired bindings to
	// delete. Default 10 minutes; negative disables the sweep.
	SweepInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// testBeforeWatch, if set, runs before every (re)watch; tests use it
	// to hold the watch back while they compact.
	testBeforeWatch func()
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AuditRetention == 0 {
		o.AuditRetention = 30 * 24 * time.Hour
	}
	if o.MaxTxnOps == 0 {
		o.MaxTxnOps = 128
	}
	if o.ExpiredBindingGrace == 0 {
		o.ExpiredBindingGrace = 24 * time.Hour
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = 10 * time.Minute
	}
	if o.Revocations == nil {
		o.Revocations = token.NewRevocationList(o.Now)
	}
}

// Validate reports whether the options are usable (after EnsureDefaults).
func (o *Options) Validate() error {
	switch {
	case o.Client == nil:
		return errors.New("store options: Client is required")
	case o.MaxTxnOps < 16:
		return fmt.Errorf("store options: MaxTxnOps %d too small (at least 16)", o.MaxTxnOps)
	case o.AuditRetention < time.Hour:
		return fmt.Errorf("store options: AuditRetention %v too short (at least 1h)", o.AuditRetention)
	case o.ExpiredBindingGrace < 0:
		return fmt.Errorf("store options: ExpiredBindingGrace must not be negative")
	}
	return nil
}

// Store is Aegis's persistence in Chainfire plus the replica's in-memory
// index of it. See the package comment. All methods are safe for
// concurrent use.
type Store struct {
	opts Options
	cli  *clientv3.Client
	lg   *slog.Logger
	eval *policy.Evaluator
	revs *token.RevocationList

	ix *index

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed chan struct{}
	wg     sync.WaitGroup

	watcher clientv3.Watcher
	feed    *watchfeed.Feed

	cbMu      sync.Mutex
	keyCBs    []func()
	keyNotify chan struct{}

	leases leaseCache

	idMu     sync.Mutex
	lastIDMs int64 // millisecond of the last sortable id made
}

// Open loads the index from Chainfire (one Range of the watched prefix at a
// revision R), feeds the evaluator and revocation list, and starts the
// watch from R+1. It returns once the index is complete as of R.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Evaluator == nil {
		ev, err := policy.New(policy.Options{Now: opts.Now})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		opts.Evaluator = ev
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		opts:      opts,
		cli:       opts.Client,
		lg:        opts.Logger,
		eval:      opts.Evaluator,
		revs:      opts.Revocations,
		ix:        newIndex(),
		ctx:       sctx,
		cancel:    cancel,
		closed:    make(chan struct{}),
		keyNotify: make(chan struct{}, 1),
	}
	s.leases.init()
	// The feed keeps the applied revision, which the first load sets.
	s.watcher = clientv3.NewWatcher(s.cli)
	s.feed = watchfeed.New(watchfeed.Options{Watcher: s.watcher, Prefix: iamPrefix, Index: feedIndex{s},
		Logger: s.lg, BeforeWatch: opts.testBeforeWatch, Closed: s.closed, ErrClosed: ErrClosed})
	if err := s.reload(ctx); err != nil {
		cancel()
		_ = s.watcher.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.feed.Run(s.ctx)
	}()
	go s.notifyLoop()
	if opts.SweepInterval > 0 {
		s.wg.Add(1)
		go s.sweepLoop()
	}
	return s, nil
}

// Close stops the watch and every goroutine of the Store and waits for
// them. Methods called afterwards fail with ErrClosed (reads keep
// answering from the last index).
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
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close watcher: %w", err)
	}
	return nil
}

// Evaluator returns the policy evaluator the Store keeps current.
func (s *Store) Evaluator() *policy.Evaluator { return s.eval }

// Revocations returns the revocation list the Store keeps current; pass it
// to the token Verifier, Issuer and Refresher.
func (s *Store) Revocations() *token.RevocationList { return s.revs }

// Revision returns the Chainfire revision the index has applied.
func (s *Store) Revision() int64 { return s.feed.Applied() }

// WaitRevision blocks until the index (and with it the evaluator and the
// revocation list) has applied every change up to Chainfire revision rev,
// or ctx ends. Every successful write of the Store waits for its own
// revision before returning, so a caller reads its own writes from the same
// replica; WaitRevision lets a caller wait for a revision learnt elsewhere
// (e.g. from another replica's response).
func (s *Store) WaitRevision(ctx context.Context, rev int64) error {
	return s.feed.WaitRevision(ctx, rev)
}

// advance records that everything up to rev has been applied.
func (s *Store) advance(rev int64) { s.feed.Advance(rev) }

func (s *Store) now() time.Time { return s.opts.Now() }

func (s *Store) nowpb() *timestamppb.Timestamp { return timestamppb.New(s.now()) }

// checkOpen returns ErrClosed after Close.
func (s *Store) checkOpen() error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
		return nil
	}
}

// txn runs one Chainfire transaction. When it succeeds it waits until the
// index has applied it, so that the caller's next read sees it.
func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err != nil {
		return nil, fmt.Errorf("chainfire txn: %w", err)
	}
	if resp.Succeeded {
		s.waitOwn(ctx, resp.Header.Revision)
	}
	return resp, nil
}

// waitOwn waits for the revision of a write that succeeded. The write is
// durable either way, so a failed wait (the caller gave up, the store is
// closing) is only logged: reporting an error would make the caller
// retry a create that in fact happened.
func (s *Store) waitOwn(ctx context.Context, rev int64) {
	if err := s.WaitRevision(ctx, rev); err != nil {
		s.lg.Debug("write committed but not yet in the index", "revision", rev, "err", err)
	}
}

// catchUp waits until the index has applied everything Chainfire had
// committed when it answered: one linearizable read of key. Writers call
// it when the index seems to lag (a record it does not know yet, an etag
// newer than its own).
func (s *Store) catchUp(ctx context.Context, key string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	resp, err := s.cli.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("chainfire get: %w", err)
	}
	return s.WaitRevision(ctx, resp.Header.Revision)
}

// waitFailed waits for the revision at which a transaction's comparison
// failed, so that the retry sees the change that made it fail.
func (s *Store) waitFailed(ctx context.Context, resp *clientv3.TxnResponse) error {
	return s.WaitRevision(ctx, resp.Header.Revision)
}

// maxAttempts bounds optimistic retries of one write.
const maxAttempts = 8

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newUID returns 128 random bits as 26 lowercase base32 characters: unique
// without coordination, never reused, and a valid policy principal id.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b32.EncodeToString(b[:])
}

// b32hex sorts like the bytes it encodes.
var b32hex = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// sortableID is newSortableID made strictly increasing within this
// replica: two ids made in the same millisecond still sort in the order
// they were made (the later one borrows the next millisecond).
func (s *Store) sortableID(prefix string, now time.Time) string {
	s.idMu.Lock()
	ms := max(now.UnixMilli(), s.lastIDMs+1)
	s.lastIDMs = ms
	s.idMu.Unlock()
	return newSortableID(prefix, time.UnixMilli(ms))
}

// newSortableID returns prefix + 48 bits of milliseconds + 72 random bits,
// so that ids sort by creation time (service-account keys are listed in
// creation order) and never collide.
func newSortableID(prefix string, now time.Time) string {
	var b [15]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return prefix + b32hex.EncodeToString(b[:])
}

// etagOf formats a revision as an etag.
func etagOf(rev int64) string { return strconv.FormatInt(rev, 10) }

// parseEtag parses an etag; ok is false for anything not made by etagOf.
func parseEtag(etag string) (int64, bool) {
	etag = strings.Trim(etag, `"`)
	v, err := strconv.ParseInt(etag, 10, 64)
	return v, err == nil && v > 0
}
