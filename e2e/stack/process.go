package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one child process of the stack: a binary with its arguments
// and environment, its output written to a log file in the run directory.
type Process struct {
	Name    string   // unique within the stack, e.g. "mapper-1"
	Binary  string   // absolute path
	Args    []string // arguments after the binary
	Env     map[string]string
	LogPath string
	// ReadyURL is polled until it answers 200 after a start.
	ReadyURL string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start launches the process. The child gets only the listed environment
// plus PATH and HOME, so a variable missing from the stack's wiring fails
// here rather than being inherited by accident.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.Name)
		}
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log for %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.Binary, p.Args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = envList(p.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to grace for a clean exit, then SIGKILL.
// It returns the exit error of a process that did not exit cleanly.
func (p *Process) Stop(grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || done == nil {
		return nil
	}
	select {
	case <-done:
		return p.exitErr()
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return p.exitErr()
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not stop within %s and was killed", p.Name, grace)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Pid returns the process id, or 0 when not started.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("%s exited: %w (log: %s)", p.Name, p.err, p.LogPath)
	}
	return p.err
}

// WaitReady polls ReadyURL until it answers 200, the process exits, or ctx ends.
func (p *Process) WaitReady(ctx context.Context) error {
	if p.ReadyURL == "" {
		return nil
	}
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(p.ReadyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !p.Running() {
			return fmt.Errorf("%s exited before becoming ready: %v (log: %s)", p.Name, p.exitErr(), p.LogPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w (log: %s)", p.Name, p.ReadyURL, ctx.Err(), p.LogPath)
		case <-tick.C:
		}
	}
}

// PeakRSSKiB returns the process's peak resident set size (VmHWM) in KiB,
// read from /proc while it is running.
func (p *Process) PeakRSSKiB() (int64, error) {
	pid := p.Pid()
	if pid == 0 {
		return 0, fmt.Errorf("%s is not running", p.Name)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

func parseVmHWM(status []byte) (int64, error) {
	const key = "VmHWM:"
	for _, line := range splitLines(string(status)) {
		if len(line) > len(key) && line[:len(key)] == key {
			var kib int64
			if _, err := fmt.Sscanf(line[len(key):], "%d", &kib); err != nil {
				return 0, fmt.Errorf("parse %q: %w", line, err)
			}
			return kib, nil
		}
	}
	return 0, errors.New("VmHWM not found in /proc status")
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func envList(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GOTOOLCHAIN=local"}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// FreePort asks the kernel for an unused TCP port on 127.0.0.1 and reserves
// it for this test process. The port is free when FreePort returns, but the
// process that will listen on it starts later; meanwhile another test
// process (go test runs packages in parallel, each with its own stacks)
// could be handed the same port by the kernel, and a service that cannot
// bind exits while the readiness probe happily talks to the other stack's
// service. So every port handed out is also locked, with flock on a file
// named after it, for the life of the test process; ports another process
// holds are skipped.
func FreePort() (int, error) {
	for range 64 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		reserved, rerr := reservePort(port)
		l.Close()
		if rerr != nil {
			return 0, rerr
		}
		if reserved {
			return port, nil
		}
	}
	return 0, errors.New("no free port that another test process has not reserved")
}

// portLocks holds the reservation files open: closing one would drop its
// lock.
var portLocks struct {
	sync.Mutex
	files []*os.File
}

// reservePort takes the cross-process lock of port, reporting false when
// another process holds it.
func reservePort(port int) (bool, error) {
	dir := filepath.Join(os.TempDir(), "cosell-e2e-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return false, fmt.Errorf("reserve port: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return false, fmt.Errorf("reserve port: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("reserve port %d: %w", port, err)
	}
	portLocks.Lock()
	portLocks.files = append(portLocks.files, f)
	portLocks.Unlock()
	return true, nil
}

// CPUSeconds returns the user+system CPU time the running process has used,
// read from /proc/<pid>/stat (clock ticks at the kernel's usual 100 Hz).
func (p *Process) CPUSeconds() (float64, error) {
	pid := p.Pid()
	if pid == 0 {
		return 0, fmt.Errorf("%s is not running", p.Name)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseCPUTicks(string(b))
}

// parseCPUTicks reads utime and stime (fields 14 and 15) from a /proc stat
// line; the command name in parentheses may contain spaces, so fields are
// counted from the closing parenthesis.
func parseCPUTicks(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat line")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat line")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat times: %v %v", err1, err2)
	}
	return float64(ut+st) / 100, nil
}
