//go:build tools

// Package buf pins the buf CLI (https://buf.build), which compiles and lints
// the .proto files under api/ and drives the protoc plugins for
// `make generate`. It has a module of its own because buf needs a newer
// google.golang.org/protobuf than the main module uses, and protoc-gen-go
// (in tools/protoc-gen) must match the main module's version exactly.
package buf

import (
	_ "github.com/bufbuild/buf/cmd/buf"
)
