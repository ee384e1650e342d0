package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The backend owns only what it created. A directory becomes its own when
// Open finds it missing or empty and writes the format marker into it; a
// directory that holds anything else and no marker is refused untouched.
// Inside its directory it removes only files it can identify as its own:
// records that parse, and temporary files under the names writeFile uses.
// Anything else is left alone (logged at debug).

// errForeignDir says Open refused a directory it does not own.
var errForeignDir = errors.New("not a muster directory")

// systemDirs are refused outright, marker or not: a typo or an unset
// variable in the URL must never make muster write into them.
var systemDirs = map[string]bool{
	"/": true, "/tmp": true, "/var": true, "/etc": true, "/usr": true, "/home": true,
	"/root": true, "/proc": true, "/sys": true, "/dev": true, "/boot": true, "/bin": true,
	"/sbin": true, "/lib": true, "/lib64": true, "/opt": true, "/run": true, "/srv": true,
	"/mnt": true, "/media": true, "/var/tmp": true, "/var/lib": true, "/var/run": true,
	"/usr/local": true, "/usr/lib": true, "/usr/bin": true,
}

func refuseSystemDir(dir string) error {
	check := func(d string) error {
		if systemDirs[d] || d == os.TempDir() && d != "" {
			return fmt.Errorf("%w: refusing the system directory %s; name a directory of muster's own, as in file:///var/lib/muster", errForeignDir, d)
		}
		return nil
	}
	if err := check(dir); err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return check(real)
	}
	return nil
}

// markerPrefix starts the names of the files adopt writes while it claims
// an empty directory; two processes claiming it at once see only those.
const markerPrefix = ".muster-"

// adopt makes dir muster's: it creates it if missing, and marks it if it
// is empty. A directory with the marker is muster's already; one with a
// marker of another layout, or with other files and no marker, is refused
// with nothing touched.
func adopt(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), dirPerm); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	marker := filepath.Join(dir, formatFile)
	for range 3 {
		switch b, err := readFile(marker); {
		case err != nil && !errors.Is(err, errGarbage):
			return err
		case b != nil && string(b) == formatLine:
			return nil
		case b != nil && olderFormats[string(b)]:
			return upgrade(dir, marker, string(b))
		case b != nil || err != nil:
			return fmt.Errorf("%w: %s: %s holds %q; this muster understands %q", errForeignDir, dir, formatFile, b, formatLine)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), markerPrefix) {
				// Another process may have marked it (and begun filling it)
				// since the marker was read: the marker is always first.
				if b, _ := readFile(marker); b != nil && string(b) == formatLine {
					return nil
				}
				return fmt.Errorf("%w: %s is not empty and has no %s file; refusing to use it (muster uses only a directory it created, or an empty one)",
					errForeignDir, dir, formatFile)
			}
		}
		// Link fails if another process marked it first: then read again.
		tmp := filepath.Join(dir, markerPrefix+"format-"+randomHex(8))
		if err := os.WriteFile(tmp, []byte(formatLine), filePerm); err != nil {
			return err
		}
		err = os.Link(tmp, marker)
		_ = os.Remove(tmp)
		if err == nil {
			return syncDir(dir)
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return fmt.Errorf("%s: could not read or write %s", dir, formatFile)
}

// olderFormats are the layouts adopt upgrades from, once no session of
// theirs is left: format 1 judged liveness by file mtimes, format 2 wrote
// lock records whole (format 3 reads those, but a format-2 muster cannot
// read format 3's slotted lock files). The two cannot share a directory.
var olderFormats = map[string]bool{"muster-file 1\n": true, "muster-file 2\n": true}

// upgrade moves a directory of an older format to this one, once it holds
// no session file.
func upgrade(dir, marker, old string) error {
	entries, err := os.ReadDir(filepath.Join(dir, sessionsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if isSessionID(e.Name()) {
			return fmt.Errorf("%w: %s is in use by an older muster (%s says %q, and %s holds its sessions): stop those processes (or remove %s/* if they are gone), then retry",
				errForeignDir, dir, formatFile, strings.TrimSpace(old), sessionsDir, filepath.Join(dir, sessionsDir))
		}
	}
	tmp := filepath.Join(dir, markerPrefix+"format-"+randomHex(8))
	if err := os.WriteFile(tmp, []byte(formatLine), filePerm); err != nil {
		return err
	}
	if err := os.Rename(tmp, marker); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// isTempName says whether name is one writeFile gives its temporary files
// ("w-" and 16 hex digits): only those may be removed from tmp/.
func isTempName(name string) bool {
	h, ok := strings.CutPrefix(name, "w-")
	return ok && len(h) == 16 && isHex(h)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// syncDir makes the entries of dir durable (a rename or create in it).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
