package client

import (
	"net/http"
	"testing"
)

// The proxy variables of the user's environment are not used for the
// cluster's servers; WithProxy names one that is.
func TestProxy(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://corporate-proxy.invalid:3128")
	t.Setenv("NO_PROXY", "")
	c, err := NewController("https://pier.example.com:7300", "key", nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://pier.example.com:7300/v1/apps", nil)
	if p := c.hc.Transport.(*http.Transport).Proxy; p != nil {
		u, _ := p(req)
		t.Errorf("the client uses the proxy %v from the environment", u)
	}
	c, err = NewController("https://pier.example.com:7300", "key", nil, WithProxy("http://pier-proxy.example.com:3128"))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := c.hc.Transport.(*http.Transport).Proxy(req); err != nil || u == nil || u.Host != "pier-proxy.example.com:3128" {
		t.Errorf("proxy with WithProxy = %v, %v", u, err)
	}
	if _, err := NewController("https://pier.example.com:7300", "key", nil, WithProxy("pier-proxy:3128")); err == nil {
		t.Error("a proxy without a scheme was taken")
	}
}
