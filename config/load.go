package config

import (
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/musterhq/muster/servicegroup/driver"
	"github.com/musterhq/muster/servicegroup/hashring"
	"github.com/musterhq/muster/servicegroup/partition"
)

// Error is a configuration problem, naming the file, the line and the key.
type Error struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	return b.String() + ": " + e.Msg
}

// Load reads path over the defaults. An empty path means defaults only.
func Load(path string) (Config, error) {
	if path == "" {
		c := Default()
		return c, c.Validate()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		// The path is the Error's File already: say it once.
		msg := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return Config{}, &Error{File: path, Msg: msg}
	}
	c, err := Parse(path, string(data))
	if err != nil {
		return c, err
	}
	// A relative plugin_dir is the config file's neighbour, wherever the
	// command runs from (as systemd units run from /).
	if d := c.Backend.PluginDir; d != "" && !filepath.IsAbs(d) {
		c.Backend.PluginDir = filepath.Join(filepath.Dir(path), d)
	}
	return c, nil
}

// Parse decodes TOML text (name is for messages) over the defaults, then
// validates it.
func Parse(name, text string) (Config, error) {
	c := Default()
	c.File = name
	lines := keyLines(text)
	md, err := toml.Decode(text, &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if msg == "" {
				msg = strings.TrimPrefix(pe.Error(), "toml: ")
				if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "line ") {
					msg = msg[i+3:]
				} else if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
					msg = msg[i+2:]
				}
			}
			return Config{}, &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: msg}
		}
		if te := typeError(name, err.Error(), lines); te != nil {
			return Config{}, te
		}
		return Config{}, &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	if und := md.Undecoded(); len(und) > 0 {
		// Capabilities are free-form: anything under them is data.
		var unknown []toml.Key
		for _, k := range und {
			if len(k) > 3 && k[0] == "agent" && k[1] == "compute" && k[2] == "capabilities" {
				continue
			}
			unknown = append(unknown, k)
		}
		if len(unknown) > 0 {
			k := unknown[0].String()
			return Config{}, &Error{File: name, Line: lines[k], Key: k, Msg: "unknown key" + suggest(k)}
		}
	}
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File, ce.Line = name, lines[ce.Key]
		}
		return Config{}, err
	}
	return c, nil
}

// tomlTypeError matches the TOML decoder's type errors, which name Go types:
// "toml: line 2 (last key "backend.url"): incompatible types: TOML value has
// type int64; destination has type string" and "type mismatch for
// config.Backend: expected table but found string".
var (
	tomlTypeError  = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)
	incompatible   = regexp.MustCompile(`^incompatible types: TOML value has type (\S+); destination has type (\S+)$`)
	tableMismatch  = regexp.MustCompile(`^type mismatch for (\S+): expected table but found (\S+)$`)
	operatorsTypes = map[string]string{
		"string": "a string", "int64": "an integer", "float64": "a number",
		"bool": "true or false", "map[string]any": "a table", "[]any": "an array",
		"[]map[string]any": "an array of tables", "time.Time": "a date",
		"time.LocalDate": "a date", "time.LocalTime": "a time", "time.LocalDateTime": "a date and time",
	}
)

// typeError says a TOML type error in the operator's words, naming the key
// and its line; nil if msg is not one.
func typeError(file, msg string, lines map[string]int) *Error {
	m := tomlTypeError.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	key, what := m[2], m[3]
	line := lines[key]
	if line == 0 && m[1] != "" {
		fmt.Sscan(m[1], &line)
	}
	found := func(t string) string {
		if s, ok := operatorsTypes[t]; ok {
			return s
		}
		return "a value of another type"
	}
	switch {
	case incompatible.MatchString(what):
		t := incompatible.FindStringSubmatch(what)
		want := "a string in quotes"
		switch {
		case strings.Contains(t[2], "Duration") || strings.Contains(t[2], "TextUnmarshaler"):
			want = `a duration in quotes (e.g. "1s", "500ms")`
		case strings.HasPrefix(t[2], "int"):
			want = "an integer"
		case t[2] == "bool":
			want = "true or false"
		case strings.HasPrefix(t[2], "[]"):
			want = `an array (e.g. ["a", "b"])`
		case strings.HasPrefix(t[2], "map"):
			want = "a table"
		}
		what = fmt.Sprintf("want %s, found %s", want, found(t[1]))
	case tableMismatch.MatchString(what):
		t := tableMismatch.FindStringSubmatch(what)
		what = fmt.Sprintf("want a table ([%s] or %s = { ... }), found %s", key, key[strings.LastIndex(key, ".")+1:], found(t[2]))
	}
	return &Error{File: file, Line: line, Key: key, Msg: what}
}

// Validate checks values the TOML types cannot.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Backend.URL == "" {
		return bad("backend.url", "is empty")
	}
	scheme, err := driver.Scheme(c.Backend.URL)
	if err != nil {
		return bad("backend.url", "%v", err)
	}
	switch c.Backend.Mode {
	case "", "plugin", "inprocess":
	default:
		return bad("backend.mode", "%q: want \"plugin\" or \"inprocess\"", c.Backend.Mode)
	}
	if scheme == "memory" && c.Backend.Mode == "plugin" {
		return bad("backend.mode", "the memory backend cannot run as a plugin (its state lives in one process)")
	}
	for s, sum := range c.Backend.PluginChecksums {
		if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
			return bad("backend.plugin_checksums."+s, "%q is not a hex sha256 (64 hex digits)", sum)
		}
	}
	if m := c.Session.Member; m != "" {
		if err := driver.ValidateName("member", m); err != nil {
			return bad("session.member", "%v", err)
		}
	}
	for _, b := range []struct {
		key      string
		d, least time.Duration
		zeroOK   bool // 0 means "the default"
	}{
		{"backend.dial_timeout", c.Backend.DialTimeout.Duration, MinDialTimeout, false},
		{"session.heartbeat_interval", c.Session.HeartbeatInterval.Duration, MinHeartbeatInterval, false},
		{"session.member_ttl", c.Session.MemberTTL.Duration, MinMemberTTL, false},
		{"session.watch_interval", c.Session.WatchInterval.Duration, MinWatchInterval, true},
		{"agent.central.poll_interval", c.Agent.Central.PollInterval.Duration, MinPollInterval, false},
	} {
		if why := atLeast(b.d, b.least, b.zeroOK); why != "" {
			return bad(b.key, "%s", why)
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		return bad("log.format", "%q: want console or json", c.Log.Format)
	}
	for key, g := range map[string]string{"agent.compute.group": c.Agent.Compute.Group, "agent.central.group": c.Agent.Central.Group} {
		if err := driver.ValidateName("group", g); err != nil {
			return bad(key, "%v", err)
		}
	}
	if _, err := partition.Weight(c.Agent.Compute.Capabilities); err != nil {
		return bad("agent.compute.capabilities.weight", "%v (want a whole number from 1 to %d)", err, hashring.MaxWeight)
	}
	if tg := c.Agent.Central.TasksGroupOrDefault(); tg != "" {
		if err := driver.ValidateName("group", tg); err != nil {
			return bad("agent.central.tasks_group", "%v", err)
		}
	}
	switch c.Agent.Central.Algorithm {
	case "muster", "tooz":
	default:
		return bad("agent.central.algorithm", "%q: want \"muster\" or \"tooz\"", c.Agent.Central.Algorithm)
	}
	if c.Agent.Central.Output == "" {
		return bad("agent.central.output", "is empty (use \"-\" for stdout)")
	}
	return nil
}

// known lists every key the schema has, read off Config's toml tags, for
// suggestions.
var known = keysOf(reflect.TypeOf(Config{}), "")

func keysOf(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		out = append(out, key)
		ft := f.Type
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(textUnmarshaler) {
			out = append(out, keysOf(ft, key+".")...)
		}
	}
	return out
}

var textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()

// suggest names the known key closest to k, for typos.
func suggest(k string) string {
	best, bestD := "", 4
	for _, c := range known {
		if d := distance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// keyLines maps each dotted key to the line it is set on. TOML's decoder
// keeps positions private, so this reads the text itself: table headers,
// dotted and quoted keys, and inline tables one level deep. A key it cannot
// place gets no line; the message still names the key.
func keyLines(text string) map[string]int {
	out := map[string]int{}
	var table []string
	inMulti := ""
	for n, line := range strings.Split(text, "\n") {
		s := strings.TrimSpace(line)
		if inMulti != "" {
			if strings.Contains(s, inMulti) {
				inMulti = ""
			}
			continue
		}
		if s == "" || s[0] == '#' {
			continue
		}
		if strings.HasPrefix(s, "[") {
			h := strings.Trim(strings.SplitN(s, "]", 2)[0], "[] \t")
			if strings.HasPrefix(s, "[[") {
				h = strings.Trim(strings.SplitN(s, "]]", 2)[0], "[] \t")
			}
			table = splitKey(h)
			k := strings.Join(table, ".")
			if _, ok := out[k]; !ok {
				out[k] = n + 1
			}
			continue
		}
		eq := strings.Index(s, "=")
		if eq < 0 {
			continue
		}
		key := append(append([]string(nil), table...), splitKey(s[:eq])...)
		k := strings.Join(key, ".")
		if _, ok := out[k]; !ok {
			out[k] = n + 1
		}
		val := strings.TrimSpace(s[eq+1:])
		for _, q := range []string{`"""`, `'''`} {
			if strings.HasPrefix(val, q) && !strings.Contains(val[3:], q) {
				inMulti = q
			}
		}
		if strings.HasPrefix(val, "{") {
			for _, part := range strings.Split(strings.Trim(val, "{} "), ",") {
				if i := strings.Index(part, "="); i > 0 {
					sub := k + "." + strings.Join(splitKey(part[:i]), ".")
					if _, ok := out[sub]; !ok {
						out[sub] = n + 1
					}
				}
			}
		}
	}
	return out
}

func splitKey(s string) []string {
	var parts []string
	for _, p := range strings.Split(s, ".") {
		p = strings.TrimSpace(p)
		p = strings.Trim(p, `"'`)
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}
