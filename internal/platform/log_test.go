package platform

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	lg, err := NewLogger(&buf, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("hidden")
	lg.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec["msg"] != "shown" || rec["level"] != "WARN" || rec["k"] != float64(1) {
		t.Fatalf("record = %v", rec)
	}

	buf.Reset()
	lg, err = NewLogger(&buf, "debug", "text")
	if err != nil {
		t.Fatal(err)
	}
	lg.Debug("dbg")
	if !strings.Contains(buf.String(), "level=DEBUG msg=dbg") {
		t.Fatalf("text output %q", buf.String())
	}

	if _, err := NewLogger(&buf, "loud", "text"); err == nil || err.Error() != `invalid log level "loud": want debug, info, warn or error` {
		t.Fatalf("bad level error: %v", err)
	}
	if _, err := NewLogger(&buf, "info", "xml"); err == nil || err.Error() != `invalid log format "xml": want text or json` {
		t.Fatalf("bad format error: %v", err)
	}
}
