package store

import (
	"errors"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdLogger builds the zap logger for an embedded member. etcd reports
// its own listeners closing during a clean shutdown as errors; those lines
// are dropped so that a Ctrl-C does not look like a crash.
func etcdLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, errors.New("store: bad etcd log level " + level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), lvl)
	return zap.New(shutdownFilter{core}), nil
}

type shutdownFilter struct{ zapcore.Core }

func (f shutdownFilter) With(fields []zapcore.Field) zapcore.Core {
	return shutdownFilter{f.Core.With(fields)}
}

func (f shutdownFilter) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if f.Enabled(e.Level) {
		return ce.AddCore(e, f)
	}
	return ce
}

func (f shutdownFilter) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if strings.Contains(e.Message, "setting up serving from embedded etcd failed") {
		for _, fl := range fields {
			if fl.Key != "error" {
				continue
			}
			if err, ok := fl.Interface.(error); ok && (strings.Contains(err.Error(), "closed") || strings.Contains(err.Error(), "Server closed")) {
				return nil
			}
		}
	}
	return f.Core.Write(e, fields)
}
