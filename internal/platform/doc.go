// Package platform holds what every PhotonCloud server shares: layered
// configuration (flags over environment over TOML file), TLS setup, the gRPC
// and HTTP servers with health and metrics, listeners, logging and signal
// handling. It keeps no global state: loggers and metric registries are
// passed in, so several components can run in one process (photon dev).
package platform
