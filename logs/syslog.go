package logs

import (
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// Drains get each line as an RFC 5424 syslog message, framed by octet
// counting (RFC 6587 section 3.4.1, as RFC 5425 does for TLS):
//
//	LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD SP MSG
//	87 <190>1 2026-12-02T07:00:00.000000Z hello app web.hello-web-1 - - GET / 200
//
// as Heroku's drains do, but with the structured-data field RFC 5424
// requires (NILVALUE): HOSTNAME is the app, APP-NAME the source ("app",
// "pier"), PROCID the dyno ("web.JOBID", "router"). The facility is
// local7; stdout is info, stderr err and platform lines notice. MSG is
// the line's text as it is (UTF-8, no BOM: MSG-ANY).

const (
	facilityLocal7 = 23
	sevErr         = 3
	sevNotice      = 5
	sevInfo        = 6
	// Field limits of RFC 5424.
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
)

// SyslogMessage formats a line as an RFC 5424 message, without framing.
func SyslogMessage(l *api.AppLogLine) []byte {
	sev := sevInfo
	switch {
	case l.Source == api.LogSourcePier:
		sev = sevNotice
	case l.Stream == "stderr":
		sev = sevErr
	}
	b := make([]byte, 0, 96+len(l.Text))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facilityLocal7*8+sev), 10)
	b = append(b, ">1 "...)
	t := l.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = appendField(b, l.App, maxHostname)
	b = append(b, ' ')
	b = appendField(b, l.Source, maxAppName)
	b = append(b, ' ')
	b = appendField(b, l.Dyno(), maxProcID)
	b = append(b, " - - "...) // MSGID, STRUCTURED-DATA
	b = append(b, l.Text...)
	return b
}

// appendField appends a header field: printable US-ASCII only, at most
// max bytes, "-" (NILVALUE) when empty.
func appendField(b []byte, s string, max int) []byte {
	if s == "" {
		return append(b, '-')
	}
	if len(s) > max {
		s = s[:max]
	}
	return append(b, strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)...)
}

// frame prefixes a message with its length (octet-counting framing).
func frame(msg []byte) []byte {
	b := make([]byte, 0, len(msg)+8)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}
