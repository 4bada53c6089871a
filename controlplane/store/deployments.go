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
	Phase        api.Phase `json:"phase"`
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
	Deployment string    `json:"deployment"`
	Artifact   string    `json:"artifact,omitempty"`
	Image      string    `json:"image,omitempty"`
	Replicas   int       `json:"replicas"`
	Port       int       `json:"port"`
	Phase      api.Phase `json:"phase"`
	Reason     string    `json:"reason,omitempty"`
	URL        string    `json:"url,omitempty"`
	// Running is the image the app last ran successfully, by
	// RunningDeployment: what a promotion copies. Artifact, Replicas and
	// Port are that deployment's once one ran.
	Running           string `json:"running,omitempty"`
	RunningDeployment string `json:"runningDeployment,omitempty"`
	// Deleting: a delete began and has not finished; the app takes no
	// deployment until it has.
	Deleting bool      `json:"deleting,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Done says whether the deployment has finished, well or not.
func (d Deployment) Done() bool { return api.Done(d.Phase) }

func deploymentKey(tenant, id string) string { return tenant + "/" + id }

func appKey(tenant, env, name string) string { return tenant + "/" + env + "/" + name }

// DeploymentKey names a deployment.
type DeploymentKey struct{ Tenant, ID string }

// CreateDeployment records a deployment of an app, in one transaction with
// the app's record: decide gets the app as it is (exists false: a new app,
// named and placed from d) and refuses d with an error, or makes d the
// app's latest. Of the app's finished deployments in that environment the
// newest keep stay, with the one that runs; older ones are removed.
func (s *Store) CreateDeployment(d Deployment, keep int, decide func(a *App, exists bool) error) error {
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
		key := appKey(d.Tenant, d.Environment, d.App)
		a, err := get[App](apps, key)
		exists := err == nil
		if err != nil && err != ErrNotFound {
			return err
		}
		if !exists {
			a = App{Tenant: d.Tenant, Environment: d.Environment, Name: d.App}
		}
		if err := decide(&a, exists); err != nil {
			return err
		}
		if err := put(deps, deploymentKey(d.Tenant, d.ID), d); err != nil {
			return err
		}
		if err := put(apps, key, a); err != nil {
			return err
		}
		return prune(deps, a, keep)
	})
}

// prune removes the app's finished deployments past the newest keep, but
// never the one that runs.
func prune(deps *bolt.Bucket, a App, keep int) error {
	var done [][]byte
	err := scan(deps, a.Tenant, func(d Deployment) {
		if d.Environment == a.Environment && d.App == a.Name && d.Done() && d.ID != a.RunningDeployment {
			done = append(done, []byte(deploymentKey(d.Tenant, d.ID)))
		}
	})
	if err != nil {
		return err
	}
	// Keys sort by creation time: the oldest come first.
	return deleteKeys(deps, done[:max(len(done)-keep, 0)])
}

// UpdateDeployment changes a deployment and its app in one transaction:
// change gets the app too while the deployment is its latest (nil
// otherwise).
func (s *Store) UpdateDeployment(k DeploymentKey, change func(*Deployment, *App) error) (Deployment, error) {
	var d Deployment
	err := s.db.Update(func(tx *bolt.Tx) error {
		deps := tx.Bucket(bDeployments)
		if deps == nil {
			return ErrNotFound
		}
		var err error
		if d, err = get[Deployment](deps, deploymentKey(k.Tenant, k.ID)); err != nil {
			return err
		}
		apps := tx.Bucket(bApps)
		key := appKey(d.Tenant, d.Environment, d.App)
		a, err := get[App](apps, key)
		latest := err == nil && a.Deployment == d.ID
		var app *App
		if latest {
			app = &a
		}
		if err := change(&d, app); err != nil {
			return err
		}
		d.Updated = time.Now().UTC()
		if err := put(deps, deploymentKey(k.Tenant, k.ID), d); err != nil {
			return err
		}
		if !latest {
			return nil
		}
		a.Updated = d.Updated
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

// UpdateApp changes an app in one transaction: change refuses with an
// error, or changes it.
func (s *Store) UpdateApp(tenant, env, name string, change func(*App) error) (a App, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bApps)
		if b == nil {
			return ErrNotFound
		}
		key := appKey(tenant, env, name)
		if a, err = get[App](b, key); err != nil {
			return err
		}
		if err := change(&a); err != nil {
			return err
		}
		return put(b, key, a)
	})
	return a, err
}

// DeleteApp removes an app's record; its deployments stay, as its history.
func (s *Store) DeleteApp(tenant, env, name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bApps)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(appKey(tenant, env, name)))
	})
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
