package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store/storetest"
)

func TestConnectRegisterWatch(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	creds := c.Credentials()
	cl, err := client.Connect(client.Config{Endpoints: c.Endpoints(), CredentialsDir: creds.Dir})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := cl.Discovery.Watch(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Type != discovery.EventCurrent || len(ev.Instances) != 0 {
		t.Fatalf("first event %+v", ev)
	}
	reg, err := cl.Discovery.Register(ctx, "api", discovery.Instance{Addr: "127.0.0.1:9000"})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for ev := range events {
		if ev.Type == discovery.EventUp {
			if ev.Instance.Addr != "127.0.0.1:9000" {
				t.Fatalf("up for %+v", ev.Instance)
			}
			return
		}
	}
	t.Fatal("no up event")
}

func TestConnectNeedsCredentials(t *testing.T) {
	if _, err := client.Connect(client.Config{Endpoints: []string{"https://127.0.0.1:1"}}); err == nil {
		t.Fatal("connected without credentials")
	}
	if _, err := client.Connect(client.Config{Endpoints: []string{"https://127.0.0.1:1"}, CredentialsDir: t.TempDir()}); err == nil {
		t.Fatal("connected with an empty credentials directory")
	}
}
