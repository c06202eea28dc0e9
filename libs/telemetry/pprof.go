package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// EnvPprofAddr names the variable that, when set, makes Setup serve Go's
// runtime profiles (net/http/pprof) on that address, e.g. 127.0.0.1:6060.
// It is off by default and meant for an operator or a benchmark on the
// machine itself: bind it to localhost, never to a public interface.
const EnvPprofAddr = "PPROF_ADDR"

// startPprof listens on addr and serves /debug/pprof/ until stop is called.
func startPprof(addr string, logger *slog.Logger) (stop func(context.Context) error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s: %w", EnvPprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && logger != nil {
			logger.Warn("pprof server stopped", "err", err)
		}
	}()
	if logger != nil {
		logger.Info("serving runtime profiles", "addr", ln.Addr().String())
	}
	return srv.Shutdown, nil
}
