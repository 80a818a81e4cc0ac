package platform

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHTTPMux(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "photon_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var notReady error = errors.New("raft: no leader")
	mux := NewHTTPMux(reg, func() error { return notReady })
	mux.HandleFunc("/extra", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "mine") })

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, "ok\n"},
		{"/livez", 200, "ok\n"},
		{"/readyz", 503, "raft: no leader\n"},
		{"/extra", 200, "mine"},
	} {
		if code, body := get(tc.path); code != tc.code || body != tc.body {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
	notReady = nil
	if code, body := get("/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /readyz when ready = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "photon_test_total 3") {
		t.Errorf("GET /metrics = %d, body lacks photon_test_total 3:\n%s", code, body)
	}
}
