// Package bustest starts an in-process nats-server with JetStream for
// tests, so packages that use libs/bus test against the real broker (no
// mocks of our own broker) without a server installed or a port reserved.
// Each call gets its own server on a random loopback port with its store in
// the test's temporary directory, so tests can run in parallel.
package bustest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// RunServer starts a JetStream-enabled nats-server for t and returns its
// client URL. The server is shut down, and its store removed, when the test
// ends.
func RunServer(t testing.TB) string {
	t.Helper()
	return Start(t).ClientURL()
}

// Start is RunServer returning the server itself, for tests that need to
// stop and restart it or read its state.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartWithStore(t, t.TempDir())
}

// StartWithStore starts a server whose JetStream store lives in dir, so a
// test can shut a server down and start another on the same data to
// check what survives a broker restart.
func StartWithStore(t testing.TB, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName:         "bustest",
		Host:               "127.0.0.1",
		Port:               server.RANDOM_PORT,
		NoLog:              true,
		NoSigs:             true,
		JetStream:          true,
		StoreDir:           dir,
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
	})
	if err != nil {
		t.Fatalf("bustest: create nats-server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("bustest: nats-server not ready for connections")
	}
	return s
}
