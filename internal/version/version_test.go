package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	s := String()
	if !strings.HasPrefix(s, Release+" (") || !strings.Contains(s, runtime.Version()) {
		t.Fatalf("String() = %q", s)
	}
}
