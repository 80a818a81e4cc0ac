//go:build !unix

package token

import "time"

func processCPU() time.Duration { return 0 }
