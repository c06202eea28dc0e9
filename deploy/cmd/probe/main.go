// Command probe is the container health check of the cosell images, which
// are distroless and so have no shell, curl or wget. With no arguments it
// asks the service in its own container for readiness:
//
//	GET http://127.0.0.1:<port of HTTP_ADDR>/readyz
//
// and exits 0 on a 200 answer, 1 otherwise. -url probes another address
// (an emulator's /healthz), and -o writes the answer's body to a file, so
// an init container can fetch a file such as the Partner Center emulator's
// CA certificate; -wait keeps retrying until the deadline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

// maxBody bounds what -o writes: the probe fetches certificates and health
// answers, never anything large.
const maxBody = 1 << 20

// run parses the arguments and probes once, or until -wait elapses.
func run(args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "", "URL to GET; default http://127.0.0.1:<HTTP_ADDR port>/readyz")
	out := fs.String("o", "", "write the response body to this file (atomically)")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of one attempt")
	wait := fs.Duration("wait", 0, "keep retrying every second for this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	target := *rawURL
	if target == "" {
		var err error
		if target, err = readyURL(getenv("HTTP_ADDR")); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(*wait)
	for {
		err := probe(target, *out, *timeout)
		if err == nil || !time.Now().Before(deadline) {
			return err
		}
		fmt.Fprintln(stderr, "probe:", err, "(retrying)")
		time.Sleep(time.Second)
	}
}

// readyURL turns a listen address (":8080", "0.0.0.0:8080", "[::]:8080")
// into the loopback URL of its /readyz; an empty address is the services'
// default ":8080".
func readyURL(httpAddr string) (string, error) {
	if httpAddr == "" {
		httpAddr = ":8080"
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("HTTP_ADDR %q: %w", httpAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// probe performs one GET and, when out is set, stores the body.
func probe(target, out string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	if out == "" {
		return nil
	}
	if len(body) > maxBody {
		return errors.New("response body larger than 1 MiB")
	}
	return writeAtomic(out, body)
}

// writeAtomic writes through a temporary file and a rename, so a reader
// never sees half a certificate.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
