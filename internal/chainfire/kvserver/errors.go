package kvserver

import "errors"

// Errors of the server layer. The gRPC layer maps each to etcd's error of the
// same meaning (v3rpc/rpctypes), because clients match on those.
var (
	ErrKeyNotFound     = errors.New("kvserver: key not found")
	ErrNoSpace         = errors.New("kvserver: database space exceeded")
	ErrRequestTooLarge = errors.New("kvserver: request is too large")
	ErrTimeout         = errors.New("kvserver: request timed out")
	ErrCanceled        = errors.New("kvserver: request canceled")
	ErrStopped         = errors.New("kvserver: server stopped")
	ErrNoLeader        = errors.New("kvserver: no leader")
	ErrNotLeader       = errors.New("kvserver: not leader")
	ErrCorrupt         = errors.New("kvserver: corrupt cluster")
)
