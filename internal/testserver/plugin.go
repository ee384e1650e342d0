package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"go.uber.org/goleak"
)

// BuildPlugin builds backend's plugin binary
// (plugins/<backend>/cmd/muster-plugin-<backend>) into a new temporary
// directory and returns it; the caller removes it. It builds without
// -race whatever the test binary was built with: the driver runs under
// -race in-process, and one race-built process per plugin session would
// not fit a small machine. The name is the one plugins/host looks for.
func BuildPlugin(backend string) (dir string, err error) {
	dir, err = os.MkdirTemp("", "muster-"+backend+"-plugin-")
	if err != nil {
		return "", err
	}
	name := "muster-plugin-" + backend
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name),
		"github.com/musterhq/muster/plugins/"+backend+"/cmd/"+name)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build %s plugin: %w", backend, err)
	}
	return dir, nil
}

// CheckLeaks is the end of a TestMain: when the tests passed (code 0)
// and goroutines are left running, it prints them and returns 1; else
// code. Stop every server first: their watchers are goroutines.
func CheckLeaks(code int) int {
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "goleak:", err)
		return 1
	}
	return 0
}

// PluginCommand runs `muster-plugin-<backend> command` from dir (see
// serve.Command) with url on its stdin, as muster does, and returns its
// stderr and its exit error (nil for status 0).
func PluginCommand(dir, backend, command, url string) (stderr string, err error) {
	cmd := exec.Command(filepath.Join(dir, "muster-plugin-"+backend), command)
	cmd.Stdin = strings.NewReader(url + "\n")
	var buf strings.Builder
	cmd.Stderr = &buf
	err = cmd.Run()
	return buf.String(), err
}
