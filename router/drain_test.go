package router

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// A minimal RFC 6455 websocket: the real handshake, and single unfragmented
// frames of under 126 bytes, which is all an echo test needs.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func wsWriteFrame(w io.Writer, payload []byte, mask bool) error {
	if len(payload) > 125 {
		return errors.New("frame too long for this test")
	}
	hdr := []byte{0x81, byte(len(payload))} // FIN, text
	if !mask {
		_, err := w.Write(append(hdr, payload...))
		return err
	}
	hdr[1] |= 0x80
	var key [4]byte
	rand.Read(key[:])
	out := append(hdr, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	_, err := w.Write(out)
	return err
}

func wsReadFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[1] & 0x7f)
	if n > 125 {
		return nil, errors.New("frame too long for this test")
	}
	var key [4]byte
	masked := hdr[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return nil, err
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, err
	}
	if masked {
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return p, nil
}

// wsEcho is a websocket backend that echoes every frame.
func wsEcho(w nethttp.ResponseWriter, r *nethttp.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("Sec-WebSocket-Version") != "13" {
		nethttp.Error(w, "websocket only", nethttp.StatusUpgradeRequired)
		return
	}
	conn, rw, err := nethttp.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
	rw.Flush()
	for {
		p, err := wsReadFrame(rw.Reader)
		if err != nil {
			return
		}
		if wsWriteFrame(conn, p, false) != nil {
			return
		}
	}
}

// wsDial opens a websocket to host through the router at addr.
func wsDial(t *testing.T, addr, host string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: "+host+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+key+"\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("handshake: %d, accept %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return conn, br
}

// wsEchoes sends msg and reports whether it came back.
func wsEchoes(conn net.Conn, br *bufio.Reader, msg string) error {
	if err := wsWriteFrame(conn, []byte(msg), true); err != nil {
		return err
	}
	p, err := wsReadFrame(br)
	if err != nil {
		return err
	}
	if string(p) != msg {
		return errors.New("echoed " + string(p))
	}
	return nil
}

func TestProxyWebsocketEcho(t *testing.T) {
	fw := newFakeWatcher()
	_, b := backend(t, "ws", wsEcho)
	fw.add("svc", b)
	var log accessLogBuffer
	_, s := newObservedProxy(t, fw, Config{AccessLog: &log}, route("r1", "ws.test", "", "svc"))
	conn, br := wsDial(t, s.Listener.Addr().String(), "ws.test")
	for _, msg := range []string{"hello", "wörld", strings.Repeat("x", 125)} {
		if err := wsEchoes(conn, br, msg); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	// The access log has the connection once it ends: 101, and the bytes
	// the backend sent (101 headers and three frames).
	l := log.lines(t, 1)[0]
	if l["status"] != 101.0 || l["route"] != "r1" || l["bytes"].(float64) < 2+5+2+6+2+125 {
		t.Errorf("websocket log line %v", l)
	}
}

func TestProxyDrainsUpgradesOfRemovedRoute(t *testing.T) {
	fw := newFakeWatcher()
	_, b := backend(t, "ws", wsEcho)
	fw.add("svc", b)
	short := route("short", "short.test", "", "svc")
	short.DrainTimeout = api.Duration(300 * time.Millisecond)
	dflt := route("dflt", "dflt.test", "", "svc") // Config.DrainTimeout
	back := route("back", "back.test", "", "svc") // removed and restored
	keep := route("keep", "keep.test", "", "svc") // never removed
	p, s := newObservedProxy(t, fw, Config{DrainTimeout: 600 * time.Millisecond}, short, dflt, back, keep)
	addr := s.Listener.Addr().String()
	type ws struct {
		conn net.Conn
		br   *bufio.Reader
	}
	open := map[string]ws{}
	for _, h := range []string{"short.test", "dflt.test", "back.test", "keep.test"} {
		c, br := wsDial(t, addr, h)
		open[h] = ws{c, br}
	}
	if n := p.Upgraded(); n != 4 {
		t.Fatalf("%d upgraded connections tracked, want 4", n)
	}

	removed := time.Now()
	p.SetTable(mustTable(t, keep))
	// Draining, not cut: every connection still works.
	for h, w := range open {
		if err := wsEchoes(w.conn, w.br, "still here"); err != nil {
			t.Fatalf("%s right after removal: %v", h, err)
		}
	}
	// A new upgrade on a removed route is refused: it has no route.
	if code, _, _ := get(t, s, "short.test", "/"); code != 404 {
		t.Fatalf("removed route answers %d", code)
	}
	// "back" returns, unchanged, before its timeout: it keeps its
	// connections.
	p.SetTable(mustTable(t, keep, back))

	closedAfter := func(h string) time.Duration {
		w := open[h]
		w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := wsReadFrame(w.br); err == nil {
			t.Fatalf("%s: unexpected frame", h)
		} else if wsIsTimeout(err) {
			t.Fatalf("%s: not closed within 5s of its route's removal", h)
		}
		return time.Since(removed)
	}
	if d := closedAfter("short.test"); d < 300*time.Millisecond {
		t.Errorf("short.test closed %v after removal, before its 300ms", d)
	}
	if d := closedAfter("dflt.test"); d < 600*time.Millisecond {
		t.Errorf("dflt.test closed %v after removal, before the default 600ms", d)
	}
	time.Sleep(200 * time.Millisecond) // past every timeout
	for _, h := range []string{"back.test", "keep.test"} {
		if err := wsEchoes(open[h].conn, open[h].br, "alive"); err != nil {
			t.Fatalf("%s after the drains: %v", h, err)
		}
	}
	waitFor(t, func() bool { return p.Upgraded() == 2 })

	// Closing the proxy closes the rest.
	p.Close()
	for _, h := range []string{"back.test", "keep.test"} {
		w := open[h]
		w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := wsReadFrame(w.br); err == nil || wsIsTimeout(err) {
			t.Fatalf("%s after Close: %v", h, err)
		}
	}
}

func wsIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
