package dashboard_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardInChromium is issue 19's walk-through, in a real browser
// against a real `pier up` running the sample app: every check reads what
// Chromium rendered.
func TestDashboardInChromium(t *testing.T) {
	p := startUp(t)
	p.pier("create", "hello")
	p.pier("deploy", "-a", "hello", "../examples/hello")
	ctx := newBrowser(t)

	// A wrong key is refused, and nothing of the cluster shows.
	navigate(t, ctx, p.url("/"))
	run(t, ctx, "the sign-in form", chromedp.WaitVisible(chromedp.CSS("#key")))
	screenshot(t, ctx, "signin")
	run(t, ctx, "sign in with a wrong key",
		chromedp.SendKeys(chromedp.CSS("#key"), "pier_0123456789ab_"+strings.Repeat("0", 48)),
		chromedp.Click(chromedp.CSS("#signin-form button")))
	waitJS(t, ctx, "the wrong key refused", 10*time.Second,
		`document.querySelector('#signin-error').textContent.includes('not valid') && !document.querySelector('#nav').checkVisibility()`)
	status := evalJS[int](t, ctx, `fetch('/v1/apps').then(r => r.status)`)
	if status != 401 {
		t.Fatalf("the API after a refused sign-in answered %d, want 401", status)
	}

	// The right key signs in; the sample app is listed.
	run(t, ctx, "sign in with the key",
		setValue("#key", ""),
		chromedp.SendKeys(chromedp.CSS("#key"), p.key),
		chromedp.Click(chromedp.CSS("#signin-form button")))
	waitJS(t, ctx, "the apps list with the sample app", 15*time.Second,
		`!!document.querySelector('#apps tr[data-app="hello"] a') && document.querySelector('#nav').checkVisibility()`)
	if evalJS[bool](t, ctx, `document.cookie.includes('pier_session')`) {
		t.Fatal("the session cookie is readable by the page's scripts; it must be HttpOnly")
	}
	screenshot(t, ctx, "apps")

	// Scale web to 3 and see three jobs running.
	run(t, ctx, "open the app", clickJS(`#apps tr[data-app="hello"] a`))
	waitJS(t, ctx, "the app page's formation", 15*time.Second, `!!document.querySelector('#scale-web')`)
	run(t, ctx, "scale web to 3",
		setValue("#scale-web", "3"),
		clickJS("#scale-btn-web"))
	waitJS(t, ctx, "three web jobs running", 60*time.Second,
		`document.querySelectorAll('#jobs tr[data-type="web"][data-state="running"]').length === 3`)
	if out := p.pier("scale", "-a", "hello"); strings.TrimSpace(out) != "web=3" {
		t.Fatalf("pier scale after scaling in the page: %q", out)
	}

	// Change a config var and see the new release.
	run(t, ctx, "set GREETING",
		chromedp.SendKeys(chromedp.CSS("#env-key"), "GREETING"),
		chromedp.SendKeys(chromedp.CSS("#env-value"), "hello from the dashboard"),
		chromedp.Click(chromedp.CSS("#env-set")))
	waitJS(t, ctx, "release v2 with GREETING", 30*time.Second,
		`!!document.querySelector('#releases tr[data-version="2"][data-current]') &&
		 document.querySelector('#releases tr[data-version="2"]').textContent.includes('+GREETING') &&
		 !!document.querySelector('#config tr[data-var="GREETING"]')`)
	screenshot(t, ctx, "app")

	// Roll back to v1: a new release, v3, without GREETING.
	run(t, ctx, "roll back to v1", clickJS(`#releases [data-rollback="1"]`))
	waitJS(t, ctx, "release v3 current, GREETING gone", 30*time.Second,
		`!!document.querySelector('#releases tr[data-version="3"][data-current]') && !document.querySelector('#config tr[data-var="GREETING"]')`)
	if out := p.pier("env", "-a", "hello"); strings.Contains(out, "GREETING") {
		t.Fatalf("pier env after the rollback in the page still has GREETING:\n%s", out)
	}

	// Follow the logs and see a line the app has just printed: python's
	// server logs each request it answers, path included.
	run(t, ctx, "follow the logs", chromedp.Click(chromedp.CSS("#log-follow")))
	waitJS(t, ctx, "the log stream open", 15*time.Second, `document.querySelector('#log').dataset.following === '1'`)
	marker := fmt.Sprintf("/dashboard-marker-%d", time.Now().UnixNano())
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p.getApp("hello", marker)
		if evalJS[bool](t, ctx, fmt.Sprintf(`document.querySelector('#log').textContent.includes(%q)`, marker)) {
			break
		}
		if time.Now().After(deadline) {
			log := evalJS[string](t, ctx, `document.querySelector('#log').textContent`)
			t.Fatalf("the request for %s never showed in the followed logs:\n%s", marker, tail(log, 2000))
		}
		<-tick.C
	}
	screenshot(t, ctx, "logs")

	// A change made with the CLI shows in the open page, with no reload
	// (the page learns it from the events stream).
	p.pier("env", "set", "-a", "hello", "FROM_CLI=yes")
	waitJS(t, ctx, "the CLI's config var in the open page", 10*time.Second,
		`!!document.querySelector('#config tr[data-var="FROM_CLI"]') && !!document.querySelector('#releases tr[data-version="4"][data-current]')`)

	// A domain with its own certificate, added with the CLI: the page
	// says until when the certificate is valid (routes are not in the
	// events stream, so the page is opened again).
	certFile, keyFile := selfSignedCert(t, "shop.example.com", time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))
	p.pier("routes", "add", "http", "shop.example.com", "-a", "hello", "--cert", certFile, "--key", keyFile)
	navigate(t, ctx, p.url("/?again#/apps/hello"))
	waitJS(t, ctx, "the domain with its certificate's expiry", 15*time.Second,
		`[...document.querySelectorAll('#routes tr')].some(tr => tr.textContent.includes('shop.example.com') && tr.querySelector('.tls').textContent.includes('valid until 2031-01-02'))`)

	// On a phone's screen the page is one column, nothing wider than the
	// screen (wide tables scroll inside their cards).
	run(t, ctx, "a phone's screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	phone := `window.innerWidth <= 400 && document.documentElement.scrollWidth <= window.innerWidth && !!document.querySelector('#scale-web')`
	if !evalJS[bool](t, ctx, `new Promise(r => requestAnimationFrame(() => r(true)))`) || !evalJS[bool](t, ctx, phone) {
		// Say which elements stick out, to fix the styles.
		wide := evalJS[string](t, ctx, `[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
			.slice(0, 10).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join('\n')`)
		t.Fatalf("on a phone's screen the page is wider than the screen; these stick out:\n%s", wide)
	}
	screenshot(t, ctx, "phone")
	run(t, ctx, "back to a laptop's screen", chromedp.EmulateReset())

	// A change without the session's CSRF token is refused, even from
	// the page's own origin.
	status = evalJS[int](t, ctx, `fetch('/v1/apps/hello/formation', {method: 'PATCH', headers: {'Content-Type': 'application/json'}, body: '{"processes":{"web":0}}'}).then(r => r.status)`)
	if status != 403 {
		t.Fatalf("a change without the CSRF token answered %d, want 403", status)
	}

	// The cluster: drain the host from the page and see it draining.
	run(t, ctx, "open the cluster view", chromedp.Click(chromedp.CSS(`#nav a[href="#/cluster"]`)))
	waitJS(t, ctx, "the host with its bars", 15*time.Second, `!!document.querySelector('#hosts tr[data-host] .bar')`)
	run(t, ctx, "drain the host", clickJS(`#hosts [data-drain]`))
	waitJS(t, ctx, "the host draining", 15*time.Second, `!!document.querySelector('#hosts tr[data-draining="1"] [data-undrain]')`)
	if out := p.pier("hosts"); !strings.Contains(out, "draining") {
		t.Fatalf("pier hosts after a drain in the page:\n%s", out)
	}
	screenshot(t, ctx, "cluster")
	// And undrained with the CLI: the page follows.
	host := evalJS[string](t, ctx, `document.querySelector('#hosts tr[data-host]').dataset.host`)
	p.pier("hosts", "undrain", host)
	waitJS(t, ctx, "the host no longer draining", 15*time.Second, `!!document.querySelector('#hosts tr[data-draining="0"] [data-drain]')`)

	run(t, ctx, "open the event feed", chromedp.Click(chromedp.CSS(`#nav a[href="#/events"]`)))
	waitJS(t, ctx, "events in the feed", 10*time.Second, `document.querySelectorAll('#feed li a').length > 0`)
	screenshot(t, ctx, "events")

	// Sign out: the session is over for the API too.
	run(t, ctx, "sign out", chromedp.Click(chromedp.CSS("#logout")))
	waitJS(t, ctx, "the sign-in form again", 10*time.Second, `document.querySelector('#signin').checkVisibility()`)
	status = evalJS[int](t, ctx, `fetch('/v1/apps').then(r => r.status)`)
	if status != 401 {
		t.Fatalf("the API after signing out answered %d, want 401", status)
	}

	// `pier dashboard`'s URL signs in, once.
	u := strings.TrimSpace(p.pier("dashboard", "--no-open"))
	if !strings.HasPrefix(u, p.url("/dashboard/login?token=")) {
		t.Fatalf("pier dashboard printed %q", u)
	}
	navigate(t, ctx, u)
	waitJS(t, ctx, "signed in by the one-time URL", 15*time.Second,
		`!!document.querySelector('#apps tr[data-app="hello"]') && document.querySelector('#nav').checkVisibility()`)
	run(t, ctx, "sign out again", chromedp.Click(chromedp.CSS("#logout")))
	waitJS(t, ctx, "the sign-in form again", 10*time.Second, `document.querySelector('#signin').checkVisibility()`)
	navigate(t, ctx, u)
	waitJS(t, ctx, "the used URL refused", 10*time.Second,
		`document.querySelector('#signin').checkVisibility() && document.querySelector('#signin-error').textContent.includes('has been used')`)
}
