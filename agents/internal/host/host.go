// Package host reads the host facts and live readings the agents report, and
// holds what both agents do alike: their HTTP endpoints' plumbing and their
// defaults.
package host

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MemInfo is what /proc/meminfo says about memory, in MiB.
type MemInfo struct {
	TotalMB     int64 `json:"total_mb"`
	AvailableMB int64 `json:"available_mb"`
}

// Memory reads /proc/meminfo.
func Memory() (MemInfo, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return MemInfo{}, err
	}
	var m MemInfo
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			m.TotalMB = kb / 1024
		case "MemAvailable:":
			m.AvailableMB = kb / 1024
		}
	}
	if m.TotalMB == 0 {
		return m, fmt.Errorf("/proc/meminfo: no MemTotal")
	}
	return m, nil
}

// LoadAverage reads the 1, 5 and 15 minute load averages from /proc/loadavg.
func LoadAverage() ([3]float64, error) {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return l, fmt.Errorf("/proc/loadavg: %q", b)
	}
	for i := range l {
		if l[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return l, fmt.Errorf("/proc/loadavg: %w", err)
		}
	}
	return l, nil
}

// Hostname is the host's name, "localhost" if it has none: the agents'
// default member id.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
