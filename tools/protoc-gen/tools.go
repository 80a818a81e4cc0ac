//go:build tools

// Package protocgen pins the protoc plugins `make generate` runs through buf:
// protoc-gen-go (same google.golang.org/protobuf version as the main module,
// so generated code and runtime agree), protoc-gen-go-grpc and
// protoc-gen-grpc-gateway (same grpc-gateway version as the main module).
package protocgen

import (
	_ "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
