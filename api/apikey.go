package api

import "time"

// APIKey is a key of the controller API as the store keeps it, under
// /pier/api-keys/<id>: only the SHA-256 of the secret is stored, so a
// read of the store does not hand out working keys. A key reads
// "pier_<id>_<secret>"; the id finds the record, the hash checks the
// secret. Several keys are valid at once, which is what makes rotation
// free of downtime: add a key, move clients to it, delete the old one.
type APIKey struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Hash      string    `json:"hash,omitempty"` // hex SHA-256 of the whole key; never sent by the API
	CreatedAt time.Time `json:"created_at"`
}

// NewAPIKey is the answer to creating a key: the only time its secret is
// shown.
type NewAPIKey struct {
	APIKey
	Key string `json:"key"`
}
