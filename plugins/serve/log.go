package serve

import (
	"sort"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap/zapcore"
)

// hclogCore writes a backend's zap logs through the plugin's hclog logger,
// so every line on stderr is one hclog JSON object the host can parse.
type hclogCore struct {
	log    hclog.Logger
	fields []zapcore.Field
}

func newHclogCore(log hclog.Logger) zapcore.Core { return &hclogCore{log: log} }

func (c *hclogCore) Enabled(l zapcore.Level) bool {
	switch {
	case l < zapcore.InfoLevel:
		return c.log.IsDebug()
	case l < zapcore.WarnLevel:
		return c.log.IsInfo()
	case l < zapcore.ErrorLevel:
		return c.log.IsWarn()
	default:
		return c.log.IsError()
	}
}

func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	all := make([]zapcore.Field, 0, len(c.fields)+len(fields))
	all = append(append(all, c.fields...), fields...)
	return &hclogCore{log: c.log, fields: all}
}

func (c *hclogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *hclogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys)+2)
	if e.LoggerName != "" {
		args = append(args, "logger", e.LoggerName)
	}
	for _, k := range keys {
		args = append(args, k, enc.Fields[k])
	}
	level := hclog.Error
	switch {
	case e.Level < zapcore.InfoLevel:
		level = hclog.Debug
	case e.Level < zapcore.WarnLevel:
		level = hclog.Info
	case e.Level < zapcore.ErrorLevel:
		level = hclog.Warn
	}
	c.log.Log(level, e.Message, args...)
	return nil
}

func (c *hclogCore) Sync() error { return nil }
