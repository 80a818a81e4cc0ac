package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/photoncloud/photoncloud/internal/flashdns/zone"
)

// notifyWorkers bounds the zones notified at once, so that loading many
// zones does not open thousands of sockets.
const notifyWorkers = 4

// maxNotifyWait caps the exponential NOTIFY retry timeout.
const maxNotifyWait = 30 * time.Second

// notifier sends NOTIFY (RFC 1996) for changed zones. Each zone has at most
// one job: a change that arrives while its zone waits replaces the snapshot,
// one that arrives while it is being notified cancels that round and queues
// a new one, so secondaries hear about the newest serial without a backlog.
type notifier struct {
	h      *handler
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	jobs   map[string]*notifyJob
	queue  []string
	wake   chan struct{}
	closed bool
}

type notifyJob struct {
	snap    *zone.Snapshot
	running bool
	again   bool // changed while running
	cancel  context.CancelFunc
}

func newNotifier(h *handler) *notifier {
	ctx, stop := context.WithCancel(context.Background())
	n := &notifier{h: h, ctx: ctx, stop: stop, jobs: make(map[string]*notifyJob), wake: make(chan struct{}, 1)}
	if len(h.cfg.targets) == 0 {
		return n
	}
	for range notifyWorkers {
		n.wg.Add(1)
		go n.run()
	}
	return n
}

func (n *notifier) enqueue(s *zone.Snapshot) {
	if len(n.h.cfg.targets) == 0 {
		return
	}
	origin := s.Origin()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if j := n.jobs[origin]; j != nil {
		j.snap = s
		if j.running {
			j.again = true
			j.cancel()
		}
		return
	}
	n.jobs[origin] = &notifyJob{snap: s}
	n.queue = append(n.queue, origin)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// cancel forgets a deleted zone.
func (n *notifier) cancel(origin string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if j := n.jobs[origin]; j != nil {
		if j.running {
			j.again = false
			j.cancel()
		} else {
			delete(n.jobs, origin)
			for i, o := range n.queue {
				if o == origin {
					n.queue = append(n.queue[:i], n.queue[i+1:]...)
					break
				}
			}
		}
	}
}

func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.stop()
	n.wg.Wait()
}

func (n *notifier) next() (string, *notifyJob, context.Context) {
	for {
		n.mu.Lock()
		if len(n.queue) > 0 {
			origin := n.queue[0]
			n.queue = n.queue[1:]
			j := n.jobs[origin]
			j.running = true
			ctx, cancel := context.WithCancel(n.ctx)
			j.cancel = cancel
			more := len(n.queue) > 0
			n.mu.Unlock()
			if more {
				// Pass the wake-up on so idle workers pick up the rest.
				select {
				case n.wake <- struct{}{}:
				default:
				}
			}
			return origin, j, ctx
		}
		n.mu.Unlock()
		select {
		case <-n.ctx.Done():
			return "", nil, nil
		case <-n.wake:
		}
	}
}

func (n *notifier) run() {
	defer n.wg.Done()
	for {
		origin, j, ctx := n.next()
		if j == nil {
			return
		}
		n.mu.Lock()
		snap := j.snap
		n.mu.Unlock()
		var wg sync.WaitGroup
		for _, t := range n.h.cfg.targets {
			wg.Go(func() { n.notifyTarget(ctx, snap, t) })
		}
		wg.Wait()
		j.cancel()
		n.mu.Lock()
		j.running = false
		if j.again && !n.closed {
			j.again = false
			n.queue = append(n.queue, origin)
		} else {
			delete(n.jobs, origin)
		}
		n.mu.Unlock()
	}
}

func (n *notifier) notifyTarget(ctx context.Context, snap *zone.Snapshot, t notifyTarget) {
	lg := n.h.log.With("zone", snap.Origin(), "serial", snap.Serial(), "target", t.addr)
	err := n.send(ctx, snap, t)
	switch {
	case err == nil:
		n.h.m.notifies.WithLabelValues(t.addr, "ok").Inc()
		lg.Debug("notify acknowledged")
	case ctx.Err() != nil:
		// Superseded by a newer serial, the zone was deleted, or Close.
		n.h.m.notifies.WithLabelValues(t.addr, "canceled").Inc()
	case errors.Is(err, errNotifyTimeout):
		n.h.m.notifies.WithLabelValues(t.addr, "timeout").Inc()
		lg.Warn("notify not acknowledged", "attempts", n.h.cfg.NotifyRetries)
	default:
		n.h.m.notifies.WithLabelValues(t.addr, "error").Inc()
		lg.Warn("notify failed", "err", err)
	}
}

var errNotifyTimeout = errors.New("no notify response")

// notifyQuery builds the NOTIFY for snap: opcode NOTIFY, AA, the zone's SOA
// as question and, as a hint (RFC 1996 3.7), as answer; signed when the
// target has a key. It returns the message and its MAC.
func notifyQuery(snap *zone.Snapshot, id uint16, key *tsigKey, now time.Time) ([]byte, []byte, error) {
	m := new(dns.Msg)
	m.SetNotify(snap.Origin())
	m.Id = id
	m.Answer = []dns.RR{snap.SOA()}
	buf, err := m.PackBuffer(make([]byte, 0, 512))
	if err != nil {
		return nil, nil, fmt.Errorf("pack notify: %w", err)
	}
	if key == nil {
		return buf, nil, nil
	}
	st := tsigState{name: key.name, alg: key.alg, key: key, origID: id, fudge: tsigFudge, timeSigned: uint64(now.Unix())}
	out := make([]byte, len(buf), len(buf)+tsigLen(&st))
	copy(out, buf)
	out, mac := appendTSIG(out, &st)
	return out, mac, nil
}

// send delivers one NOTIFY over UDP, retrying with a doubling timeout until
// the target acknowledges or NotifyRetries attempts are used.
func (n *notifier) send(ctx context.Context, snap *zone.Snapshot, t notifyTarget) error {
	id := uint16(rand.Uint32())
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", t.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// Unblock the read when the round is canceled.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, maxMsg)
	wait := n.h.cfg.NotifyTimeout
	for attempt := 0; attempt < n.h.cfg.NotifyRetries; attempt++ {
		// Re-signed per attempt: the TSIG time must stay within the fudge.
		msg, mac, err := notifyQuery(snap, id, t.key, n.h.now())
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := conn.Write(msg); err != nil {
			// ICMP unreachable from the previous attempt shows up here
			// on connected sockets: wait and retry.
			if !sleepCtx(ctx, wait) {
				return ctx.Err()
			}
			wait = min(2*wait, maxNotifyWait)
			continue
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		// A cancel that fired before this deadline was set was overwritten
		// by it; a later one overrides it.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for {
			nr, err := conn.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				// Connection refused (ICMP): treat as a lost attempt.
				if !sleepCtx(ctx, wait) {
					return ctx.Err()
				}
				break
			}
			done, err := n.checkNotifyResponse(buf[:nr], id, snap.Origin(), t.key, mac)
			if done {
				return err
			}
		}
		wait = min(2*wait, maxNotifyWait)
	}
	return errNotifyTimeout
}

// checkNotifyResponse reports whether resp answers our NOTIFY (anything
// else is ignored) and, if so, the error it carries.
func (n *notifier) checkNotifyResponse(resp []byte, id uint16, origin string, key *tsigKey, mac []byte) (bool, error) {
	m := new(dns.Msg)
	if m.Unpack(resp) != nil || m.Id != id || !m.Response || m.Opcode != dns.OpcodeNotify {
		return false, nil
	}
	if len(m.Question) != 1 || dns.CanonicalName(m.Question[0].Name) != origin {
		return false, nil
	}
	if key != nil {
		start, tr, err := findTSIG(resp)
		if err != nil || start == 0 {
			return true, errors.New("response not signed")
		}
		keys := map[string]*tsigKey{key.name: key}
		if _, terr := verifyTSIG(resp, start, &tr, keys, n.h.now(), mac); terr != 0 {
			return true, fmt.Errorf("response tsig: %s", dns.RcodeToString[int(terr)])
		}
	}
	if m.Rcode != dns.RcodeSuccess {
		return true, fmt.Errorf("target answered %s", dns.RcodeToString[m.Rcode])
	}
	return true, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
