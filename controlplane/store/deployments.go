package store

import (
	"encoding/json"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cameleer/cameleer/api"
)

var (
	bDeployments = []byte("deployments")
	bApps        = []byte("apps")
)

// Deployment is one request to run an app in an environment on a runner:
// an artifact to build, or (a promotion) an image the runner already has.
type Deployment struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	Environment string `json:"environment"`
	App         string `json:"app"`
	Runner      string `json:"runner"`
	Artifact    string `json:"artifact,omitempty"`
	// Image is the image by digest, once built (or, promoted, from the
	// start).
	Image        string    `json:"image,omitempty"`
	PromotedFrom string    `json:"promotedFrom,omitempty"`
	Replicas     int       `json:"replicas"`
	Port         int       `json:"port"`
	Phase        string    `json:"phase"`
	Reason       string    `json:"reason,omitempty"`
	URL          string    `json:"url,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
}

// App is an app in an environment: where it runs and what its latest
// deployment made of it.
type App struct {
	Tenant      string `json:"tenant"`
	Environment string `json:"environment"`
	Name        string `json:"name"`
	Runner      string `json:"runner"`
	// Deployment is the latest deployment's ID; Phase, Reason and Image
	// are its.
	Deployment string `json:"deployment"`
	Artifact   string `json:"artifact,omitempty"`
	Image      string `json:"image,omitempty"`
	Replicas   int    `json:"replicas"`
	Port       int    `json:"port"`
	Phase      string `json:"phase"`
	Reason     string `json:"reason,omitempty"`
	URL        string `json:"url,omitempty"`
	// Running is the image the app last ran successfully, by
	// RunningDeployment: what a promotion copies. Artifact, Replicas and
	// Port are that deployment's once one ran.
	Running           string    `json:"running,omitempty"`
	RunningDeployment string    `json:"runningDeployment,omitempty"`
	Updated           time.Time `json:"updated"`
}

func deploymentKey(tenant, id string) string { return tenant + "/" + id }

func appKey(tenant, env, name string) string { return tenant + "/" + env + "/" + name }

// CreateDeployment records a deployment and makes it its app's latest, in
// one transaction.
func (s *Store) CreateDeployment(d Deployment) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		deps, err := tx.CreateBucketIfNotExists(bDeployments)
		if err != nil {
			return err
		}
		apps, err := tx.CreateBucketIfNotExists(bApps)
		if err != nil {
			return err
		}
		if deps.Get([]byte(deploymentKey(d.Tenant, d.ID))) != nil {
			return ErrExists
		}
		if err := put(deps, deploymentKey(d.Tenant, d.ID), d); err != nil {
			return err
		}
		key := appKey(d.Tenant, d.Environment, d.App)
		a, err := get[App](apps, key)
		if err != nil && err != ErrNotFound {
			return err
		}
		a.Tenant, a.Environment, a.Name = d.Tenant, d.Environment, d.App
		a.Runner, a.Deployment = d.Runner, d.ID
		if a.Running == "" {
			// Until a version runs, the app is what it is being made of;
			// after, what runs (a failed deployment changes nothing).
			a.Artifact, a.Replicas, a.Port = d.Artifact, d.Replicas, d.Port
		}
		// URL stays: the app answers there until the new version replaces it.
		a.Phase, a.Reason, a.Image, a.Updated = d.Phase, d.Reason, d.Image, d.Updated
		return put(apps, key, a)
	})
}

// UpdateDeployment changes a deployment and, when it is still its app's
// latest, the app, in one transaction.
func (s *Store) UpdateDeployment(tenant, id string, change func(*Deployment) error) (Deployment, error) {
	var d Deployment
	err := s.db.Update(func(tx *bolt.Tx) error {
		deps := tx.Bucket(bDeployments)
		if deps == nil {
			return ErrNotFound
		}
		var err error
		if d, err = get[Deployment](deps, deploymentKey(tenant, id)); err != nil {
			return err
		}
		if err := change(&d); err != nil {
			return err
		}
		d.Updated = time.Now().UTC()
		if err := put(deps, deploymentKey(tenant, id), d); err != nil {
			return err
		}
		apps := tx.Bucket(bApps)
		key := appKey(d.Tenant, d.Environment, d.App)
		a, err := get[App](apps, key)
		if err != nil || a.Deployment != d.ID {
			return nil
		}
		a.Phase, a.Reason, a.Image, a.URL, a.Updated = d.Phase, d.Reason, d.Image, d.URL, d.Updated
		if d.Phase == api.PhaseRunning {
			a.Running, a.RunningDeployment = d.Image, d.ID
			a.Artifact, a.Replicas, a.Port = d.Artifact, d.Replicas, d.Port
		}
		return put(apps, key, a)
	})
	return d, err
}

// Deployment reads one deployment.
func (s *Store) Deployment(tenant, id string) (d Deployment, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeployments)
		if b == nil {
			return ErrNotFound
		}
		d, err = get[Deployment](b, deploymentKey(tenant, id))
		return err
	})
	return d, err
}

// Deployments lists deployments, oldest first, that keep says to.
func (s *Store) Deployments(tenant string, keep func(Deployment) bool) ([]Deployment, error) {
	var out []Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bDeployments)
		if b == nil {
			return nil
		}
		return scan(b, tenant, func(d Deployment) {
			if keep(d) {
				out = append(out, d)
			}
		})
	})
	return out, err
}

// App reads an app in an environment.
func (s *Store) App(tenant, env, name string) (a App, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bApps)
		if b == nil {
			return ErrNotFound
		}
		a, err = get[App](b, appKey(tenant, env, name))
		return err
	})
	return a, err
}

// Apps lists the apps of a tenant's environment.
func (s *Store) Apps(tenant, env string) ([]App, error) {
	out := []App{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bApps)
		if b == nil {
			return nil
		}
		return scan(b, tenant+"/"+env, func(a App) { out = append(out, a) })
	})
	return out, err
}

// scan decodes every value under prefix+"/", in key order.
func scan[T any](b *bolt.Bucket, prefix string, f func(T)) error {
	p := []byte(prefix + "/")
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && strings.HasPrefix(string(k), string(p)); k, v = c.Next() {
		var t T
		if err := json.Unmarshal(v, &t); err != nil {
			return err
		}
		f(t)
	}
	return nil
}
