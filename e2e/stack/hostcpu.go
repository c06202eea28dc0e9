package stack

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HostCPU is a reading of the machine's CPU time counters (/proc/stat),
// in clock ticks summed over every core.
type HostCPU struct {
	Busy, Total uint64
}

// ReadHostCPU reads the machine-wide CPU counters.
func ReadHostCPU() (HostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return HostCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return HostCPU{}, errors.New("unexpected /proc/stat")
	}
	var c HostCPU
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return HostCPU{}, err
		}
		c.Total += v
		if i != 3 && i != 4 { // idle and iowait
			c.Busy += v
		}
	}
	return c, nil
}

// BusySince returns the share of the machine's CPU time that was busy
// between an earlier reading and this one, 0..1.
func (c HostCPU) BusySince(earlier HostCPU) float64 {
	if c.Total <= earlier.Total {
		return 0
	}
	return float64(c.Busy-earlier.Busy) / float64(c.Total-earlier.Total)
}

// CommandCPUSeconds sums the user+system CPU seconds of every running
// process whose command name is comm (e.g. "postgres": the server and its
// backends; a backend that has exited is no longer counted).
func CommandCPUSeconds(comm string) (float64, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open || s[open+1:close] != comm {
			continue
		}
		if t, err := parseCPUTicks(s); err == nil {
			sum += t
		}
	}
	return sum, nil
}
