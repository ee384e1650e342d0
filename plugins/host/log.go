package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zapio"
)

// zapHclog is an hclog.Logger that writes into a zap logger: go-plugin's
// own diagnostics go through it.
type zapHclog struct {
	z       *zap.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*zapHclog)(nil)

func newZapHclog(z *zap.Logger) hclog.Logger { return &zapHclog{z: z} }

func zapLevel(l hclog.Level) zapcore.Level {
	switch {
	case l <= hclog.Info: // go-plugin's own chatter (mTLS set-up, starts) is debug
		return zapcore.DebugLevel
	case l == hclog.Warn:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

// kvFields turns hclog's alternating keys and values into zap fields.
func kvFields(args []any) []zap.Field {
	fields := make([]zap.Field, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		if i+1 == len(args) {
			fields = append(fields, zap.Any("EXTRA_VALUE_AT_END", args[i]))
			break
		}
		fields = append(fields, zap.Any(key, args[i+1]))
	}
	return fields
}

func (l *zapHclog) Log(_ hclog.Level, msg string, args ...any) {
	// go-plugin's own reports are debug whatever their level: each failure
	// it logs also reaches the caller, as Start's error or as the session's
	// end (logged as "plugin session lost"), and saying it twice, in
	// go-plugin's words, breaks "one line on stderr".
	if ce := l.z.Check(zapcore.DebugLevel, msg); ce != nil {
		ce.Write(kvFields(args)...)
	}
}

func (l *zapHclog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *zapHclog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *zapHclog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *zapHclog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *zapHclog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *zapHclog) IsTrace() bool { return l.z.Core().Enabled(zapcore.DebugLevel) }
func (l *zapHclog) IsDebug() bool { return l.z.Core().Enabled(zapcore.DebugLevel) }
func (l *zapHclog) IsInfo() bool  { return l.z.Core().Enabled(zapcore.InfoLevel) }
func (l *zapHclog) IsWarn() bool  { return l.z.Core().Enabled(zapcore.WarnLevel) }
func (l *zapHclog) IsError() bool { return l.z.Core().Enabled(zapcore.ErrorLevel) }

func (l *zapHclog) ImpliedArgs() []any { return l.implied }

func (l *zapHclog) With(args ...any) hclog.Logger {
	implied := append(append([]any(nil), l.implied...), args...)
	return &zapHclog{z: l.z.With(kvFields(args)...), name: l.name, implied: implied}
}

func (l *zapHclog) Name() string { return l.name }

func (l *zapHclog) Named(name string) hclog.Logger {
	full := name
	if l.name != "" {
		full = l.name + "." + name
	}
	return &zapHclog{z: l.z.Named(name), name: full, implied: l.implied}
}

func (l *zapHclog) ResetNamed(name string) hclog.Logger { return l.Named(name) }

func (l *zapHclog) SetLevel(hclog.Level) {} // zap levels are set where the logger is built

func (l *zapHclog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *zapHclog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &zapio.Writer{Log: l.z, Level: zapcore.InfoLevel}
}

// maxLogLine is the longest stderr line bridged whole; the rest of a longer
// line is dropped, and the line is logged as text.
const maxLogLine = 64 << 10

// maxLogFields bounds the fields taken from one JSON line.
const maxLogFields = 64

// bridgeStderr logs a plugin's stderr into z until r ends: hclog JSON lines
// as structured entries, anything else (text, malformed or hostile JSON,
// over-long lines) as text. It never panics on what it reads, unlike
// go-plugin's own parser, which asserts that "@message" is a string.
func bridgeStderr(r io.Reader, z *zap.Logger) {
	br := bufio.NewReaderSize(r, 4096)
	var line []byte
	truncated := false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= maxLogLine {
			line = append(line, chunk...)
		} else {
			line = append(line, chunk[:maxLogLine-len(line)]...)
			truncated = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(line) > 0 {
			logLine(z, bytes.TrimRight(line, "\r\n"), truncated)
		}
		line, truncated = line[:0], false
		if err != nil {
			return
		}
	}
}

func logLine(z *zap.Logger, line []byte, truncated bool) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if !truncated && line[0] == '{' {
		if msg, level, fields, ok := parseHclogJSON(line); ok {
			if ce := z.Check(level, msg); ce != nil {
				ce.Write(fields...)
			}
			return
		}
	}
	text := string(line)
	level := zapcore.InfoLevel
	switch {
	case strings.HasPrefix(text, "[TRACE]"), strings.HasPrefix(text, "[DEBUG]"):
		level = zapcore.DebugLevel
	case strings.HasPrefix(text, "[WARN]"):
		level = zapcore.WarnLevel
	case strings.HasPrefix(text, "[ERROR]"), strings.HasPrefix(text, "panic: "):
		level = zapcore.ErrorLevel
	}
	if ce := z.Check(level, text); ce != nil {
		if truncated {
			ce.Write(zap.Bool("truncated", true))
		} else {
			ce.Write()
		}
	}
}

// parseHclogJSON reads one hclog JSON line; ok is false unless it is an
// object whose "@message" and "@level" (when present) are strings.
func parseHclogJSON(line []byte) (msg string, level zapcore.Level, fields []zap.Field, ok bool) {
	var raw map[string]any
	if err := json.Unmarshal(line, &raw); err != nil {
		return "", 0, nil, false
	}
	msg, ok = raw["@message"].(string)
	if !ok {
		return "", 0, nil, false
	}
	level = zapcore.InfoLevel
	if v, present := raw["@level"]; present {
		s, isString := v.(string)
		if !isString {
			return "", 0, nil, false
		}
		level = zapLevel(hclog.LevelFromString(s))
		if hclog.LevelFromString(s) == hclog.NoLevel {
			level = zapcore.InfoLevel
		}
	}
	for k, v := range raw {
		switch k {
		case "@message", "@level", "@timestamp", "@caller":
			continue
		case "@module":
			k = "module"
		}
		if len(fields) == maxLogFields {
			fields = append(fields, zap.Bool("fields_truncated", true))
			break
		}
		fields = append(fields, zap.Any(k, v))
	}
	return msg, level, fields, true
}

// lineWriter logs what a plugin writes to its redirected os.Stdout or
// os.Stderr (go-plugin's SyncStdout/SyncStderr) as text, line by line.
type lineWriter struct {
	z   *zap.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLogLine {
				logLine(w.z, w.buf[:maxLogLine], true)
				w.buf = w.buf[:0]
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		if len(w.buf) > maxLogLine {
			logLine(w.z, w.buf[:maxLogLine], true)
		} else {
			logLine(w.z, w.buf, false)
		}
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}
