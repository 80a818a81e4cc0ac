package hoststat

import (
	"strings"
	"testing"
)

func TestReadsThisMachine(t *testing.T) {
	if MachineBusy() <= 0 {
		t.Error("MachineBusy read nothing from /proc/stat")
	}
	for i := 0; SelfCPU() == 0 && i < 1e7; i++ {
	}
	if SelfCPU() <= 0 {
		t.Error("SelfCPU is 0 after spinning")
	}
	if la := LoadAvg(); la == "?" || len(strings.Fields(la)) != 3 {
		t.Errorf("LoadAvg = %q, want three numbers", la)
	}
	if s := ReferenceSpeed(); s <= 0 {
		t.Errorf("ReferenceSpeed = %v MB/s", s)
	}
}
