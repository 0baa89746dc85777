package storetest

import (
	"context"
	"testing"
	"time"
)

func TestClusterSurvivesLeaderLoss(t *testing.T) {
	c := NewCluster(t, 3)
	cli := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "/k", "1"); err != nil {
		t.Fatal(err)
	}
	leader := c.Leader()
	c.Stop(leader)
	if _, err := cli.Put(ctx, "/k", "2"); err != nil {
		t.Fatalf("write after leader loss: %v", err)
	}
	c.Restart(leader)
	resp, err := c.ClientOf(c.Endpoints()[leader]).Get(ctx, "/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "2" {
		t.Fatalf("restarted member reads %v, want 2", resp.Kvs)
	}
}
