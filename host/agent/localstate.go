package agent

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pierpaas/pier/api"
)

// localJob is what the agent remembers about a job it launched.
type localJob struct {
	Job       api.Job `json:"job"`
	HostPorts []int   `json:"host_ports,omitempty"`
	// IP is the job's address in its own network namespace, if it has one.
	IP  string `json:"ip,omitempty"`
	Dir string `json:"dir"`
	// Reported is the last state the agent wrote for the job, so a
	// restarted agent does not report a job's end twice.
	Reported api.JobState `json:"reported"`
	// EndedAt is when the agent saw the job end.
	EndedAt time.Time `json:"ended_at,omitzero"`
}

var jobsBucket = []byte("jobs")

// localState is the agent's bbolt database.
type localState struct{ db *bolt.DB }

func openLocalState(path string) (*localState, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 0})
	if err != nil {
		return nil, fmt.Errorf("agent: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(jobsBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &localState{db: db}, nil
}

func (s *localState) put(j *localJob) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).Put([]byte(j.Job.ID), b)
	})
}

func (s *localState) delete(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).Delete([]byte(id))
	})
}

func (s *localState) all() ([]*localJob, error) {
	var out []*localJob
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).ForEach(func(k, v []byte) error {
			var j localJob
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("agent: corrupt local record %s: %w", k, err)
			}
			out = append(out, &j)
			return nil
		})
	})
	return out, err
}

func (s *localState) close() error { return s.db.Close() }
