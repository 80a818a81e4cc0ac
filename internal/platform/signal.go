package platform

import (
	"context"
	"os/signal"
	"syscall"
)

// SignalContext returns a context cancelled on the first SIGINT or SIGTERM.
// stop releases the signal handler; after it a second Ctrl-C kills the
// process the default way, which is what an operator expects when a
// graceful shutdown hangs.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}
