package store

import (
	"errors"
	"fmt"
	"strings"
)

// The keyspace: one prefix per object, each ending in '/' so that a prefix
// never matches a sibling (/pier/apps/ vs /pier/apps-old/).
const (
	Root               = "/pier/"
	HostsPrefix        = "/pier/hosts/"              // <host>
	AppsPrefix         = "/pier/apps/"               // <app>
	ReleasesPrefix     = "/pier/releases/"           // <release>
	FormationsPrefix   = "/pier/formations/"         // <app>
	JobsPrefix         = "/pier/jobs/"               // <host>/<job>: spec + desired state
	JobStatusPrefix    = "/pier/job-status/"         // <job>: observed state
	ServicesPrefix     = "/pier/services/"           // <service>/<instance>
	RoutesPrefix       = "/pier/routes/"             // <route>
	RouteIndexPrefix   = "/pier/route-index/"        // http/<domain><path>, tcp/<port>: the route that owns it
	DeploymentsPrefix  = "/pier/deployments/"        // <deployment>: the new release's id
	APIKeysPrefix      = "/pier/api-keys/"           // <key id>: the controller's API keys
	BuildsPrefix       = "/pier/builds/"             // <build>
	BuildSecretsPrefix = "/pier/build-secrets/"      // <build>: the hash of the build job's token
	SSHKeysPrefix      = "/pier/ssh-keys/"           // <key id>: public keys that may git push
	HostDrainsPrefix   = "/pier/host-drains/"        // <host>: a host being emptied for maintenance
	VolumesPrefix      = "/pier/volumes/"            // <volume>: spec, binding to a host, removal mark
	VolumeStatusPrefix = "/pier/volume-status/"      // <volume>: observed state, by its host's agent
	ResourcesPrefix    = "/pier/resources/"          // <resource>: a datastore, its attachments, its state
	ResourceSecrets    = "/pier/resource-secrets/"   // <resource>: its passwords; servers only, never listed
	ResourceBackups    = "/pier/resource-backups/"   // <backup>: a database dump in the blobstore, its state
	BackupJobSecrets   = "/pier/backup-jobs/"        // <job>: the hash of a backup or restore job's token
	RouterStickyKey    = "/pier/router/sticky-key"   // signs sticky-session cookies, shared by every router
	GitHostKey         = "/pier/gitreceive/host-key" // the git receivers' shared SSH host key (PEM)
	DashboardSessions  = "/pier/dashboard-sessions/" // session/<hash>, ticket/<hash>: dashboard sign-ins, on leases
)

// The keys of the image registry (package registry): what belongs to which
// repository. The bytes of blobs and manifests are in the blobstore.
const (
	RegistryBlobsPrefix     = "/pier/registry-blobs/"     // <repo>/<sha256 hex>: a blob linked into a repository
	RegistryManifestsPrefix = "/pier/registry-manifests/" // <repo>/<sha256 hex>: a manifest of a repository
	RegistryTagsPrefix      = "/pier/registry-tags/"      // <repo>/<tag>: the digest a tag names
)

// The keys of rolling upgrades of pier itself (package upgrade).
const (
	UpgradesPrefix   = "/pier/upgrades/"    // <upgrade>: the record the elected upgrade loop drives
	NodesPrefix      = "/pier/nodes/"       // <kind>/<name>: a running daemon, its binary and version; on its lease
	NodeOrdersPrefix = "/pier/node-orders/" // <kind>/<name>: the upgrade loop's signed order to one daemon
)

// The keys of scheduled cluster backups.
const (
	ClusterBackupSchedulesPrefix = "/pier/cluster-backup-schedules/" // <name>: a schedule, by the controller's API
	ClusterBackupStatusPrefix    = "/pier/cluster-backup-status/"    // <name>: what the elected backup loop did for it
)

// The keys of job networking (package host/jobnet).
const (
	NetNodesPrefix     = "/pier/net/nodes/"     // <node>: its subnet of the cluster range, for good
	NetSubnetsPrefix   = "/pier/net/subnets/"   // <a.b.c.d-bits>: the node that holds the subnet
	NetEndpointsPrefix = "/pier/net/endpoints/" // <host>/<job>: a running job's address and app
	NetAccessPrefix    = "/pier/net/access/"    // <app>/<from>: from's jobs may reach app's
)

// ErrBadKey reports a key part that would change the key's shape.
var ErrBadKey = errors.New("store: bad key")

// Key joins parts under prefix: Key(JobsPrefix, host, job). A part may be
// neither empty nor contain '/', so that a user-supplied id can never reach
// into another object's subtree.
func Key(prefix string, parts ...string) (string, error) {
	if len(parts) == 0 {
		return "", fmt.Errorf("%w: no parts under %q", ErrBadKey, prefix)
	}
	for _, p := range parts {
		if p == "" || strings.Contains(p, "/") {
			return "", fmt.Errorf("%w: part %q under %q", ErrBadKey, p, prefix)
		}
	}
	return strings.TrimSuffix(prefix, "/") + "/" + strings.Join(parts, "/"), nil
}

// Prefix is Key with a trailing '/': the prefix of a subtree, such as one
// host's jobs, to List or cache without matching host10 for host1.
func Prefix(prefix string, parts ...string) (string, error) {
	k, err := Key(prefix, parts...)
	if err != nil {
		return "", err
	}
	return k + "/", nil
}
