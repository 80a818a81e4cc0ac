package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// daemon is what the harnesses of Aegis and FlashDNS share: the current
// process, its log, and the retry of a very first start that lost the race
// for its free ports. The harness adds its flags and ports.
type daemon struct {
	t testing.TB

	Name    string
	LogPath string // the structured log (stderr)

	mu        sync.Mutex
	proc      *process
	log       *os.File
	logStart  int64 // where the current run's part of the log begins
	everReady bool
	rebinds   int
}

// init names the server and opens its log in dir.
func (d *daemon) init(t testing.TB, name, dir string) {
	t.Helper()
	d.t, d.Name, d.LogPath = t, name, filepath.Join(dir, name+".log")
	var err error
	if d.log, err = os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		t.Fatalf("create %s log: %v", name, err)
	}
}

// start launches bin with args and env, stdout to stdout (the log when
// nil); it does not wait for readiness.
func (d *daemon) start(bin string, args, env []string, stdout *os.File) {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc != nil && !d.proc.exited() {
		d.t.Fatalf("start %s: already running", d.Name)
	}
	if fi, err := d.log.Stat(); err == nil {
		d.logStart = fi.Size()
	}
	if stdout == nil {
		stdout = d.log
	}
	d.proc = launch(d.t, bin, args, photonEnv(env), stdout, d.log, d.log, "")
}

func (d *daemon) current() *process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// waitReady waits until httpURL()'s /readyz answers 200, failing the test
// if the process exits or takes longer than timeout. A first start that
// lost its ports is handed to retry, which moves the server to new ports
// and starts it again (httpURL is read again then).
func (d *daemon) waitReady(httpURL func() string, timeout time.Duration, retry func() bool) {
	d.t.Helper()
	if d.current() == nil {
		d.t.Fatalf("WaitReady: %s not started", d.Name)
	}
	for {
		err := awaitReadyz(d.current(), d.Name, httpURL(), timeout)
		if err == nil {
			d.everReady = true
			return
		}
		if d.current().exited() && retry() {
			continue
		}
		d.t.Fatalf("%v (log %s below)", err, d.LogPath)
	}
}

// lostPortRace reports whether the current run is a first start that
// failed because a port picked as free was taken meanwhile, with retries
// left; it counts the retry. The servers bind before they touch Chainfire
// or their data, so nothing needs cleaning up before starting again.
func (d *daemon) lostPortRace() bool {
	if d.everReady || d.rebinds >= 3 {
		return false
	}
	b, err := os.ReadFile(d.LogPath)
	if err != nil || int64(len(b)) < d.logStart || !bytes.Contains(b[d.logStart:], []byte("address already in use")) {
		return false
	}
	d.rebinds++
	d.t.Logf("%s: port conflict on first start, retrying with new ports", d.Name)
	return true
}

// Kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) Kill() {
	d.t.Helper()
	kill(d.t, d.current(), d.Name, d.log)
}

// Log is the server's whole log, over all its runs.
func (d *daemon) Log() string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return string(b)
}

// finish reaps the process at the end of the test, closes the log, fails
// the test if the log shows a crash, and prints its tail if it failed.
func (d *daemon) finish() {
	reap(d.t, d.current(), d.Name)
	_ = d.log.Close()
	if m := crashMarker.FindString(d.Log()); m != "" {
		d.t.Errorf("%s log shows a crash (%q)", d.Name, m)
	}
	if d.t.Failed() {
		d.t.Logf("%s log %s (last %d lines):\n%s", d.Name, d.LogPath, logTailLines, tail(d.LogPath, logTailLines))
	}
}
