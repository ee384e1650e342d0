package config

import (
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger builds the zap logger the Log section describes, writing to stderr.
// An unset level means info.
func (l Log) Logger() (*zap.Logger, error) {
	var lvl zapcore.Level
	if l.Level == "" {
		l.Level = "info"
	}
	if err := lvl.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, &Error{Key: "log.level", Msg: err.Error()}
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	// Durations as people write them ("5s", "1000h0m0s"), not as float
	// seconds.
	ec.EncodeDuration = zapcore.StringDurationEncoder
	var enc zapcore.Encoder
	if l.Format == "json" {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl)), nil
}
