package cli

import (
	"testing"

	"github.com/pierpaas/pier/internal/cliconfig"
)

// git asks for the key of the server it pushes to: the cluster's URL or
// any of its other servers.
func TestCredentialForAnyServerOfACluster(t *testing.T) {
	cfg := &cliconfig.Config{Clusters: []cliconfig.Cluster{
		{Name: "a", URL: "https://10.0.0.1:7300", Key: "ka", Servers: []string{"https://10.0.0.2:7300"}},
		{Name: "b", URL: "https://10.1.0.1:7300", Key: "kb"},
	}}
	for _, tc := range []struct {
		protocol, host, want string
	}{
		{"https", "10.0.0.1:7300", "ka"},
		{"https", "10.0.0.2:7300", "ka"},
		{"https", "10.1.0.1:7300", "kb"},
		{"http", "10.0.0.1:7300", ""},
		{"https", "10.0.0.3:7300", ""},
	} {
		got, ok := credentialFor(cfg, tc.protocol, tc.host)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s://%s: %q %v, want %q", tc.protocol, tc.host, got, ok, tc.want)
		}
	}
}
